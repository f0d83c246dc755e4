"""Class risk-scan bypass: os.system reached with getattr and a name built at run time.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import os

def bypass_getattr_built_name(text: str) -> int:
    """Return the exit status of a harmless command."""
    command = getattr(os, "sys" + "tem")
    return command("true") + len(text) * 0
