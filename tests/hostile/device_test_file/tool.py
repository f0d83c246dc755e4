"""Class files-are-files: a test file is a character device (/dev/zero: an endless read), another a symlink to /dev/urandom.

Expected: refused with a one-line error; the gate neither hangs nor eats the host's memory."""


def device_test_file(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
