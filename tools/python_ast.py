"""``ast.parse`` that is safe when several threads parse at once.

CPython 3.11 keeps the counter its AST converter uses to check recursion in interpreter-wide state, not per
thread: two threads building AST objects at the same time can corrupt it, and a parse fails with
``SystemError: AST constructor recursion depth mismatch`` (python/cpython#106905). evorag parses in several
threads at once: the code and dependency gates of one candidate run side by side, and queue workers and the MCP
server judge candidates in worker threads. Every parse of evorag's goes through ``parse_python``, which holds one
process-wide lock while the tree is built (parsing a tool's files takes milliseconds, so the lock costs little).
"""

from __future__ import annotations

import ast
import threading

_LOCK = threading.Lock()


def parse_python(source: str | bytes, filename: str = "<unknown>", mode: str = "exec") -> ast.AST:
    """``ast.parse(source, filename, mode)``, one thread at a time."""
    with _LOCK:
        return ast.parse(source, filename=filename, mode=mode)
