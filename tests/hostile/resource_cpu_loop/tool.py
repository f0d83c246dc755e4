"""Class resource (infinite loop): the test spins forever.

Expected: stopped by a sandbox limit (or rated HIGH and never run before approval); never deployed."""


def resource_cpu_loop(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
