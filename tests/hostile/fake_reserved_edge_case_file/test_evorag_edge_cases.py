import pytest


@pytest.mark.parametrize("kwargs", [{}] * 40)
def test_edge_case(kwargs):
    assert True
