import os


def test_become_root():
    with open("/proc/self/uid_map") as handle:
        lines = [[int(n) for n in line.split()] for line in handle if line.strip()]
    uid = os.getuid()
    host_uid = next((outside + uid - inside for inside, outside, count in lines if inside <= uid < inside + count),
                    None)
    # uid_map is relative to the *parent* user namespace: bubblewrap nests two (--disable-userns), so a
    # "65534 0 1" seen here points at the outer namespace's root, which is host uid 65534. Only the host can
    # tell the real host uid; tests/test_sandbox_isolation.py checks it from there (/proc/PID/status).
    report("uid_map (relative to the parent namespace)", None, f"uid {uid} -> parent uid {host_uid} ({lines})")
    with open("/proc/self/status") as handle:
        caps = [line.strip() for line in handle if line.startswith(("CapEff", "CapBnd", "NoNewPrivs", "Seccomp"))]
    report("status", None, "; ".join(caps))
    for attempt in (lambda: os.setuid(0), lambda: os.setresuid(0, 0, 0), lambda: os.setgid(0)):
        try:
            attempt()
            report("setuid", True, os.getuid())
        except OSError as exc:
            report("setuid", False, exc)
    assert os.getuid() == 0


def report(step, ok, detail=""):
    """One line per attack step, read by tests/test_hostile_battery.py in its sandbox mode: OK means the step
    worked (a breach of the sandbox's promises), blocked that it failed, info is context."""
    word = "info" if ok is None else "OK" if ok else "blocked"
    print(f"EVORAG-HOSTILE {step}: {word} {str(detail)[:240]}", flush=True)
