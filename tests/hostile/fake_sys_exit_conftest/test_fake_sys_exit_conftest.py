import sys

sys.exit(0)


def test_counts_characters():
    from tool import fake_sys_exit_conftest

    assert fake_sys_exit_conftest("abc") == 3
