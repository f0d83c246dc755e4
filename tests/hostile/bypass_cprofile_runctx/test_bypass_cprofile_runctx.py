from tool import bypass_cprofile_runctx


def test_profiles():
    assert bypass_cprofile_runctx("x") >= 0
