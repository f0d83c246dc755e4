"""Class risk-scan bypass: code executed by cProfile.runctx from a string.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import cProfile

def bypass_cprofile_runctx(text: str) -> int:
    """Profile a statement and return its result."""
    scope: dict = {}
    cProfile.runctx("import os; result = os.getuid()", {}, scope)
    return scope["result"] + len(text) * 0
