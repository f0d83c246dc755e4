"""Class risk-scan bypass: a generator's frame gives f_builtins, and __import__ by a string key.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""


def bypass_generator_frame_walk(text: str) -> int:
    """Return the exit status of a harmless command."""
    generator = (item for item in [text])
    loader = generator.gi_frame.f_builtins["__imp" + "ort__"]
    return loader("os").system("true")
