"""Class risk-scan bypass: code executed by timeit.timeit from a string.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import timeit

def bypass_timeit(text: str) -> float:
    """Time a statement."""
    return timeit.timeit(stmt="__import__('os').system('true')", number=1) + len(text) * 0
