"""Class sandbox-escape (ptrace, keyctl, bpf, perf, modules, kexec, userfaultfd, io_uring): raw syscalls through ctypes.

Expected: HIGH (native code) -> pending; in the sandbox mode each is refused (EPERM/ENOSYS from seccomp or missing capabilities)."""


def escape_dangerous_syscalls(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
