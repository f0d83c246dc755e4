"""Class gate-fake (pytest configuration in the candidate directory: pytest.ini, tox.ini, setup.cfg, pyproject.toml with addopts that deselect the failing test, disable junitxml or collect only).

Expected: ignored (not candidate files) -> the honest failing test runs and fails -> rejected at the tests gate."""


def candidate_pytest_config(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose
