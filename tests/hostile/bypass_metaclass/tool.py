"""Class risk-scan bypass: a metaclass built with type() runs a command when a private class is defined.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import shutil

_Boot = type("_Boot", (type,), {"__init__": lambda cls, *args: setattr(cls, "status", shutil.os.system("true"))})


class _Started(metaclass=_Boot):
    pass


def bypass_metaclass(text: str) -> int:
    """Return the start status."""
    return _Started.status + len(text) * 0
