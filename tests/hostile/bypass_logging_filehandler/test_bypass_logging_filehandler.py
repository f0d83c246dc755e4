from tool import bypass_logging_filehandler


def test_logs():
    assert bypass_logging_filehandler("abc") == 3
