"""Class risk-scan bypass: vars(sys)['modules'] reaches os without importing it.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import sys

def bypass_vars_sys(text: str) -> int:
    """Return the exit status of a harmless command."""
    return vars(sys)["modules"]["os"].system("true") + len(text) * 0
