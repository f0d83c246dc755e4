import socket


def test_reach_the_host():
    reached = []
    for host in ("127.0.0.1", "172.17.0.1", "10.0.2.2", "host.docker.internal"):
        try:
            with socket.create_connection((host, 47123), timeout=2) as connection:
                connection.sendall(b"EVORAG-HOSTILE hello\n")
                reached.append(host)
                report("connect " + host, True)
        except OSError as exc:
            report("connect " + host, False, exc)
    assert reached


def report(step, ok, detail=""):
    """One line per attack step, read by tests/test_hostile_battery.py in its sandbox mode: OK means the step
    worked (a breach of the sandbox's promises), blocked that it failed, info is context."""
    word = "info" if ok is None else "OK" if ok else "blocked"
    print(f"EVORAG-HOSTILE {step}: {word} {str(detail)[:240]}", flush=True)
