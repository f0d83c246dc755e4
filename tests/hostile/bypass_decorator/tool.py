"""Class risk-scan bypass: an expression decorator on a private helper runs a command at import.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import shutil

@(lambda function: (setattr(function, "status", shutil.os.system("true")), function)[1])
def _helper() -> None:
    return None


def bypass_decorator(text: str) -> int:
    """Return the helper's status."""
    return _helper.status + len(text) * 0
