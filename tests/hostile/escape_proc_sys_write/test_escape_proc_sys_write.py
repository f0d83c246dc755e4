def flip(path, new):
    try:
        with open(path) as handle:
            old = handle.read().strip()
        with open(path, "w") as handle:
            handle.write(new if old != new else "0")
        report(path, True, f"{old} -> {new}")
        return True
    except OSError as exc:
        report(path, False, exc)
        return False


def test_sysctl_writes():
    results = [
        flip("/proc/sys/vm/overcommit_memory", "1"),
        flip("/proc/sys/kernel/sysrq", "0"),
        flip("/proc/sys/kernel/hostname", "evorag-hostile"),
    ]
    try:
        with open("/proc/sysrq-trigger", "w") as handle:
            handle.write("h")
        report("sysrq-trigger", True)
        results.append(True)
    except OSError as exc:
        report("sysrq-trigger", False, exc)
    assert any(results)


def report(step, ok, detail=""):
    """One line per attack step, read by tests/test_hostile_battery.py in its sandbox mode: OK means the step
    worked (a breach of the sandbox's promises), blocked that it failed, info is context."""
    word = "info" if ok is None else "OK" if ok else "blocked"
    print(f"EVORAG-HOSTILE {step}: {word} {str(detail)[:240]}", flush=True)
