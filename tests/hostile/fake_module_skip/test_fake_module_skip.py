import pytest

pytest.skip("flaky on CI", allow_module_level=True)


def test_counts_characters():
    from tool import fake_module_skip

    assert fake_module_skip("abc") == 3
