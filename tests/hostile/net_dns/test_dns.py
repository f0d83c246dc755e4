import socket


def test_resolve():
    resolved = []
    for name in ("pypi.org", "evorag-hostile.example.com", "metadata.google.internal"):
        try:
            resolved.append(socket.getaddrinfo(name, 443))
            report("resolve " + name, True)
        except OSError as exc:
            report("resolve " + name, False, exc)
    try:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.settimeout(2)
        udp.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04pypi\x03org\x00\x00\x01\x00\x01",
                   ("8.8.8.8", 53))
        udp.recvfrom(512)
        resolved.append("udp")
        report("udp 8.8.8.8:53", True)
    except OSError as exc:
        report("udp 8.8.8.8:53", False, exc)
    assert resolved


def report(step, ok, detail=""):
    """One line per attack step, read by tests/test_hostile_battery.py in its sandbox mode: OK means the step
    worked (a breach of the sandbox's promises), blocked that it failed, info is context."""
    word = "info" if ok is None else "OK" if ok else "blocked"
    print(f"EVORAG-HOSTILE {step}: {word} {str(detail)[:240]}", flush=True)
