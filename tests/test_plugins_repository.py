"""The git-versioned tool repository: checkpoints, exact rollbacks, recovery after an interrupted deploy."""

from __future__ import annotations

import pytest
from evorag.tools.plugins import PluginRepository, ToolManifest

from evorag.errors import NotFoundError, UserError

TOOL = '''def {name}(text: str) -> int:
    """Count words."""
    return len(text.split()) + {n}
'''


def _candidate(tmp_path, name, n=0):
    path = tmp_path / f"cand-{name}-{n}"
    path.mkdir()
    (path / "tool.py").write_text(TOOL.format(name=name, n=n))
    (path / "test_tool.py").write_text(f"from tool import {name}\n\ndef test_it():\n    assert {name}('a b') >= 2\n")
    (path / "notes.txt").write_text("not copied")
    return path


def _manifest(name):
    return ToolManifest(name=name, description="Count words.", risk="LOW",
                        parameters_schema={"type": "object", "properties": {"text": {"type": "string"}}})


def test_deploy_and_rollback_restore_the_exact_tool_set(tmp_path):
    repo = PluginRepository(tmp_path / "plugins")
    initial = repo.current()
    v1 = repo.deploy(_candidate(tmp_path, "word_count"), _manifest("word_count"), message="first")
    v2 = repo.deploy(_candidate(tmp_path, "char_count"), _manifest("char_count"), message="second")
    v3 = repo.deploy(_candidate(tmp_path, "word_count", 1), _manifest("word_count"), message="update")
    assert [m.name for m in repo.manifests()] == ["char_count", "word_count"]
    assert {m.name: m.version for m in repo.manifests()} == {"char_count": 1, "word_count": 2}
    assert not (repo.tools_dir / "word_count" / "notes.txt").exists()
    assert [v.id for v in repo.versions()] == [initial.id, v1.id, v2.id, v3.id]

    back = repo.rollback(v1.id)
    assert back.tools == ["word_count"] and [m.name for m in repo.manifests()] == ["word_count"]
    assert "+ 0" in (repo.tools_dir / "word_count" / "tool.py").read_text()  # v1's code, not v3's
    assert repo.versions()[-1].id == back.id  # a rollback is a new checkpoint; history is kept

    empty = repo.rollback(initial.id)
    assert empty.tools == [] and repo.manifests() == []
    repo.rollback(v3.id)
    assert {m.name for m in repo.manifests()} == {"char_count", "word_count"}
    assert "rollback" in repo.changelog()


def test_bad_version_ids_and_names_are_clear_errors(tmp_path):
    repo = PluginRepository(tmp_path / "plugins")
    with pytest.raises(UserError, match="invalid version id"):
        repo.rollback("../../etc")
    with pytest.raises(NotFoundError):
        repo.rollback("deadbeefdead")
    with pytest.raises(UserError, match="invalid tool name"):
        repo.deploy(_candidate(tmp_path, "x"), _manifest("../evil"), message="no")
    with pytest.raises(NotFoundError):
        repo.tool_dir("missing_tool")


def test_an_interrupted_deploy_is_reset_to_the_last_checkpoint(tmp_path):
    root = tmp_path / "plugins"
    repo = PluginRepository(root)
    v1 = repo.deploy(_candidate(tmp_path, "word_count"), _manifest("word_count"), message="first")
    # Simulate a kill half-way through a deploy: files written, no commit.
    (repo.tools_dir / "half_tool").mkdir()
    (repo.tools_dir / "half_tool" / "tool.py").write_text("def half_tool(")
    (repo.tools_dir / "word_count" / "tool.py").write_text("garbage")
    reopened = PluginRepository(root)
    assert reopened.current().id == v1.id
    assert [m.name for m in reopened.manifests()] == ["word_count"]
    assert "garbage" not in (reopened.tools_dir / "word_count" / "tool.py").read_text()
