"""Class files-are-files: requirements.txt is a hard link to a secret file (same content, no symlink to notice).

Expected: refused (link count > 1) before anything reads it; the secret appears nowhere."""


def hardlink_to_secret(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
