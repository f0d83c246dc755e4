import socket

TARGETS = ["\0evorag-hostile-battery", "/tmp/evorag-hostile-battery.sock", "/var/run/docker.sock",
           "/run/docker.sock", "/run/containerd/containerd.sock", "/run/dbus/system_bus_socket", "/dev/log",
           "/run/systemd/private"]


def test_reach_host_sockets():
    reached = []
    for target in TARGETS:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.settimeout(2)
        try:
            client.connect(target)
            client.sendall(b"EVORAG-HOSTILE hello from the sandbox\n")
            reached.append(target)
            report("connect " + repr(target), True)
        except OSError as exc:
            report("connect " + repr(target), False, exc)
        finally:
            client.close()
    assert reached


def report(step, ok, detail=""):
    """One line per attack step, read by tests/test_hostile_battery.py in its sandbox mode: OK means the step
    worked (a breach of the sandbox's promises), blocked that it failed, info is context."""
    word = "info" if ok is None else "OK" if ok else "blocked"
    print(f"EVORAG-HOSTILE {step}: {word} {str(detail)[:240]}", flush=True)
