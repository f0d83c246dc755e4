import ctypes
import os
import subprocess

CLONE_NEWNS, CLONE_NEWUSER = 0x00020000, 0x10000000


def test_new_namespaces_and_mount():
    libc = ctypes.CDLL(None, use_errno=True)
    ok = libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0
    report("unshare(NEWUSER|NEWNS)", ok, os.strerror(ctypes.get_errno()))
    os.makedirs("/tmp/evorag-hostile-mnt", exist_ok=True)
    mounted = libc.mount(b"none", b"/tmp/evorag-hostile-mnt", b"tmpfs", 0, None) == 0
    report("mount tmpfs", mounted, os.strerror(ctypes.get_errno()))
    try:
        done = subprocess.run(["unshare", "-Urm", "id", "-u"], capture_output=True, text=True, timeout=10)
        report("unshare -Urm", done.returncode == 0, (done.stdout + done.stderr).strip())
    except (OSError, subprocess.SubprocessError) as exc:
        report("unshare -Urm", False, exc)
    assert ok or mounted


def report(step, ok, detail=""):
    """One line per attack step, read by tests/test_hostile_battery.py in its sandbox mode: OK means the step
    worked (a breach of the sandbox's promises), blocked that it failed, info is context."""
    word = "info" if ok is None else "OK" if ok else "blocked"
    print(f"EVORAG-HOSTILE {step}: {word} {str(detail)[:240]}", flush=True)
