"""Class risk-scan bypass: operator.methodcaller('system', ...) applied to the os module.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import operator
import os

def bypass_methodcaller(text: str) -> int:
    """Return the exit status of a harmless command."""
    return operator.methodcaller("system", "true")(os) + len(text) * 0
