import os


def test_fork_forever():
    children = 0
    while True:
        try:
            if os.fork() == 0:
                while True:
                    pass
            children += 1
        except OSError:
            print(f"EVORAG-HOSTILE fork bomb: blocked after {children} children", flush=True)
            os._exit(3)
