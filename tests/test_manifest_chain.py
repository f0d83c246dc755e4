"""The manifest chain: every deploy, rollback and removal is an authenticated line; history it never saw stays out."""

from __future__ import annotations

import json
import subprocess

import pytest
from evorag.tools.plugins import PluginRepository, ToolManifest
from evorag.tools.plugins._chain import CHAIN_FILE, KEY_FILE, ManifestChain, read_entries

from evorag.errors import UserError

TOOL = '''def {name}(text: str) -> int:
    """Count words."""
    return len(text.split()) + {n}
'''


def _candidate(tmp_path, name, n=0):
    path = tmp_path / f"cand-{name}-{n}"
    path.mkdir()
    (path / "tool.py").write_text(TOOL.format(name=name, n=n))
    return path


def _manifest(name, risk="LOW"):
    return ToolManifest(name=name, description="Count words.", risk=risk,
                        parameters_schema={"type": "object", "properties": {"text": {"type": "string"}}})


def test_each_change_appends_an_authenticated_entry(tmp_path):
    repo = PluginRepository(tmp_path / "plugins")
    assert not (tmp_path / KEY_FILE).exists()  # created on first use, not on open
    v1 = repo.deploy(_candidate(tmp_path, "word_count"), _manifest("word_count", "HIGH"), message="one")
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600
    repo.deploy(_candidate(tmp_path, "word_count", 1), _manifest("word_count"), message="two")
    repo.rollback(v1.id)
    repo.remove("word_count")
    entries = read_entries(tmp_path / "plugins" / CHAIN_FILE)
    assert [(e["op"], e["tool"], e["version"], e["risk"]) for e in entries] == [
        ("deploy", "word_count", 1, "HIGH"), ("deploy", "word_count", 2, "LOW"),
        ("rollback", "word_count", 1, "HIGH"), ("remove", "word_count", None, None)]
    assert set(entries[0]["files"]) == {"tool.py", "manifest.json", "CHANGELOG.md"}  # the tool's own changelog
    assert [e["prev"] for e in entries[1:]] == [e["mac"] for e in entries[:-1]]
    assert repo.chain.verify().ok
    # The chain is committed with each checkpoint: HEAD's copy is the one on disk.
    head = subprocess.run(["git", "-C", str(repo.root), "show", f"HEAD:{CHAIN_FILE}"], capture_output=True,
                          text=True, check=True).stdout
    assert head == (repo.root / CHAIN_FILE).read_text()


def test_edits_reordering_and_other_keys_break_verification(tmp_path):
    repo = PluginRepository(tmp_path / "plugins")
    repo.deploy(_candidate(tmp_path, "a_tool"), _manifest("a_tool", "HIGH"), message="a")
    repo.deploy(_candidate(tmp_path, "b_tool"), _manifest("b_tool"), message="b")
    path = repo.root / CHAIN_FILE
    original = path.read_text()
    assert not ManifestChain(path, b"k" * 32).verify().ok

    lines = original.splitlines()
    forged = json.loads(lines[0])
    forged["risk"] = "LOW"
    path.write_text(json.dumps(forged) + "\n" + lines[1] + "\n")
    assert "does not carry this key's MAC" in repo.chain.verify().reason

    path.write_text(lines[1] + "\n" + lines[0] + "\n")
    assert "out of order" in repo.chain.verify().reason
    path.write_text(original)
    assert repo.chain.verify().ok


def test_rollback_refuses_history_the_chain_never_saw(tmp_path):
    """A commit made behind the repository's back (as a restored backup's history could be) is not a version
    a rollback may bring back."""
    repo = PluginRepository(tmp_path / "plugins")
    repo.deploy(_candidate(tmp_path, "word_count"), _manifest("word_count", "HIGH"), message="one")
    manifest = repo.tools_dir / "word_count" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["risk"] = "LOW"
    manifest.write_text(json.dumps(data))
    repo.repo.git.add("-A")
    sneaked = repo.repo.index.commit("sneaked in")
    good = repo.deploy(_candidate(tmp_path, "word_count", 2), _manifest("word_count", "HIGH"), message="two")
    with pytest.raises(UserError, match="does not vouch for.*word_count"):
        repo.rollback(sneaked.hexsha[:12])
    assert repo.current().id == good.id  # nothing changed
    repo.rollback(repo.versions()[1].id)  # the state the chain recorded is fine
    assert json.loads((repo.tools_dir / "word_count" / "manifest.json").read_text())["risk"] == "HIGH"


def test_a_repository_from_before_the_chain_adopts_its_own_history(tmp_path):
    repo = PluginRepository(tmp_path / "plugins")
    v1 = repo.deploy(_candidate(tmp_path, "word_count"), _manifest("word_count"), message="one")
    repo.deploy(_candidate(tmp_path, "word_count", 1), _manifest("word_count"), message="two")
    # Make it look like an old repository: no chain file, no key.
    repo.repo.git.rm("-q", CHAIN_FILE)
    repo.repo.index.commit("an old repository")
    (tmp_path / KEY_FILE).unlink()

    reopened = PluginRepository(tmp_path / "plugins")
    verdict = reopened.chain.verify()
    assert verdict.ok and [e["op"] for e in read_entries(reopened.root / CHAIN_FILE)] == ["adopt", "adopt"]
    reopened.rollback(v1.id)  # its own history stays reachable
    assert "+ 0" in (reopened.tools_dir / "word_count" / "tool.py").read_text()
