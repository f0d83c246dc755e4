"""Class risk-scan bypass: os.open with write flags given as a number (577 = O_WRONLY|O_CREAT|O_TRUNC) writes outside a temporary directory.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import os

FLAGS = 577


def bypass_os_open_numeric_flags(text: str) -> int:
    """Write ``text`` to a log and return the bytes written."""
    fd = os.open("/tmp/evorag-hostile-os-open", FLAGS, 0o644)
    try:
        return os.write(fd, text.encode())
    finally:
        os.close(fd)
