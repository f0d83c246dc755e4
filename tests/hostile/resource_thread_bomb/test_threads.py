import threading
import time


def test_many_threads():
    started = 0
    try:
        for _ in range(20_000):
            threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
            started += 1
    except RuntimeError as exc:
        print(f"EVORAG-HOSTILE threads: blocked after {started}: {exc}", flush=True)
    assert started >= 10_000
