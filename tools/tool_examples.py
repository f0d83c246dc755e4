"""A tool's examples: which inputs it is called with at deploy, and how a recorded output is compared later.

The inputs come, in this order of preference, from what the host reads in tool.py's AST (it never imports it):
1. ``EXAMPLES``: a module-level literal list of keyword-argument dicts, e.g.
   ``EXAMPLES = [{"text": "one two"}, {"text": "a a b", "mode": "unique"}]``;
2. doctest lines of the function's docstring, ``>>> word_count("one two")``, with literal arguments
   (positional ones taken in the parameters' order);
3. else one generated input (``source: "generated"``): defaults, else a plain value per type.
The outputs are recorded by calling the tool in the sandbox (see ``EvolutionPipeline.record_examples``); an
author's example that raises or breaks the schema refuses the deploy, a generated one that the tool refuses
(ValueError/TypeError are clean validation) is simply not recorded. At most ``MAX_EXAMPLES`` are kept.
"""

from __future__ import annotations

import ast
import json

from evorag.tools.python_ast import parse_python

MAX_EXAMPLES = 3


def example_inputs(source: str, function: str, schema: dict) -> tuple[list[dict], str]:
    """(keyword-argument dicts, where they come from: "EXAMPLES" | "docstring" | "generated")."""
    tree = parse_python(source)
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) and node.value is not None else []
        if any(isinstance(t, ast.Name) and t.id == "EXAMPLES" for t in targets):
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                raise ValueError(f"tool.py line {node.lineno}: EXAMPLES must be a literal list of keyword-argument "
                                 "dicts") from None
            if not isinstance(value, (list, tuple)) or not value or not all(
                    isinstance(item, dict) and all(isinstance(k, str) for k in item) for item in value):
                raise ValueError(f"tool.py line {node.lineno}: EXAMPLES must be a non-empty list of "
                                 "keyword-argument dicts")
            return [dict(item) for item in value][:MAX_EXAMPLES], "EXAMPLES"
    definition = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                       and n.name == function), None)
    docstring = ast.get_docstring(definition) if definition is not None else None
    calls = _doctest_calls(docstring or "", function, list(schema.get("properties") or {}))
    if calls:
        return calls[:MAX_EXAMPLES], "docstring"
    return [plain_input(schema)], "generated"


def plain_input(schema: dict) -> dict:
    """Keyword arguments a reader can follow: each parameter's default, else its first allowed value, else a
    plain value of its type (the edge cases' boundary values would make poor documentation)."""
    arguments = {}
    for name, spec in (schema.get("properties") or {}).items():
        if "default" in spec:
            arguments[name] = spec["default"]
        elif spec.get("enum"):
            arguments[name] = spec["enum"][0]
        else:
            kind = spec.get("type")
            kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
            arguments[name] = _PLAIN.get(kind)
    return arguments


_PLAIN = {"string": "example", "integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}


def _doctest_calls(docstring: str, function: str, order: list[str]) -> list[dict]:
    calls = []
    for line in docstring.splitlines():
        text = line.strip()
        if not text.startswith(">>> "):
            continue
        try:
            call = parse_python(text[4:], mode="eval").body
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == function):
                continue
            if len(call.args) > len(order) or any(k.arg is None for k in call.keywords):
                continue
            arguments = {order[i]: ast.literal_eval(arg) for i, arg in enumerate(call.args)}
            arguments.update({k.arg: ast.literal_eval(k.value) for k in call.keywords})
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            continue  # not a literal call of the tool: not an example evorag can replay
        calls.append(arguments)
    return calls


def normalized(value: object) -> str:
    """A result as JSON text (what the sandbox runner prints): the form recorded and compared."""
    return json.dumps(value, sort_keys=True, default=str)
