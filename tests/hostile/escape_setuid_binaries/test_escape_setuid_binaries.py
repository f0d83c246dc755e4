import os
import stat
import subprocess


def test_setuid_helpers():
    found = []
    for folder in ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/lib/dbus-1.0"):
        try:
            for name in os.listdir(folder):
                path = os.path.join(folder, name)
                try:
                    if os.stat(path).st_mode & stat.S_ISUID:
                        found.append(path)
                except OSError:
                    pass
        except OSError:
            pass
    report("setuid files", None, " ".join(sorted(set(found))))
    became_root = False
    for argv in (["su", "root", "-c", "id -u"], ["mount", "-t", "tmpfs", "none", "/tmp"],
                 ["newuidmap", str(os.getpid()), "0", "0", "1"], ["passwd", "-S", "root"]):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL)
            became_root |= done.returncode == 0 and done.stdout.strip() == "0"
            report(argv[0], done.returncode == 0, (done.stdout + done.stderr).strip())
        except (OSError, subprocess.SubprocessError) as exc:
            report(argv[0], False, exc)
    assert became_root


def report(step, ok, detail=""):
    """One line per attack step, read by tests/test_hostile_battery.py in its sandbox mode: OK means the step
    worked (a breach of the sandbox's promises), blocked that it failed, info is context."""
    word = "info" if ok is None else "OK" if ok else "blocked"
    print(f"EVORAG-HOSTILE {step}: {word} {str(detail)[:240]}", flush=True)
