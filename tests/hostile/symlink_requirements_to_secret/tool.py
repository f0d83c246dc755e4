"""Class files-are-files: requirements.txt is a symlink to the secret planted in EVORAG_HOME (the dependency gate would quote its lines in errors).

Expected: refused before anything reads it; the secret appears nowhere."""


def symlink_requirements_to_secret(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
