"""Redeploy compatibility: each breaking kind, additive changes, no change, the next version and the guide.

The interfaces are read from real tool sources by the code gate (``check_code``), as a deploy reads them.
"""

from __future__ import annotations

import pytest
from evorag.tools.code_checks import check_code
from evorag.tools.tool_compat import (
    ToolInterface,
    compare,
    describe,
    example_call,
    migration_guide,
    next_version,
    parse_version,
)


def interface(signature: str, returns: str = "int") -> ToolInterface:
    source = f'from typing import Literal\n\n\ndef word_count({signature}) -> {returns}:\n    """Count."""\n    return 0\n'
    result = check_code(source)
    assert result.ok, result.reason
    fn = result.function
    return ToolInterface(fn.json_schema, fn.return_schema, fn.returns)


BASE = "text: str, limit: int = 10"


@pytest.mark.parametrize(("signature", "returns", "expected"), [
    ("limit: int = 10", "int", "parameter 'text' was removed"),
    ("content: str, limit: int = 10", "int", "parameter 'text' was renamed to 'content'"),
    ("text: str, mode: str, limit: int = 10", "int", "new required parameter 'mode' (str)"),
    ("text: str, limit: int", "int", "parameter 'limit' is now required"),
    ("text: Literal['a', 'b'], limit: int = 10", "int", "parameter 'text' was narrowed from str to one of \"a\", \"b\""),
    ("text: str, limit: bool = True", "int", "parameter 'limit' was narrowed from int to bool"),
    (BASE, "str", "the return type changed from int to str"),
    (BASE, "int | None", "the return type changed from int to int | None"),  # wider results break callers too
])
def test_each_breaking_kind_is_named(signature, returns, expected):
    verdict = compare(interface(BASE), interface(signature, returns))
    assert verdict.level == "breaking" and verdict.breaking
    assert expected in verdict.reasons("breaking"), verdict.reasons()


@pytest.mark.parametrize(("signature", "expected"), [
    ("text: str, limit: int = 10, lower: bool = False", "new optional parameter 'lower' (bool, default false)"),
    ("text: str = '', limit: int = 10", "parameter 'text' is now optional"),
    ("text: str, limit: float = 10", "parameter 'limit' was widened from int to float"),
    ("text: str | None, limit: int = 10", "parameter 'text' was widened from str to str | None"),
    ("text: str, limit: int = 20", "the default of 'limit' changed from 10 to 20"),
])
def test_additive_changes_are_minor(signature, expected):
    verdict = compare(interface(BASE), interface(signature))
    assert (verdict.level, verdict.reasons()) == ("additive", [expected])
    assert next_version("1.4.2", verdict.level) == "1.5.0"


def test_a_narrowed_then_widened_list_type_and_a_same_interface():
    assert compare(interface("items: list[str]"), interface("items: list[str | int]")).level == "additive"
    assert compare(interface("items: list[str | int]"), interface("items: list[str]")).level == "breaking"
    assert compare(interface("items: dict[str, int]"), interface("items: dict[str, float]")).level == "additive"
    same = compare(interface(BASE), interface(BASE))
    assert (same.level, same.changes) == ("none", ())
    assert next_version("1.4.2", same.level) == "1.4.3"


def test_unknown_return_types_are_compared_by_annotation():
    old = ToolInterface({"type": "object", "properties": {}}, {}, "Any")
    assert compare(old, ToolInterface(old.parameters, {}, "Any")).level == "none"
    assert compare(old, ToolInterface(old.parameters, {}, "object")).level == "breaking"


def test_versions_bump_and_old_manifests_read_as_1_0_0():
    assert next_version("1.4.2", "breaking") == "2.0.0"
    assert next_version(None, "breaking") == "2.0.0"  # a manifest from before versions is 1.0.0
    assert parse_version("garbage") == (1, 0, 0) and parse_version("3.10.0") == (3, 10, 0)


def test_the_migration_guide_shows_what_changed_and_the_old_and_new_call():
    old, new = interface("text: str"), interface("content: str", "str")
    verdict = compare(old, new)
    assert [c.level for c in verdict.changes] == ["breaking", "breaking"]
    guide = migration_guide("word_count", "1.0.0", "2.0.0", old, new, verdict, pinned_name="word_count_v1")
    assert "## Migrating `word_count` from 1.0.0 to 2.0.0" in guide
    assert "- BREAKING: parameter 'text' was renamed to 'content'" in guide
    assert "- BREAKING: the return type changed from int to str" in guide
    assert "# 1.0.0\nword_count(text=<str>)\n# 2.0.0\nword_count(content=<str>)" in guide
    assert "- pass `content` where you passed `text`" in guide
    assert "`evorag tools call word_count@1`" in guide and "`evorag tools retire word_count@1`" in guide
    assert example_call("f", interface("a: int, b: list[str], c: int = 1")) == "f(a=<int>, b=<list[str]>)"
    assert describe({"type": ["string", "null"]}) == "str | None"


def test_which_previous_tests_still_apply_to_the_new_signature(tmp_path):
    from evorag.tools.compat_gate import applicable_previous_tests

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    (old / "tool.py").write_text('def word_count(text: str, limit: int = 10) -> int:\n    """C."""\n    return 0\n')
    (new / "tool.py").write_text('def word_count(text: str, mode: str = "w") -> int:\n    """C."""\n    return 0\n')
    call = "from tool import word_count\n\n\ndef test_it():\n    assert word_count({}) == 0\n"
    for name, args in {"test_keyword.py": "text='a'", "test_positional.py": "'a'", "test_moved.py": "'a', 3",
                       "test_removed.py": "text='a', limit=3", "test_kwargs.py": "**{'text': 'a'}"}.items():
        (old / name).write_text(call.format(args))
    (old / "test_other.py").write_text("def test_nothing_of_the_tool():\n    assert True\n")
    applies, skipped = applicable_previous_tests(old, new)
    assert sorted(applies) == ["test_keyword.py", "test_other.py", "test_positional.py"]
    assert skipped == ["test_kwargs.py: line 5 passes *args/**kwargs: its arguments cannot be checked",
                       "test_moved.py: line 5 passes positional arguments whose parameters moved or changed",
                       "test_removed.py: line 5 passes limit, which the new version does not take"]
    (new / "tool.py").write_text('def word_count(text: str, mode: str) -> int:\n    """C."""\n    return 0\n')
    applies, skipped = applicable_previous_tests(old, new)
    assert sorted(applies) == ["test_other.py"]
    assert "test_keyword.py: line 5 does not pass the new required mode" in skipped
