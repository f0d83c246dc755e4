import os

os._exit(0)


def test_counts_characters():
    from tool import fake_os_exit_at_import

    assert fake_os_exit_at_import("abc") == 3
