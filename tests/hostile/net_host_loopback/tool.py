"""Class network: the test connects to the battery's listening socket on the host's 127.0.0.1:47123 (and the Docker bridge address) and sends a marker.

Expected: HIGH or MEDIUM risk, never deployed; inside the sandbox nothing of the host is visible, so no connection reaches the host, and no planted secret, token or key appears in any output, audit entry, approval or the plugins repository."""


def net_host_loopback(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
