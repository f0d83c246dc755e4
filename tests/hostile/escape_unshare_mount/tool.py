"""Class sandbox-escape (mount, unshare, user namespaces): unshare(CLONE_NEWUSER|CLONE_NEWNS) through ctypes and `unshare -Urm`, then mount a tmpfs.

Expected: HIGH (native code, processes) -> pending; in the sandbox mode unshare and mount fail."""


def escape_unshare_mount(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
