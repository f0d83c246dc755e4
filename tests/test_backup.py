"""Backup and restore round trip: the restored home answers the same and keeps the tool history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evorag.cli import main
from evorag.errors import UserError
from evorag.service import Evorag
from tools.approvals import PolicyApprover
from tools.backup import backup, restore

CANDIDATES = Path(__file__).parent / "candidates"


def test_backup_restore_round_trip(demo_home, tmp_path):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(demo_home, home)
    with Evorag(home=home, evolutions_per_hour=100) as rag:
        rag.add_tool(CANDIDATES / "good_word_count", approver=PolicyApprover(assume_yes=True))
        before_hits = [h.chunk.id for h in rag.search("refuse private addresses", limit=3)]
        before_versions = [v.id for v in rag.versions()]
        manifest = backup(rag, tmp_path / "b.tar.gz")
    assert {"catalog.sqlite3", "qdrant", "plugins", "audit.jsonl"} <= set(manifest["parts"])

    restored = tmp_path / "restored"
    restore(tmp_path / "b.tar.gz", restored)
    with Evorag(home=restored) as rag:
        assert [h.chunk.id for h in rag.search("refuse private addresses", limit=3)] == before_hits
        assert [v.id for v in rag.versions()] == before_versions
        assert rag.registry.call("word_count", {"text": "x y"}) == 2
        assert [s.name for s in rag.sources()] == ["evorag-demo"]


def test_restore_protects_existing_data_and_rejects_bad_archives(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "keep.txt").write_text("precious")
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(UserError, match="not empty"):
        restore(tmp_path / "junk.tar.gz", home)
    with pytest.raises(UserError, match="not a readable"):
        restore(tmp_path / "junk.tar.gz", home, force=True)
    assert (home / "keep.txt").read_text() == "precious"  # a failed restore loses nothing


def test_cli_backup_and_restore(tmp_path, monkeypatch, capsys):
    assert main(["backup", str(tmp_path / "b.tar.gz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == 1
    assert main(["backup", str(tmp_path / "b.tar.gz")]) == 2  # never overwrites
    monkeypatch.setenv("EVORAG_HOME", str(tmp_path / "new-home"))
    assert main(["restore", str(tmp_path / "b.tar.gz"), "--json"]) == 0
