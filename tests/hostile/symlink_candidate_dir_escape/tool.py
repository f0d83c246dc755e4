"""Class files-are-files: test files that are symlinks to directories (/root, the host's /tmp) and to the plugins repository's tools.

Expected: refused; nothing of those directories is read."""


def symlink_candidate_dir_escape(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
