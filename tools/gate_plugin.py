"""Loaded into pytest by the tests gate's runner (``-p``): reports on a pipe that pytest reached its normal end.

pytest writes its JUnit XML when the session finishes and calls ``pytest_unconfigure`` after that, last. A
test that ends the process early (``os._exit(0)`` after forging a result file, a signal to itself) never
gets here, and the runner then counts the run as unfinished, whatever files it left behind.
"""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    fd = os.environ.get("EVORAG_GATE_FD", "")
    if fd.isdigit():
        try:
            os.write(int(fd), b"finished\n")
        except OSError:
            pass
