"""Class risk-scan bypass: eval in a default argument of a private helper runs at import.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""


def _probe(value=eval("__import__('os').system('true')")) -> int:
    return value


def bypass_eval_default_argument(text: str) -> int:
    """Return the probe's status."""
    return _probe() + len(text) * 0
