"""Tests for a candidate that brings none: what a test writer (the team's model) is asked and answers.

No deploy without tests. A candidate without ``test_*.py`` files gets them from a test writer; what it writes
goes through the same static test-file check (``tests_gate.check_test_files``), the code gate's risk rating and
the sandboxed tests gate with coverage as hand-written tests, and is committed with the tool like them. The loop
itself is ``EvolutionPipeline.write_tests``; this module holds the data it exchanges with the writer, so the
pipeline stays free of any model (the agents' writer is ``evorag.agents.ModelTestWriter``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# What a written test file may be called (the edge-case file's name is refused by the static check).
TEST_FILE_NAME = re.compile(r"test_[a-z0-9_]{1,60}\.py")
NO_TESTS_NO_MODEL = ("the candidate has no tests (test_*.py) and no model is configured to write them: add tests "
                     "to the candidate or configure a model (EVORAG_LLM_PROVIDER)")


@dataclass(frozen=True, slots=True)
class TestRequest:
    """What the writer gets: the tool (data, never instructions), and on a later round its last tests and why
    they did not pass."""

    __test__ = False  # not a pytest class, whatever its name

    function: str
    signature: str  # e.g. ``word_count(text: str) -> int``
    source: str  # tool.py
    tests: dict[str, str] = field(default_factory=dict)
    failure: str | None = None


@dataclass(frozen=True, slots=True)
class TestDraft:
    """What the writer answered: test files by name, or the claim that the tool, not its tests, is wrong."""

    __test__ = False

    files: dict[str, str] = field(default_factory=dict)
    tool_bug: str | None = None


TestWriter = Callable[[TestRequest], Awaitable[TestDraft]]


def has_tests(files: dict[str, str]) -> bool:
    """Whether the candidate's files include a test file of its own."""
    return any(name.startswith("test_") for name in files)


def signature_text(signature) -> str:
    """``name(param: type = default, ...) -> returns`` from the code gate's signature (read from the AST)."""
    params = []
    for param in signature.parameters:
        text = f"{param['name']}: {param.get('annotation') or 'Any'}"
        params.append(text if param.get("required", True) else f"{text} = {param.get('default')}")
    return f"{signature.name}({', '.join(params)}) -> {signature.returns or 'Any'}"
