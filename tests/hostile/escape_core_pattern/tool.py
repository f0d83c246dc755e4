"""Class sandbox-escape (finding 1): write /proc/sys/kernel/core_pattern with a pipe to a script in the sandbox's /tmp, then crash a child so that the kernel runs the script on the host as root.

Expected: HIGH risk (file writes outside temp, processes) -> pending, never run before approval; in the sandbox mode the write fails (/proc/sys read-only) and the host's core_pattern never changes."""


def escape_core_pattern(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
