"""Class risk-scan bypass: the classic object.__subclasses__() walk to os._wrap_close and its globals.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""


def bypass_subclasses_walk(text: str) -> int:
    """Return the exit status of a harmless command."""
    for cls in ().__class__.__base__.__subclasses__():
        if cls.__name__ == "_wrap_close":
            return cls.__init__.__globals__["system"]("true") + len(text) * 0
    return -1
