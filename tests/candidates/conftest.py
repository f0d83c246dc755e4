"""Candidate tool directories are data for the gate tests, not tests of this suite.

Their ``test_*.py`` files are meant to run inside the sandbox (some never finish, some exhaust memory),
so pytest must never collect them from here.
"""

collect_ignore_glob = ["*/*"]
