"""Class risk-scan bypass: a module re-export (shutil.os.system).

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import shutil

def bypass_shutil_os_system(text: str) -> int:
    """Return the exit status of a harmless command."""
    return shutil.os.system("true") + len(text) * 0
