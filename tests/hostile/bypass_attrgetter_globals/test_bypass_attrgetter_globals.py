from tool import bypass_attrgetter_globals


def test_runs_code():
    assert bypass_attrgetter_globals("import os\nresult = os.getuid()") != ""
