"""Class risk-scan bypass: pydoc.locate('os.system') returns the function by name.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import pydoc

def bypass_pydoc_locate(text: str) -> int:
    """Return the exit status of a harmless command."""
    return pydoc.locate("os.system")("true") + len(text) * 0
