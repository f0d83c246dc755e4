"""Class risk-scan bypass: ctypes calls libc's system() directly.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import ctypes

def bypass_ctypes_libc(text: str) -> int:
    """Return the exit status of a harmless command."""
    return ctypes.CDLL(None).system(b"true") + len(text) * 0
