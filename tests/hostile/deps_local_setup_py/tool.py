"""Class dependencies / host code execution: requirements.txt names a local directory (next to the candidate: candidates are flat) whose setup.py writes a marker on the host (pip would build its metadata on the host, as root, during the dependency check).

Expected: refused at the dependency gate without running setup.py; the marker /tmp/evorag-hostile-pwned-setup-py never appears."""


def deps_local_setup_py(text: str) -> int:
    """Count the characters of ``text``."""
    return len(text)
