"""Class risk-scan bypass: Path.open('w') is a write the method-name list does not know.

Expected: HIGH risk -> pending; never deployed with --yes, and nothing of it runs before a human approves."""
import pathlib

def bypass_path_open_method(text: str) -> int:
    """Store ``text``."""
    with pathlib.Path("/tmp/evorag-hostile-path-open").open("w") as handle:
        return handle.write(text)
