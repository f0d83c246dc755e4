"""Count lines with the system's wc."""

import os
import subprocess as sp


def line_count(text: str) -> int:
    """Count the lines of ``text`` with ``wc -l``."""
    os.system("true")
    result = sp.run(["wc", "-l"], input=text, capture_output=True, text=True, check=True)
    return int(result.stdout.split()[0])
