"""The docstrings of a Python module as a Markdown page, read with ``ast`` (the code is never imported or run).

The page has the module as its title, then one section per public class and function (methods under their
class) with its signature; doctest examples (``>>>`` lines and their output) become fenced code, so they are
found by code search like any other example.
"""

from __future__ import annotations

import ast
from pathlib import PurePosixPath

from evorag.tools.file_formats import UnreadableFile
from evorag.tools.python_ast import parse_python

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def module_name(relative: str) -> str:
    """``src/pkg/mod.py`` -> ``pkg.mod`` (a leading ``src`` folder is a layout, not a package)."""
    parts = list(PurePosixPath(relative).with_suffix("").parts)
    if len(parts) > 1 and parts[0] == "src":
        parts = parts[1:]
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def module_markdown(relative: str, source: bytes) -> str:
    """The docstrings of the module at ``relative`` as Markdown; empty when it has none."""
    try:
        tree = parse_python(source, filename=relative)
    except (SyntaxError, ValueError) as exc:
        raise UnreadableFile(f"not valid Python ({type(exc).__name__})") from None
    name = module_name(relative)
    sections: list[str] = []
    doc = ast.get_docstring(tree)
    if doc:
        sections.append(_with_examples(doc))
    for node in tree.body:
        if isinstance(node, _DEFINITIONS) and not node.name.startswith("_"):
            sections += _definition(node, level=2, prefix="")
    if not sections:
        return ""
    return f"# {name}\n\n" + "\n\n".join(sections) + "\n"


def _definition(node: ast.AST, *, level: int, prefix: str) -> list[str]:
    doc = ast.get_docstring(node)
    if isinstance(node, ast.ClassDef):
        bases = ", ".join(ast.unparse(base) for base in node.bases)
        heading = f"class {prefix}{node.name}" + (f"({bases})" if bases else "")
        members: list[str] = []
        for child in node.body:
            if isinstance(child, _DEFINITIONS) and (not child.name.startswith("_") or child.name == "__init__"):
                members += _definition(child, level=min(level + 1, 6), prefix=f"{node.name}.")
        if not doc and not members:
            return []
        return [f"{'#' * level} {heading}" + (f"\n\n{_with_examples(doc)}" if doc else ""), *members]
    if not doc:
        return []
    asynchronous = "async " if isinstance(node, ast.AsyncFunctionDef) else ""
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    signature = f"{asynchronous}{prefix}{node.name}({ast.unparse(node.args)}){returns}"
    return [f"{'#' * level} {prefix}{node.name}\n\n```python\n{signature}\n```\n\n{_with_examples(doc)}"]


def _with_examples(doc: str) -> str:
    """A docstring whose doctest examples are fenced; lines that would read as Markdown headings are escaped
    (a docstring's own fenced code stays code)."""
    out: list[str] = []
    example: list[str] = []

    def close() -> None:
        if example:
            out.extend(["```pycon", *example, "```"])
            example.clear()

    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.startswith(">>>") or (example and stripped and not stripped.startswith("```")):
            example.append(stripped)
            continue
        close()
        out.append("\\" + line if stripped.startswith("#") else line)
    close()
    return "\n".join(out).strip()
