"""Escape attempts against every sandbox backend, run as root like CI: the sandbox is the security boundary.

One hostile program per backend (``ESCAPES``) tries from inside what candidate code would: write
/proc/sys (the core_pattern escape of issue 10: a pipe to a script in the sandbox's /tmp, then a crash),
exec or dlopen files it wrote, ptrace, unshare, mount, keys, eBPF and the other refused syscalls, a
foreign syscall ABI, the network, host paths and the host's environment, writes outside /tmp. While it
runs the host checks which host uid its processes have; afterwards, that nothing changed: sysctls,
canary files, host /tmp, a listening socket.

The seccomp policy is also checked without a sandbox: the generated BPF program runs in a small
classic-BPF interpreter for both architectures, the Docker profile is evaluated for the same calls, and
the syscall numbers are compared with the kernel headers.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import shutil
import signal
import site
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from evorag.tools.sandbox import BubblewrapSandbox, DockerSandbox, Limits, Sandbox, SandboxError
from evorag.tools.sandbox import _seccomp as seccomp

BACKENDS = {"bubblewrap": BubblewrapSandbox, "docker": DockerSandbox}
# Read at import, as tests/test_sandbox.py does: a backend named here that is missing fails, never skips.
REQUIRED = {
    name.strip() for name in os.environ.get("EVORAG_REQUIRE_SANDBOXES", "").split(",") if name.strip()
}
SANDBOX_UID = 65534
# Host sysctls compared before and after each battery (those that exist here).
WATCHED_SYSCTLS = (
    "kernel/core_pattern",
    "kernel/core_pipe_limit",
    "kernel/core_uses_pid",
    "kernel/modprobe",
    "kernel/hostname",
    "kernel/domainname",
    "kernel/sysrq",
    "kernel/randomize_va_space",
    "kernel/panic",
    "kernel/unprivileged_bpf_disabled",
    "fs/suid_dumpable",
    "fs/protected_symlinks",
    "fs/protected_hardlinks",
    "net/ipv4/ip_forward",
    "vm/overcommit_memory",
    "user/max_user_namespaces",
)
NATIVE_ARCH = seccomp.native_arch()


def _numbers(arch: str) -> dict[str, int]:
    """Syscall name -> number on ``arch`` for every call the policy names."""
    index = 0 if arch == "x86_64" else 1
    table = {name: entry[index] for name, entry in seccomp.DENIED.items() if entry[index] is not None}
    for name, entry in (
        ("clone", seccomp.CLONE),
        ("clone3", seccomp.CLONE3),
        ("personality", seccomp.PERSONALITY),
        ("ioctl", seccomp.IOCTL),
    ):
        table[name] = entry[index]
    return table


# The hostile program. Every probe records what happened (an errno name, "ok", or a message) so that the
# host asserts each property separately. The ``lambda``s only wrap one call each.
ESCAPES = r"""
import ctypes, errno, json, mmap, os, shutil, signal, socket, subprocess, sys, time

cfg = json.loads(sys.argv[1])
marker = cfg["marker"]
out = {}


def outcome(call):
    try:
        call()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno) or str(exc)


# Who the program is
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
out["status"] = {key: status[key].strip() for key in
                 ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")}

# /proc/sys and /proc/sysrq-trigger: opened for writing only, nothing is written
writable, seen = [], 0
for root, _dirs, files in os.walk("/proc/sys"):
    for name in files:
        seen += 1
        try:
            os.close(os.open(os.path.join(root, name), os.O_WRONLY))
            writable.append(os.path.join(root, name))
        except OSError:
            pass
out["proc_sys"] = {"seen": seen, "writable": writable}
out["sysrq"] = outcome(lambda: os.close(os.open("/proc/sysrq-trigger", os.O_WRONLY)))

# Issue 10, finding 1: a pipe core_pattern pointing into our /tmp, then a crash. Had the write worked, the
# kernel would run the script on the host, as root, and it would leave a file in the host's /tmp.
script = f"/tmp/{marker}-core.sh"
with open(script, "w") as f:
    f.write(f"#!/bin/sh\ntouch /tmp/{marker}-pwned\n")
os.chmod(script, 0o755)


def set_core_pattern():
    with open("/proc/sys/kernel/core_pattern", "w") as f:
        f.write(f"|/proc/%P/root{script}")


out["core_pattern"] = outcome(set_core_pattern)
child = os.fork()
if child == 0:
    os.kill(os.getpid(), signal.SIGSEGV)
    os._exit(0)
out["crash"] = os.WTERMSIG(os.waitpid(child, 0)[1])

# Executing what the program wrote
for place in ("/tmp", "/dev/shm"):
    copy = f"{place}/{marker}-true"
    out[f"exec {place}"] = outcome(lambda: (shutil.copy("/bin/true", copy), os.chmod(copy, 0o755)))
    if out[f"exec {place}"] == "ok":
        out[f"exec {place}"] = outcome(lambda: subprocess.run([copy], check=True))
library = f"/tmp/{marker}.so"
shutil.copy(cfg["shared_library"], library)
out["dlopen /tmp"] = outcome(lambda: ctypes.CDLL(library))
writable_and_executable = []
for line in open("/proc/self/mountinfo"):
    fields = line.split()
    point = fields[4].replace("\\040", " ")
    if "noexec" in fields[5].split(",") or not os.path.isdir(point):
        continue
    probe = os.path.join(point, f"{marker}-probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755))
    except OSError:
        continue
    os.unlink(probe)
    writable_and_executable.append(point)
out["writable_exec_mounts"] = writable_and_executable

# Syscalls a tool never needs (arguments chosen so that, without the filter, most would not fail with EPERM)
libc = ctypes.CDLL(None, use_errno=True)
numbers = cfg["numbers"]


def syscall(name, *args):
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(numbers[name]), *[ctypes.c_long(a) for a in args])
    return "ok" if result != -1 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


# In a child: after PTRACE_TRACEME a process whose parent is no debugger is stuck at its next signal.
read_end, write_end = os.pipe()
child = os.fork()
if child == 0:
    byte = ctypes.create_string_buffer(b"x")
    results = {
        "ptrace": syscall("ptrace", 0, 0, 0, 0),                  # PTRACE_TRACEME: anyone may, unfiltered
        "unshare": syscall("unshare", 0x200),                       # CLONE_FS: harmless, allowed unfiltered
        "setns": syscall("setns", -1, 0),                           # EBADF unfiltered
        "mount": syscall("mount", 0, 0, 0, 0, 0),
        "umount2": syscall("umount2", 0, 0),
        "pivot_root": syscall("pivot_root", 0, 0),
        "chroot": syscall("chroot", 0),
        "keyctl": syscall("keyctl", 0, -3, 0),                      # KEYCTL_GET_KEYRING_ID: works unfiltered
        "add_key": syscall("add_key", 0, 0, 0, 0, 0),
        "bpf": syscall("bpf", 0, 0, 0),
        "perf_event_open": syscall("perf_event_open", 0, 0, -1, -1, 0),   # EFAULT unfiltered
        "io_uring_setup": syscall("io_uring_setup", 1, 0),                # EFAULT unfiltered
        "userfaultfd": syscall("userfaultfd", 1),                         # UFFD_USER_MODE_ONLY: works unfiltered
        "process_vm_readv": syscall("process_vm_readv", os.getpid(), 0, 0, 0, 0, 0),  # works unfiltered
        "open_by_handle_at": syscall("open_by_handle_at", -1, 0, 0),
        "fsopen": syscall("fsopen", 0, 0),
        "open_tree": syscall("open_tree", -1, 0, 0),
        "init_module": syscall("init_module", 0, 0, 0),
        "kexec_load": syscall("kexec_load", 0, 0, 0, 0xFFFF0000),        # invalid flags: never unloads
        "reboot": syscall("reboot", 0, 0, 0, 0),
        "syslog": syscall("syslog", 3, 0, 0),                             # SYSLOG_ACTION_READ_ALL
        "settimeofday": syscall("settimeofday", 0, 0),
        "personality ADDR_NO_RANDOMIZE": syscall("personality", 0x0040000),  # works unfiltered
        "personality query": syscall("personality", 0xFFFFFFFF),
        "clone CLONE_NEWUSER": syscall("clone", 0x10000000 | 0x00010000, 0, 0, 0, 0),  # +CLONE_THREAD: EINVAL unfiltered
        "clone3": syscall("clone3", 0, 0),                                  # EINVAL unfiltered
        "ioctl TIOCSTI": syscall("ioctl", 0, 0x5412, ctypes.addressof(byte)),  # ENOTTY unfiltered
    }
    os.write(write_end, json.dumps(results).encode())
    os._exit(0)
os.close(write_end)
with os.fdopen(read_end) as pipe:
    out["syscalls"] = json.loads(pipe.read() or "{}")
os.waitpid(child, 0)

# A thread and a child process still work (glibc falls back from clone3 to clone).
out["allowed"] = subprocess.run([sys.executable, "-c", "import threading; t = threading.Thread(target=print); "
                                 "t.start(); t.join(); print('fine')"], capture_output=True, text=True).stdout

# Foreign syscall ABIs (x86_64): an x32 number, and the 32-bit int 0x80 entry (getpid there is 20)
if cfg["arch"] == "x86_64":
    x32 = "import ctypes; ctypes.CDLL(None).syscall(0x40000000 | 39)"
    i386 = ("import ctypes, mmap; m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC); "
            "m.write(bytes.fromhex('b814000000cd80c3')); "
            "f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m))); print(f())")
    out["abi"] = {name: subprocess.run([sys.executable, "-c", code], capture_output=True).returncode
                  for name, code in (("x32", x32), ("i386", i386))}

# The network
out["interfaces"] = sorted(name for _, name in socket.if_nameindex())
out["host port"] = outcome(lambda: socket.create_connection(("127.0.0.1", cfg["port"]), timeout=2).close())

# Host paths and environment
out["host_paths"] = {path: os.path.lexists(path) for path in cfg["host_paths"]}
out["listings"] = {path: sorted(os.listdir(path)) if os.path.isdir(path) else None for path in ("/root", "/home")}
environ = {pid: outcome(lambda: open(f"/proc/{pid}/environ", "rb").read()) for pid in ("self", "1")}
out["secret_seen"] = [key for key, value in os.environ.items() if cfg["secret"] in value or key == cfg["secret_name"]]
out["secret_in_proc"] = any(cfg["secret"].encode() in open(f"/proc/{pid}/environ", "rb").read()
                            for pid in ("self", "1") if environ[pid] == "ok")

# Writes outside /tmp
out["writes"] = {path: outcome(lambda: open(path, "w").close())
                 for path in ("/work/x", "/x", "/usr/x", "/etc/x", "/dev/x", "/root/x", "/opt/x",
                              os.path.join(sys.prefix, "x"))}

time.sleep(cfg["linger"])  # time for the host to look at our processes
print(json.dumps(out))
"""


@dataclass
class Battery:
    """What the hostile program reported, and what the host saw during and after its run."""

    backend: str
    inside: dict
    processes: list[dict]  # host view of each sandboxed process: uid fields, user namespace, uid_map
    sysctls_before: dict[str, str]
    sysctls_after: dict[str, str]
    tmp_leftovers: list[str]
    canaries_intact: bool
    accepted: int
    problems: list[str] = field(default_factory=list)


def _sysctls() -> dict[str, str]:
    values = {}
    for name in WATCHED_SYSCTLS:
        try:
            values[name] = (Path("/proc/sys") / name).read_text()
        except OSError:
            pass
    return values


def _restore_core_pattern(value: str) -> None:
    """Put the host back if a broken sandbox changed it (the test fails anyway)."""
    path = Path("/proc/sys/kernel/core_pattern")
    if path.read_text() != value:
        path.write_text(value)


def _host_view(marker: str, program: str) -> dict[int, dict]:
    """Host uid fields and user namespace of the sandboxed program: every process started as ``program``
    whose command line holds ``marker`` (the launchers that carry it too, e.g. the docker CLI or bwrap
    before it drops root, are not the sandboxed program)."""
    own_userns = os.readlink("/proc/self/ns/user")
    seen = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if argv[0] != program.encode() or marker.encode() not in b" ".join(argv):
                continue
            status = (entry / "status").read_text()
            uids = [int(v) for v in re.search(r"^Uid:\s+(.*)$", status, re.MULTILINE).group(1).split()]
            userns = os.readlink(entry / "ns/user")
            uid_map = [
                [int(v) for v in line.split()] for line in (entry / "uid_map").read_text().splitlines()
            ]
        except (OSError, AttributeError):
            continue
        seen[int(entry.name)] = {"uids": uids, "own_userns": userns != own_userns, "uid_map": uid_map}
    return seen


def _shared_library() -> str:
    import _ctypes

    return _ctypes.__file__


def _sandbox(name: str) -> Sandbox:
    sandbox = BACKENDS[name]()
    problem = sandbox.why_unavailable()
    if problem:
        if name in REQUIRED:
            pytest.fail(f"{name} sandbox required but unavailable: {problem}")
        pytest.skip(f"{name} sandbox unavailable: {problem}")
    return sandbox


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def battery(request, tmp_path_factory) -> Battery:
    sandbox = _sandbox(request.param)
    marker = f"evorag-escape-{uuid.uuid4().hex}"
    base = tmp_path_factory.mktemp("battery")
    workdir = base / "work"
    workdir.mkdir(mode=0o700)
    # Host things the program must not see or change: a canary in the host's /tmp, an EVORAG_HOME with
    # state, a secret in our environment, a server on the host's loopback.
    canary = Path("/tmp") / f"{marker}-canary"
    canary.write_text("host canary")
    home = base / "evorag-home"
    home.mkdir()
    (home / "catalog.sqlite3").write_text("host state")
    secret_name, secret = "EVORAG_TEST_PLANTED_SECRET", f"secret-{uuid.uuid4().hex}"
    saved_env = {key: os.environ.get(key) for key in (secret_name, "EVORAG_HOME")}
    os.environ[secret_name], os.environ["EVORAG_HOME"] = secret, str(home)
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    accepted = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    server_thread = threading.Thread(target=serve, daemon=True)
    server_thread.start()
    config = {
        "marker": marker,
        "arch": NATIVE_ARCH,
        "numbers": _numbers(NATIVE_ARCH),
        "port": server.getsockname()[1],
        "shared_library": _shared_library(),
        "host_paths": [str(canary), str(home), str(home / "catalog.sqlite3"), str(workdir), str(base)],
        "secret": secret,
        "secret_name": secret_name,
        "linger": 1.5,
    }
    sysctls_before = _sysctls()
    seen: dict[int, dict] = {}
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(
                sandbox.run,
                workdir,
                ["python", "-c", ESCAPES, json.dumps(config)],
                limits=Limits(wall_seconds=60, cpu_seconds=30, memory_mb=512),
            )
            while not running.done():
                seen.update(_host_view(marker, "python"))
                time.sleep(0.05)
        time.sleep(0.5)  # a core-dump helper the kernel started would run asynchronously
        sysctls_after = _sysctls()
        leftovers = sorted(p.name for p in Path("/tmp").iterdir() if marker in p.name and p != canary)
        intact = (
            canary.read_text() == "host canary" and (home / "catalog.sqlite3").read_text() == "host state"
        )
        result = running.result()
    finally:
        _restore_core_pattern(sysctls_before["kernel/core_pattern"])
        stop.set()
        server_thread.join(2)
        server.close()
        for leftover in Path("/tmp").glob(f"{marker}*"):
            leftover.unlink()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert result.exit_code == 0 and not result.killed_reason, result
    return Battery(
        backend=request.param,
        inside=json.loads(result.stdout.strip().splitlines()[-1]),
        processes=list(seen.values()),
        sysctls_before=sysctls_before,
        sysctls_after=sysctls_after,
        tmp_leftovers=leftovers,
        canaries_intact=intact,
        accepted=len(accepted),
    )


# Who the program is


def test_the_program_is_never_host_root(battery):
    # Seen from the host while it ran: the program has host uid 65534 in all four of real, effective,
    # saved and filesystem uid, and (bubblewrap) its user namespace maps nothing to host root.
    assert battery.processes, "no sandboxed process was seen on the host"
    for process in battery.processes:
        assert process["uids"] == [SANDBOX_UID] * 4, process
        if process["own_userns"]:
            # [inside, outside (host), count]: no range reaches host uid 0.
            for inside, outside, count in process["uid_map"]:
                assert not outside <= 0 < outside + count, process
    if battery.backend == "bubblewrap":
        assert any(p["own_userns"] for p in battery.processes)


def test_no_capabilities_no_new_privileges_and_seccomp_on(battery):
    status = battery.inside["status"]
    assert status["Uid"].split() == [str(SANDBOX_UID)] * 4
    assert status["Gid"].split() == [str(SANDBOX_UID)] * 4
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[capabilities], 16) == 0, (capabilities, status[capabilities])
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"  # a filter, not just strict mode


# /proc/sys, and the escape of issue 10


def test_proc_sys_and_sysrq_are_read_only(battery):
    proc_sys = battery.inside["proc_sys"]
    assert proc_sys["seen"] > 100  # the walk did look at /proc/sys
    assert proc_sys["writable"] == []
    assert battery.inside["sysrq"] in ("EACCES", "EROFS", "ENOENT", "EPERM")


def test_core_pattern_escape_runs_nothing_on_the_host(battery):
    assert battery.inside["core_pattern"] in ("EACCES", "EROFS", "EPERM")
    assert battery.inside["crash"] == signal.SIGSEGV  # the crash did happen
    assert battery.sysctls_after["kernel/core_pattern"] == battery.sysctls_before["kernel/core_pattern"]
    assert not any(name.endswith("-pwned") for name in battery.tmp_leftovers)


# Nothing it writes can be executed


def test_files_the_program_writes_cannot_be_executed_or_loaded(battery):
    inside = battery.inside
    assert inside["exec /tmp"] == "EACCES"
    assert inside["exec /dev/shm"] in ("EACCES", "EROFS")
    assert "failed to map segment" in inside["dlopen /tmp"], inside["dlopen /tmp"]
    assert inside["writable_exec_mounts"] == []


# Seccomp, in the kernel


def test_syscalls_a_tool_never_needs_are_refused(battery):
    calls = battery.inside["syscalls"]
    expected = {name: "EPERM" for name in calls}
    expected["clone3"] = "ENOSYS"  # so that the C library falls back to clone, whose flags are checked
    expected["personality query"] = "ok"
    assert calls == expected
    assert battery.inside["allowed"] == "\nfine\n"  # threads and child processes still work


def test_foreign_syscall_abis_kill_the_process(battery):
    if NATIVE_ARCH != "x86_64":
        pytest.skip("only x86_64 has a second ABI a 64-bit process can reach (int 0x80, x32)")
    assert battery.inside["abi"] == {"x32": -signal.SIGSYS, "i386": -signal.SIGSYS}


# The host is out of reach


def test_no_network(battery):
    assert battery.inside["interfaces"] == ["lo"]
    assert battery.inside["host port"] == "ECONNREFUSED"  # its own empty loopback
    assert battery.accepted == 0


def test_no_host_paths_or_environment(battery):
    assert battery.inside["host_paths"] and not any(battery.inside["host_paths"].values())
    listings = battery.inside["listings"]
    assert listings["/home"] in (None, [])
    # /root exists inside only as the way to the interpreter (pyenv) when it lives there.
    under_root = Path(sys.base_prefix).parts[2:3] if Path(sys.base_prefix).parts[1:2] == ("root",) else ()
    assert listings["/root"] in (None, [], list(under_root))
    assert battery.inside["secret_seen"] == [] and not battery.inside["secret_in_proc"]


def test_writes_outside_tmp_fail(battery):
    writes = battery.inside["writes"]
    assert len(writes) == 8
    assert all(result in ("EROFS", "EACCES", "ENOENT", "EPERM") for result in writes.values()), writes


def test_the_host_is_unchanged_afterwards(battery):
    assert battery.sysctls_after == battery.sysctls_before
    assert battery.canaries_intact
    assert battery.tmp_leftovers == []  # nothing the program wrote in its /tmp reached the host's


# The non-root modes, run as an ordinary user (uid 12345) with the system's Python


ORDINARY_UID = 12345
NON_ROOT_PROBE = r"""
import json, os, shutil, subprocess, sys, time
out = {"status": {k: v.strip() for k, v in (l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
                  if k in ("CapEff", "CapBnd", "NoNewPrivs", "Seccomp")}}
try:
    os.close(os.open("/proc/sys/kernel/core_pattern", os.O_WRONLY))
    out["core_pattern"] = "ok"
except OSError as exc:
    out["core_pattern"] = exc.strerror
shutil.copy("/bin/true", "/tmp/true")
os.chmod("/tmp/true", 0o755)
try:
    subprocess.run(["/tmp/true"], check=True)
    out["exec /tmp"] = "ok"
except OSError as exc:
    out["exec /tmp"] = exc.strerror
time.sleep(1.5)
print(json.dumps(out))
"""
NON_ROOT_DRIVER = """
import json, os, site, sys, tempfile
from pathlib import Path
# Site directories, not PYTHONPATH: their .pth files hold the editable install's finder, which maps
# evorag.tools (and .agents, .teams) to the repository folders.
for directory in os.environ["EVORAG_TEST_SITE"].split(":"):
    site.addsitedir(directory)
from evorag.tools.sandbox import BubblewrapSandbox
sandbox = BubblewrapSandbox(modes=[sys.argv[1]])
problem = sandbox.why_unavailable()
with tempfile.TemporaryDirectory() as work:
    result = None if problem else sandbox.run(Path(work), ["python3", "-c", sys.argv[2], sys.argv[3]])
print(json.dumps({"mode": sandbox.mode, "problem": problem, "result": result and result.stdout,
                  "stderr": result and result.stderr}))
"""


def _system_python() -> str | None:
    """The distribution's Python of our minor version: it can import the venv's packages and lives in
    /usr, which an ordinary user can reach (our interpreter may be under root's 0700 home)."""
    candidate = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    return str(candidate) if candidate.exists() else None


@pytest.mark.parametrize("mode", ["userns", "direct"])
def test_non_root_modes_map_to_the_invoking_user(mode, tmp_path, request):
    _sandbox("bubblewrap")
    if os.geteuid() != 0:
        pytest.skip("starts an ordinary user's process, which needs root (as CI runs)")
    python = _system_python()
    if python is None:
        pytest.skip(
            f"no /usr/bin/python{sys.version_info.major}.{sys.version_info.minor} to run as another user"
        )
    # Site directories by what site reports (Debian's interpreters call them dist-packages). Under
    # pyenv they sit below /root (0700), which the ordinary user cannot traverse: each is bind-mounted
    # at a world-reachable directory inside a private mount namespace, so the host's mounts never change.
    site_dirs = [p for p in {*site.getsitepackages(), site.getusersitepackages()} if Path(p).is_dir()]
    views = [Path(tempfile.mkdtemp(prefix="evorag-site-", dir="/tmp")) for _ in site_dirs]
    for view in views:
        view.chmod(0o755)
    request.addfinalizer(lambda: [view.rmdir() for view in views])
    binds = "; ".join(
        f"mount --bind {shlex.quote(source)} {shlex.quote(str(view))}"
        for source, view in zip(site_dirs, views)
    )
    marker = f"evorag-nonroot-{uuid.uuid4().hex}"
    root = Path(__file__).resolve().parent.parent
    command = [
        shutil.which("unshare"),
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-ec",
        f'{binds}; exec "$@"',
        "sh",
        shutil.which("setpriv"),
        f"--reuid={ORDINARY_UID}",
        f"--regid={ORDINARY_UID}",
        "--clear-groups",
        "env",
        "-i",
        "PATH=/usr/bin:/bin",
        "HOME=/tmp",
        f"PYTHONPATH={root}",
        f"EVORAG_TEST_SITE={':'.join(str(view) for view in views)}",
        python,
        "-c",
        NON_ROOT_DRIVER,
        mode,
        NON_ROOT_PROBE,
        marker,
    ]
    driver = subprocess.Popen(command, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[int, dict] = {}
    while driver.poll() is None:
        seen.update(_host_view(marker, "python3"))
        time.sleep(0.05)
    stdout, stderr = driver.communicate()
    assert driver.returncode == 0, stderr
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["problem"] is None and report["mode"] == mode, report
    inside = json.loads(report["result"].strip().splitlines()[-1])
    assert inside["status"] == {"CapEff": "0" * 16, "CapBnd": "0" * 16, "NoNewPrivs": "1", "Seccomp": "2"}
    assert inside["core_pattern"] == "Permission denied"
    # userns gets the noexec /tmp; direct (the fallback where unshare may not mount) does not, as documented.
    assert inside["exec /tmp"] == ("Permission denied" if mode == "userns" else "ok")
    sandboxed = [p for p in seen.values() if p["own_userns"]]
    assert sandboxed, "no sandboxed process was seen on the host"
    for process in seen.values():
        assert process["uids"] == [ORDINARY_UID] * 4, process
    for process in sandboxed:
        assert all(not outside <= 0 < outside + count for _, outside, count in process["uid_map"]), process


def test_root_never_uses_a_user_namespace_mode(tmp_path):
    _sandbox("bubblewrap")
    if os.geteuid() != 0:
        pytest.skip("checks the refusal as root")
    sandbox = BubblewrapSandbox(modes=["userns", "direct"])
    assert "only the root mode is safe" in sandbox.why_unavailable()
    with pytest.raises(SandboxError, match="only the root mode is safe"):
        sandbox.run(tmp_path, ["true"])


# The policy itself, without a sandbox


_SECCOMP_DATA = struct.Struct("<iIQ6Q")


def _run_bpf(program: bytes, arch: int, nr: int, args: tuple[int, ...] = ()) -> int:
    """A classic-BPF interpreter for the instructions the generator uses; returns the seccomp action."""
    data = _SECCOMP_DATA.pack(nr, arch, 0, *(list(args) + [0] * 6)[:6])
    insns = [struct.unpack_from("<HBBI", program, offset) for offset in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x35, 0x45):  # jeq, jge, jset
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if taken else jf)
        elif code == 0x06:  # ret k
            return k
        else:
            raise AssertionError(f"unexpected BPF opcode {code:#x}")


def _docker_action(profile: dict, name: str, args: tuple[int, ...]) -> int:
    """What libseccomp does with the profile: the first rule whose name and every condition match."""
    padded = (list(args) + [0] * 6)[:6]
    for rule in profile["syscalls"]:
        if name not in rule["names"]:
            continue
        conditions = rule.get("args") or []
        if all(padded[c["index"]] & c["value"] == c["valueTwo"] for c in conditions):
            assert all(c["op"] == "SCMP_CMP_MASKED_EQ" for c in conditions)
            return seccomp.RET_ERRNO | rule["errnoRet"]
    return seccomp.RET_ALLOW


EPERM = seccomp.RET_ERRNO | errno.EPERM
ENOSYS = seccomp.RET_ERRNO | errno.ENOSYS
ALLOW = seccomp.RET_ALLOW
THREAD_FLAGS = 0x3D0F00  # what glibc's pthread_create passes to clone
# (name, args, expected action) besides the plainly refused table.
ARGUMENT_CASES = [
    ("clone", (THREAD_FLAGS,), ALLOW),
    ("clone", (0x01200011,), ALLOW),  # fork(): CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD
    *[
        ("clone", (flag | 17,), EPERM)
        for flag in (0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000)
    ],  # each CLONE_NEW* flag
    ("clone3", (0, 0), ENOSYS),
    ("personality", (0,), ALLOW),
    ("personality", (0xFFFFFFFF,), ALLOW),
    ("personality", (0x0040000,), EPERM),  # ADDR_NO_RANDOMIZE
    ("personality", (0x0400000,), EPERM),  # READ_IMPLIES_EXEC
    ("personality", (0x8,), EPERM),  # PER_LINUX32
    ("personality", (0x7FFFFFFF,), EPERM),
    ("personality", (0x80000000,), EPERM),
    ("ioctl", (0, seccomp.TIOCSTI), EPERM),
    ("ioctl", (0, seccomp.TIOCLINUX), EPERM),
    ("ioctl", (0, (1 << 32) | seccomp.TIOCSTI), EPERM),  # the kernel ignores the high word: so do we
    ("ioctl", (0, 0x5401), ALLOW),  # TCGETS
]
ORDINARY_CALLS = {
    "x86_64": {"read": 0, "openat": 257, "execve": 59},
    "aarch64": {"read": 63, "openat": 56, "execve": 221},
}


@pytest.mark.parametrize("arch", sorted(seccomp.AUDIT_ARCH))
def test_bpf_program_refuses_the_table_and_allows_the_rest(arch):
    program = seccomp.bpf_program(arch)
    assert len(program) % 8 == 0 and len(program) // 8 < 4096  # BPF_MAXINSNS
    audit = seccomp.AUDIT_ARCH[arch]
    numbers = _numbers(arch)
    refused = [name for name in seccomp.DENIED if name in numbers]
    assert len(refused) >= 50
    for name in refused:
        assert _run_bpf(program, audit, numbers[name]) == EPERM, name
    for name, args, action in ARGUMENT_CASES:
        assert _run_bpf(program, audit, numbers[name], args) == action, (name, args)
    for name, number in ORDINARY_CALLS[arch].items():
        assert _run_bpf(program, audit, number) == ALLOW, name
    # Another ABI: the 32-bit entry of either architecture, and x32 numbers on x86_64.
    for foreign in (0x40000003, 0x40000028, seccomp.AUDIT_ARCH["aarch64" if arch == "x86_64" else "x86_64"]):
        assert _run_bpf(program, foreign, 0) == seccomp.RET_KILL_PROCESS
    if arch == "x86_64":
        assert _run_bpf(program, audit, 0x40000000 | 39) == seccomp.RET_KILL_PROCESS


@pytest.mark.parametrize("arch", sorted(seccomp.AUDIT_ARCH))
def test_docker_profile_decides_like_the_bpf_program(arch):
    profile = json.loads(seccomp.docker_profile(arch))
    program = seccomp.bpf_program(arch)
    assert profile["defaultAction"] == "SCMP_ACT_ALLOW"
    assert profile["architectures"] == [{"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}[arch]]
    numbers = _numbers(arch)
    cases = [(name, (), None) for name in seccomp.DENIED if name in numbers] + ARGUMENT_CASES
    personality_values = [0, 1, 8, 0x40000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
    cases += [("personality", (value,), None) for value in personality_values]
    cases += [(name, (), None) for name in ORDINARY_CALLS[arch]]
    for name, args, _ in cases:
        number = numbers.get(name, ORDINARY_CALLS[arch].get(name))
        expected = _run_bpf(program, seccomp.AUDIT_ARCH[arch], number, args)
        assert _docker_action(profile, name, args) == expected, (name, args)


def test_syscall_numbers_match_the_kernel_headers():
    headers = {
        "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
        "aarch64": Path("/usr/include/asm-generic/unistd.h"),  # arm64 uses the generic table
    }
    missing = [str(path) for path in headers.values() if not path.exists()]
    if missing:
        pytest.skip(f"kernel headers not installed (linux-libc-dev): {', '.join(missing)}")
    compared = 0
    for arch, header in headers.items():
        defined = {
            match.group(1): int(match.group(2))
            for match in re.finditer(r"^#define __NR_(\w+)\s+(\d+)\s*$", header.read_text(), re.MULTILINE)
        }
        for name, number in _numbers(arch).items():
            if name in defined:  # headers older than the running kernel lack the newest calls
                assert defined[name] == number, (arch, name, defined[name], number)
                compared += 1
    assert compared >= 100


def test_unknown_architecture_makes_every_backend_unavailable(monkeypatch):
    monkeypatch.setattr(seccomp.platform, "machine", lambda: "riscv64")
    with pytest.raises(seccomp.SeccompUnsupported):
        seccomp.bpf_program()
    for backend in BACKENDS.values():
        assert backend().why_unavailable() == "no seccomp syscall table for the riscv64 architecture"
