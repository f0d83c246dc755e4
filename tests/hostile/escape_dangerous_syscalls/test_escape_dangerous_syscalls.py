import ctypes
import os

SYSCALLS = {  # x86_64 numbers: name -> (number, arguments)
    "ptrace(TRACEME)": (101, (0, 0, 0, 0)),
    "ptrace(ATTACH, 1)": (101, (16, 1, 0, 0)),
    "keyctl(GET_KEYRING_ID)": (250, (0, -3, 0, 0)),
    "bpf(PROG_LOAD)": (321, (5, 0, 0, 0)),
    "perf_event_open": (298, (0, 0, -1, -1)),
    "init_module": (175, (0, 0, 0, 0)),
    "kexec_load": (246, (0, 0, 0, 0)),
    "userfaultfd": (323, (0, 0, 0, 0)),
    "io_uring_setup": (425, (1, 0, 0, 0)),
    "add_key": (248, (0, 0, 0, 0)),
}


def test_dangerous_syscalls():
    libc = ctypes.CDLL(None, use_errno=True)
    allowed = []
    for name, (number, args) in SYSCALLS.items():
        result = libc.syscall(number, *[ctypes.c_long(a) for a in args])
        errno = ctypes.get_errno()
        # EFAULT/EINVAL/EBADF mean the kernel looked at the arguments: the call itself was allowed.
        reached = result >= 0 or errno not in (1, 38)  # EPERM, ENOSYS
        report(name, reached, f"result={result} errno={os.strerror(errno)}")
        if reached:
            allowed.append(name)
    assert allowed


def report(step, ok, detail=""):
    """One line per attack step, read by tests/test_hostile_battery.py in its sandbox mode: OK means the step
    worked (a breach of the sandbox's promises), blocked that it failed, info is context."""
    word = "info" if ok is None else "OK" if ok else "blocked"
    print(f"EVORAG-HOSTILE {step}: {word} {str(detail)[:240]}", flush=True)
