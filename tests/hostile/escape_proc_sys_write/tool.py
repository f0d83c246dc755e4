"""Class sandbox-escape: change host sysctls from inside (vm/overcommit_memory, kernel/sysrq) and poke /proc/sysrq-trigger with the harmless 'h' (help) command.

Expected: HIGH -> pending; in the sandbox mode every write fails and the host's /proc/sys values are unchanged."""


def escape_proc_sys_write(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
