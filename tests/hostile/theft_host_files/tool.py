"""Class information theft: the failing test's message carries every host secret it can find (the planted /root secret, ssh keys, /etc/shadow, EVORAG_HOME guesses, the approval database).

Expected: HIGH or MEDIUM risk, never deployed; inside the sandbox nothing of the host is visible, so no planted secret, token or key appears in any output, audit entry, approval or the plugins repository."""


def theft_host_files(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
