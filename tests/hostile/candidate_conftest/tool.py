"""Class gate-fake / sandbox-escape (pytest conftest in the candidate directory): conftest.py patches the wrong tool into a right one and would deselect every test. Only tool.py, requirements.txt and test_*.py are candidate files.

Expected: conftest.py never runs, the honest test fails -> rejected at the tests gate (it deploys only if conftest.py ran)."""


def candidate_conftest(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: only conftest.py could make the test pass
