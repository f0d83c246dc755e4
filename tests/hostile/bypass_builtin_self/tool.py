"""Class risk-scan bypass: a builtin function's __self__ is the builtins module (exec without naming it).

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""


def bypass_builtin_self(text: str) -> int:
    """Evaluate a snippet."""
    scope: dict = {}
    getattr(len.__self__, "ex" + "ec")("import os; result = os.getuid()", scope)
    return scope["result"] + len(text) * 0
