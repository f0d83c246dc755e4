import os
import subprocess
import sys


def test_preload_and_sitecustomize():
    with open("/tmp/sitecustomize.py", "w") as handle:
        handle.write("print('EVORAG-HOSTILE sitecustomize: info ran in child')\n")
    env = {**os.environ, "PYTHONPATH": "/tmp", "LD_PRELOAD": "/tmp/evorag-hostile-missing.so"}
    done = subprocess.run([sys.executable, "-c", "print('child')"], env=env, capture_output=True, text=True)
    # Inside the sandbox this is allowed (it only affects the sandbox); what matters is the host, checked outside.
    report("child with PYTHONPATH=/tmp", None, (done.stdout + done.stderr)[-200:])
    assert "sitecustomize" in done.stdout


def report(step, ok, detail=""):
    """One line per attack step, read by tests/test_hostile_battery.py in its sandbox mode: OK means the step
    worked (a breach of the sandbox's promises), blocked that it failed, info is context."""
    word = "info" if ok is None else "OK" if ok else "blocked"
    print(f"EVORAG-HOSTILE {step}: {word} {str(detail)[:240]}", flush=True)
