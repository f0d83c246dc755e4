import tempfile


def test_fill_the_disk():
    written = 0
    with tempfile.TemporaryDirectory() as folder:
        with open(f"{folder}/fill", "wb") as handle:
            chunk = b"\0" * (16 * 1024 * 1024)
            try:
                for _ in range(256):
                    written += handle.write(chunk)
            except OSError as exc:
                print(f"EVORAG-HOSTILE disk fill: blocked after {written} bytes: {exc}", flush=True)
    assert written >= 4 * 1024**3
