"""Class sandbox-escape (uid tricks): read uid_map to learn the host uid behind the sandbox user, look for capabilities, and try setuid(0)/setresuid(0).

Expected: HIGH -> pending; in the sandbox mode the map never points to host uid 0 and every setuid fails."""


def escape_uid_tricks(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
