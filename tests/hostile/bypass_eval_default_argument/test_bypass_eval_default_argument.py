from tool import bypass_eval_default_argument


def test_probe():
    assert bypass_eval_default_argument("x") == 0
