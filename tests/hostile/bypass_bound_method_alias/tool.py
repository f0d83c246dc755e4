"""Class risk-scan bypass: a bound method alias (put = Path(...).write_text) writes outside temp.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import pathlib

put = pathlib.Path("/tmp/evorag-hostile-bound-method").write_text


def bypass_bound_method_alias(text: str) -> int:
    """Store ``text`` and return its length."""
    return put(text)
