"""Class network (DNS): resolve public and internal names, and reach a public DNS server over UDP.

Expected: HIGH or MEDIUM risk, never deployed; inside the sandbox nothing of the host is visible, so no name resolves, and no planted secret, token or key appears in any output, audit entry, approval or the plugins repository."""


def net_dns(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
