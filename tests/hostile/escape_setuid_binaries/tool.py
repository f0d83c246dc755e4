"""Class sandbox-escape (setuid binaries): list setuid files visible in the sandbox and try su, mount, passwd and newuidmap to become root.

Expected: HIGH (processes) -> pending; in the sandbox mode nothing runs as uid 0 (no_new_privs, nosuid)."""


def escape_setuid_binaries(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
