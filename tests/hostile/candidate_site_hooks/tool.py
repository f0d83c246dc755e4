"""Class sandbox-escape / gate-fake (.pth files, sitecustomize.py and usercustomize.py in the candidate directory, i.e. in the sandbox's working directory).

Expected: none of them runs; the test needs a name they would define -> rejected at the tests gate."""


def candidate_site_hooks(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
