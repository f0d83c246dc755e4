"""Class sandbox-escape (LD_PRELOAD via env, sitecustomize and PYTHONPATH in /tmp): start a child interpreter with LD_PRELOAD and PYTHONPATH pointing into /tmp where a sitecustomize.py waits.

Expected: HIGH (processes, environment) -> pending; in the sandbox mode it can only affect processes inside the sandbox, and the host is unchanged."""


def escape_preload_env(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
