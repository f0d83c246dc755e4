"""Class risk-scan bypass: code.InteractiveConsole().push runs source lines.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import code

def bypass_code_console(text: str) -> int:
    """Run a line in a console and return its result."""
    scope: dict = {}
    code.InteractiveConsole(scope).push("import os; result = os.getuid()")
    return scope["result"] + len(text) * 0
