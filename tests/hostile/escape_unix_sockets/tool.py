"""Class sandbox-escape + network (abstract unix sockets to the host, the Docker socket, D-Bus): connect to the battery's abstract socket '@evorag-hostile-battery', its path socket under host /tmp, /var/run/docker.sock and other well-known host sockets.

Expected: HIGH (network) -> pending; in the sandbox mode no connection is made (own network namespace, no host paths)."""


def escape_unix_sockets(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
