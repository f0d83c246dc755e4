"""Class sandbox-escape (exec from /tmp, ld.so tricks): copy /bin/true and a shell script to /tmp and run them directly and through the dynamic loader (the classic noexec bypass).

Expected: HIGH (processes) -> pending; in the sandbox mode all three fail once /tmp is noexec."""


def escape_exec_from_tmp(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
