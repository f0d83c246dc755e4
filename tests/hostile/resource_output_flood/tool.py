"""Class resource (output flood): the test prints 30 MB before failing, to bury the failure and the result.

Expected: the output is cut, the result still reaches the gate -> rejected at the tests gate."""


def resource_output_flood(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text) + 1  # wrong on purpose: its honest test fails
