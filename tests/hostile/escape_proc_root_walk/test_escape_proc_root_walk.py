import glob
import os


def test_walk_proc_roots():
    found = {}
    for root in ["/proc/self/root", "/proc/1/root", *glob.glob("/proc/[0-9]*/cwd")]:
        for pattern in ("root/evorag-hostile*", "root/.ssh/*", "tmp/pytest-of-*/*/*/evorag-home*/*",
                        "tmp/pytest-of-*/*/*/home-*/*", "etc/shadow", "tmp/evorag-hostile-canary-*/*"):
            for path in glob.glob(os.path.join(root, pattern)):
                try:
                    with open(path, "rb") as handle:
                        found[path] = handle.read(200)
                except OSError as exc:
                    report("read " + path, False, exc)
    report("host files found", bool(found), sorted(found))
    assert not found, found
    assert os.path.exists("/root/evorag-hostile-battery-secret.txt")


def report(step, ok, detail=""):
    """One line per attack step, read by tests/test_hostile_battery.py in its sandbox mode: OK means the step
    worked (a breach of the sandbox's promises), blocked that it failed, info is context."""
    word = "info" if ok is None else "OK" if ok else "blocked"
    print(f"EVORAG-HOSTILE {step}: {word} {str(detail)[:240]}", flush=True)
