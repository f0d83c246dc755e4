"""The seccomp policy of every sandbox: the syscalls a tool never needs, refused in the kernel.

Everything else is allowed (a tool is Python with its native libraries: an allowlist of syscalls breaks
them in ways no test predicts). What is refused is kernel surface that only serves escapes or host
administration: mounting, namespaces, tracing other processes, kernel keys, eBPF, perf, io_uring, module
loading, kexec, reboot, swap, clocks, raw I/O ports, file handles. One table, ``DENIED``, feeds both
outputs:

- ``bpf_program(arch)``: a classic-BPF program for bubblewrap's ``--seccomp FD`` (the kernel's
  ``struct sock_filter`` array, generated here because no libseccomp binding is installed);
- ``docker_profile()``: the same rules as a Docker seccomp profile (JSON).

Refused calls fail with EPERM, except ``clone3`` which fails with ENOSYS: its flags live in memory that
seccomp cannot read, and ENOSYS makes the C library fall back to ``clone``, whose namespace flags are
checked. A syscall made through a foreign calling convention (32-bit ``int 0x80`` on x86_64, x32
numbers, an architecture the table does not know) kills the process: a table for one ABI says nothing
about another, and no tool does that by accident.
"""

from __future__ import annotations

import errno
import json
import platform
import struct
from dataclasses import dataclass

# AUDIT_ARCH_* values (linux/audit.h), as seccomp_data.arch reports them.
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# x32 syscalls are x86_64 ones with this bit set (__X32_SYSCALL_BIT): never allowed.
_X32_BIT = 0x40000000

# name: (x86_64 number, aarch64 number); None where the architecture has no such call.
DENIED: dict[str, tuple[int | None, int | None]] = {
    # Mounts and the filesystem tree
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "open_tree": (428, 428),
    "open_tree_attr": (467, 467),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "quotactl": (179, 60),
    "quotactl_fd": (443, 443),
    # Namespaces (clone's namespace flags are checked separately)
    "unshare": (272, 97),
    "setns": (308, 268),
    # Other processes' memory and files
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "pidfd_getfd": (438, 438),
    "kcmp": (312, 272),
    "move_pages": (279, 239),
    "migrate_pages": (256, 238),
    # Kernel keys, eBPF, perf, io_uring, userfaultfd: large kernel surface, no use to a tool
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "userfaultfd": (323, 282),
    "fanotify_init": (300, 262),
    # Files by handle (bypass path permission checks)
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
    # Host administration
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "reboot": (169, 142),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "acct": (163, 89),
    "syslog": (103, 116),
    "vhangup": (153, 58),
    "sethostname": (170, 161),
    "setdomainname": (171, 162),
    "lookup_dcookie": (212, 18),
    "nfsservctl": (180, 42),
    # Clocks
    "settimeofday": (164, 170),
    "clock_settime": (227, 112),
    "adjtimex": (159, 171),
    "clock_adjtime": (305, 266),
    # x86 only: raw I/O ports, segment tables, obsolete module and sysctl calls
    "iopl": (172, None),
    "ioperm": (173, None),
    "modify_ldt": (154, None),
    "uselib": (134, None),
    "_sysctl": (156, None),
    "create_module": (174, None),
    "get_kernel_syms": (177, None),
    "query_module": (178, None),
}

# Calls allowed only with some arguments (numbers per architecture as above).
CLONE = (56, 220)
CLONE3 = (435, 435)
PERSONALITY = (135, 92)
IOCTL = (16, 29)

# clone() flags that create namespaces (CLONE_NEWTIME exists only for clone3/unshare, both refused).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NAMESPACES = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
)
# personality(): only the default (PER_LINUX) and the query (0xffffffff); the rest turns off ASLR
# (ADDR_NO_RANDOMIZE), makes reads imply exec, and so on.
PERSONALITY_ALLOWED = (0x0, 0xFFFFFFFF)
# ioctl() requests that push input into a terminal (TIOCSTI) or reach the virtual console (TIOCLINUX).
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
DENIED_IOCTLS = (TIOCSTI, TIOCLINUX)

# seccomp return values (linux/seccomp.h)
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000

# Offsets in struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]. Arguments are
# read as their low 32-bit word (little-endian: first): clone flags, personality and ioctl requests are
# 32-bit values to the kernel, which ignores the high word.
_NR, _ARCH = 0, 4


def _arg_low(index: int) -> int:
    return 16 + 8 * index


# Classic BPF opcodes (linux/bpf_common.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06


class SeccompUnsupported(Exception):
    """No syscall table for this machine's architecture."""


def native_arch() -> str:
    """This machine's architecture in the table's terms; raises SeccompUnsupported for any other."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if arch not in AUDIT_ARCH:
        raise SeccompUnsupported(f"no seccomp syscall table for the {machine} architecture")
    return arch


def _number(entry: tuple[int | None, int | None], arch: str) -> int | None:
    return entry[0] if arch == "x86_64" else entry[1]


@dataclass(frozen=True, slots=True)
class _Insn:
    code: int
    k: int
    jt: str | int = 0  # a label, or 0 for "next instruction"
    jf: str | int = 0


def bpf_program(arch: str | None = None) -> bytes:
    """The filter for ``arch`` (default: this machine) as ``struct sock_filter`` bytes (8 per instruction).

    Layout: check the architecture (kill on mismatch), refuse x32 numbers, then one comparison per
    refused syscall jumping to a shared return; clone, personality and ioctl check an argument; anything
    else is allowed.
    """
    arch = arch or native_arch()
    if arch not in AUDIT_ARCH:
        raise SeccompUnsupported(f"no seccomp syscall table for the {arch} architecture")
    code: list[_Insn | str] = [
        _Insn(_LD_W_ABS, _ARCH),
        _Insn(_JEQ_K, AUDIT_ARCH[arch], jf="kill"),
        _Insn(_LD_W_ABS, _NR),
    ]
    if arch == "x86_64":
        code.append(_Insn(_JGE_K, _X32_BIT, jt="kill"))
    for name in sorted(DENIED):
        number = _number(DENIED[name], arch)
        if number is not None:
            code.append(_Insn(_JEQ_K, number, jt="eperm"))
    code.append(_Insn(_JEQ_K, _number(CLONE3, arch), jt="enosys"))
    code.append(_Insn(_JEQ_K, _number(CLONE, arch), jt="clone"))
    code.append(_Insn(_JEQ_K, _number(PERSONALITY, arch), jt="personality"))
    code.append(_Insn(_JEQ_K, _number(IOCTL, arch), jt="ioctl"))
    code.append(_Insn(_RET_K, RET_ALLOW))
    code += [
        "clone",
        _Insn(_LD_W_ABS, _arg_low(0)),
        _Insn(_JSET_K, CLONE_NAMESPACES, jt="eperm"),
        _Insn(_RET_K, RET_ALLOW),
    ]
    code += ["personality", _Insn(_LD_W_ABS, _arg_low(0))]
    code += [_Insn(_JEQ_K, value, jt="allow") for value in PERSONALITY_ALLOWED]
    code += [_Insn(_RET_K, RET_ERRNO | errno.EPERM)]
    code += ["ioctl", _Insn(_LD_W_ABS, _arg_low(1))]
    code += [_Insn(_JEQ_K, request, jt="eperm") for request in DENIED_IOCTLS]
    code += ["allow", _Insn(_RET_K, RET_ALLOW)]
    code += ["eperm", _Insn(_RET_K, RET_ERRNO | errno.EPERM)]
    code += ["enosys", _Insn(_RET_K, RET_ERRNO | errno.ENOSYS)]
    code += ["kill", _Insn(_RET_K, RET_KILL_PROCESS)]
    return _assemble(code)


def _assemble(code: list[_Insn | str]) -> bytes:
    """Resolve labels into the relative jump offsets of classic BPF (forward only, at most 255)."""
    labels: dict[str, int] = {}
    insns: list[_Insn] = []
    for item in code:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    out = bytearray()
    for index, insn in enumerate(insns):
        offsets = []
        for target in (insn.jt, insn.jf):
            offset = target if isinstance(target, int) else labels[target] - index - 1
            if not 0 <= offset <= 255:
                raise ValueError(f"seccomp jump out of range at instruction {index}: {offset}")
            offsets.append(offset)
        out += struct.pack("<HBBI", insn.code, offsets[0], offsets[1], insn.k)
    return bytes(out)


# libseccomp names of the architectures, for the Docker profile.
_SCMP_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


def docker_profile(arch: str | None = None) -> str:
    """The same policy as a Docker seccomp profile (JSON): allow by default, refuse the table.

    Only the native architecture is listed: calls made through any other ABI hit libseccomp's bad-arch
    action, which kills the process under runc (checked by the tests, as for the bubblewrap filter).
    An argument rule matches the 64-bit register, so each one first masks the low word, as the kernel does.
    """
    arch = arch or native_arch()
    names = sorted(name for name, numbers in DENIED.items() if _number(numbers, arch) is not None)
    rules: list[dict] = [
        {"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
    ]
    # libseccomp ANDs the conditions of one rule and ORs the rules: one rule per namespace flag.
    for flag in _bits(CLONE_NAMESPACES):
        rules.append(_arg_rule("clone", 0, flag, flag))
    for request in DENIED_IOCTLS:
        rules.append(_arg_rule("ioctl", 1, 0xFFFFFFFF, request))
    # personality: refused unless the low word is 0 or 0xffffffff, i.e. when it has a 1 bit and a 0 bit.
    # Then some bit i is 1 while bit i+1 (mod 32) is 0: one single-condition rule per i covers exactly
    # that set (libseccomp does not reliably AND two conditions on the same argument).
    for bit in range(32):
        pair = (1 << bit) | (1 << ((bit + 1) % 32))
        rules.append(_arg_rule("personality", 0, pair, 1 << bit))
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": [_SCMP_ARCH[arch]], "syscalls": rules}
    return json.dumps(profile, indent=1)


def _arg_rule(name: str, index: int, mask: int, value: int) -> dict:
    return {
        "names": [name],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": errno.EPERM,
        "args": [{"index": index, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"}],
    }


def _bits(mask: int) -> list[int]:
    return [1 << bit for bit in range(mask.bit_length()) if mask & (1 << bit)]
