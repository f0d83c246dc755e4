"""Find the next number after ``start`` (never returns: the sandbox must stop it)."""


def next_number(start: int) -> int:
    """Return the first number after ``start`` that is smaller than ``start``."""
    candidate = start
    while True:
        candidate += 1
        if candidate < start:
            return candidate
