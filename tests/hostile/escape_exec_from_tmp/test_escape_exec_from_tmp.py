import glob
import os
import shutil
import subprocess


def run(argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=5)
        return done.returncode == 0, (done.stdout + done.stderr).strip()
    except OSError as exc:
        return False, str(exc)


def test_exec_from_tmp():
    shutil.copy("/bin/true", "/tmp/evorag-hostile-true")
    os.chmod("/tmp/evorag-hostile-true", 0o755)
    with open("/tmp/evorag-hostile.sh", "w") as handle:
        handle.write("#!/bin/sh\necho script-ran\n")
    os.chmod("/tmp/evorag-hostile.sh", 0o755)
    results = {"binary": run(["/tmp/evorag-hostile-true"]), "script": run(["/tmp/evorag-hostile.sh"])}
    for loader in glob.glob("/lib64/ld-linux*.so*") + glob.glob("/lib/x86_64-linux-gnu/ld-linux*.so*"):
        results["ld.so " + loader] = run([loader, "/tmp/evorag-hostile-true"])
    for name, (ok, detail) in results.items():
        report("exec " + name, ok, detail)
    assert any(ok for ok, _ in results.values())


def report(step, ok, detail=""):
    """One line per attack step, read by tests/test_hostile_battery.py in its sandbox mode: OK means the step
    worked (a breach of the sandbox's promises), blocked that it failed, info is context."""
    word = "info" if ok is None else "OK" if ok else "blocked"
    print(f"EVORAG-HOSTILE {step}: {word} {str(detail)[:240]}", flush=True)
