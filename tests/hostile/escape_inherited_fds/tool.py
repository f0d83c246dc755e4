"""Class sandbox-escape (fd leaks, writing to inherited fds): list /proc/self/fd, write a marker to every inherited descriptor and read from the readable ones.

Expected: HIGH -> pending; in the sandbox mode only stdio and the runner's own pipes exist and nothing reaches the host."""


def escape_inherited_fds(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
