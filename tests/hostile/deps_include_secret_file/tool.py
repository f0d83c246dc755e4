"""Class dependencies / information theft: requirements.txt includes the planted /root secret with -r and -c (pip would quote its lines in errors).

Expected: rejected at the dependency gate (or HIGH and pending) before pip reaches anything; no host code runs."""


def deps_include_secret_file(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
