"""Class risk-scan bypass: marshal.loads of a code object turned into a function.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import marshal
import types

def _template() -> int:
    return 0


def bypass_marshal_function(text: str) -> int:
    """Run a stored function."""
    code = marshal.loads(marshal.dumps(compile("__import__('os').getuid()", "x", "eval")))
    return types.FunctionType(code, {})() + len(text) * 0
