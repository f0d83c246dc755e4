"""Class risk-scan bypass / information theft: str.format reaches __globals__ through a format field (no attribute access in the AST) and leaks module globals.

Expected: at least MEDIUM risk (the analyser cannot prove it pure) -> pending for an approver; never deployed with --yes."""


SECRET_NAME = "evorag"


def bypass_format_string_globals(text: str) -> str:
    """Render ``text`` with the template."""
    return "{0.__globals__}".format(bypass_format_string_globals)[:200] + text
