import os


def test_inherited_descriptors():
    leaked = []
    stdio = set()
    for fd in (0, 1, 2):
        try:
            stdio.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    for name in sorted(os.listdir("/proc/self/fd"), key=int):
        fd = int(name)
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the descriptor listdir itself used
        # pytest's own copies of stdio (faulthandler, capture) and /dev/null are not inherited from outside.
        inherited = fd > 2 and target not in stdio and target != "/dev/null" and not target.startswith("/proc")
        report(f"fd {fd}", inherited, target)
        if inherited:
            try:
                os.write(fd, b"EVORAG-HOSTILE-FD-WRITE\n")
                leaked.append(target)
                report(f"write fd {fd}", True, target)
            except OSError as exc:
                report(f"write fd {fd}", False, exc)
    assert leaked


def report(step, ok, detail=""):
    """One line per attack step, read by tests/test_hostile_battery.py in its sandbox mode: OK means the step
    worked (a breach of the sandbox's promises), blocked that it failed, info is context."""
    word = "info" if ok is None else "OK" if ok else "blocked"
    print(f"EVORAG-HOSTILE {step}: {word} {str(detail)[:240]}", flush=True)
