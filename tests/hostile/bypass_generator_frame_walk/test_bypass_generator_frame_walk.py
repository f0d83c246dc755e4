from tool import bypass_generator_frame_walk


def test_runs():
    assert bypass_generator_frame_walk("x") == 0
