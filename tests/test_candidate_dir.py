"""Files are files: a candidate directory with links, special files or oversized content is refused before
anything is read, and a host file linked into it never reaches any output, audit entry or repository."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import zlib
from pathlib import Path

import pytest
from evorag.tools import candidate_dir
from evorag.tools.candidate_dir import MAX_ENTRIES, MAX_FILE_BYTES, read_candidate
from evorag.tools.evolution import candidate_files

from evorag.errors import NotFoundError, UserError

CANDIDATES = Path(__file__).parent / "candidates"
CANARY = "EVORAG-CANARY-SECRET-5f1c2a"
TOOL = 'def tool(text: str) -> str:\n    """Echo."""\n    return text\n'
TESTS = "from tool import tool\n\n\ndef test_echo():\n    assert tool('a') == 'a'\n"


@pytest.fixture
def canary(tmp_path) -> Path:
    secret = tmp_path / "host-secret.py"
    # Valid Python, so that nothing but the file-type checks can stop it.
    secret.write_text(f'def tool(text: str) -> str:\n    """{CANARY}"""\n    return "{CANARY}"\n')
    return secret


@pytest.fixture
def candidate(tmp_path) -> Path:
    path = tmp_path / "candidate"
    path.mkdir()
    (path / "tool.py").write_text(TOOL)
    (path / "test_tool.py").write_text(TESTS)
    return path


def test_a_plain_candidate_is_read_and_other_files_are_not(candidate):
    (candidate / "requirements.txt").write_text("")
    (candidate / "notes.bin").write_bytes(b"\xff\xfe" * 10)  # not UTF-8, but never read
    assert read_candidate(candidate) == {"tool.py": TOOL, "test_tool.py": TESTS, "requirements.txt": ""}
    assert candidate_files(candidate) == read_candidate(candidate)


def _symlink_tool(candidate: Path, canary: Path) -> str:
    (candidate / "tool.py").unlink()
    (candidate / "tool.py").symlink_to(canary)
    return "tool.py is a symbolic link"


def _symlink_test(candidate: Path, canary: Path) -> str:
    (candidate / "test_secret.py").symlink_to(canary)
    return "test_secret.py is a symbolic link"


def _symlink_unlisted(candidate: Path, canary: Path) -> str:
    (candidate / "notes.txt").symlink_to(canary)
    return "notes.txt is a symbolic link"


def _symlink_dangling(candidate: Path, canary: Path) -> str:
    (candidate / "requirements.txt").symlink_to(candidate / "missing")
    return "requirements.txt is a symbolic link"


def _symlink_to_directory(candidate: Path, canary: Path) -> str:
    (candidate / "data").symlink_to(canary.parent)
    return "data is a symbolic link"


def _hard_link(candidate: Path, canary: Path) -> str:
    (candidate / "tool.py").unlink()
    os.link(canary, candidate / "tool.py")
    return "tool.py has 2 hard links"


def _hard_link_unlisted(candidate: Path, canary: Path) -> str:
    os.link(canary, candidate / "copy.txt")
    return "copy.txt has 2 hard links"


def _fifo(candidate: Path, canary: Path) -> str:
    os.mkfifo(candidate / "test_pipe.py")
    return "test_pipe.py is a FIFO"


def _socket(candidate: Path, canary: Path) -> str:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(candidate / "s"))  # a short name: AF_UNIX paths are limited to ~100 bytes
    server.close()
    return "s is a socket"


def _device(candidate: Path, canary: Path) -> str:
    try:
        os.mknod(candidate / "requirements.txt", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # like /dev/null
    except PermissionError:
        pytest.skip("this machine does not allow mknod, even as root")
    return "requirements.txt is a character device"


def _subdirectory(candidate: Path, canary: Path) -> str:
    (candidate / "pkg").mkdir()
    return "pkg is a directory"


def _too_large(candidate: Path, canary: Path) -> str:
    (candidate / "test_big.py").write_text("x = 1\n" * (MAX_FILE_BYTES // 6 + 1))
    return f"test_big.py is {(MAX_FILE_BYTES // 6 + 1) * 6} bytes, more than {MAX_FILE_BYTES}"


def _too_many(candidate: Path, canary: Path) -> str:
    for index in range(MAX_ENTRIES):
        (candidate / f"note{index}.txt").write_text("")
    return f"holds {MAX_ENTRIES + 2} entries, more than {MAX_ENTRIES}"


def _not_utf8(candidate: Path, canary: Path) -> str:
    (candidate / "tool.py").write_bytes(TOOL.encode() + b"# \xff\xfe\n")
    return "tool.py is not UTF-8 text (invalid byte at offset"


def _no_tool(candidate: Path, canary: Path) -> str:
    (candidate / "tool.py").unlink()
    return "has no tool.py"


REFUSED = {f.__name__.lstrip("_"): f for f in (
    _symlink_tool, _symlink_test, _symlink_unlisted, _symlink_dangling, _symlink_to_directory, _hard_link,
    _hard_link_unlisted, _fifo, _socket, _device, _subdirectory, _too_large, _too_many, _not_utf8, _no_tool,
)}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_each_kind_is_refused_with_one_line_naming_the_file(kind, candidate, canary):
    expected = REFUSED[kind](candidate, canary)
    with pytest.raises(UserError) as refused:
        read_candidate(candidate)
    message = str(refused.value)
    assert expected in message and "\n" not in message
    assert CANARY not in message


def test_the_directory_itself_may_not_be_a_link(candidate, tmp_path):
    link = tmp_path / "link-to-candidate"
    link.symlink_to(candidate)
    with pytest.raises(UserError, match="link-to-candidate is a symbolic link"):
        read_candidate(link)
    with pytest.raises(NotFoundError, match="no candidate directory"):
        read_candidate(tmp_path / "nowhere")
    with pytest.raises(NotFoundError, match="is not a directory"):
        read_candidate(candidate / "tool.py")


def test_a_file_swapped_for_a_link_after_the_check_is_refused(candidate, canary, monkeypatch):
    """The race: tool.py passes the lstat check, then becomes a symlink before it is opened."""
    real_stat = os.stat

    def stat_then_swap(name, *args, **kwargs):
        result = real_stat(name, *args, **kwargs)
        if name == "tool.py":
            (candidate / "tool.py").unlink()
            (candidate / "tool.py").symlink_to(canary)
        return result

    monkeypatch.setattr(candidate_dir.os, "stat", stat_then_swap)
    with pytest.raises(UserError, match="tool.py could not be opened as a regular file") as refused:
        read_candidate(candidate)
    assert CANARY not in str(refused.value)


def test_a_file_swapped_for_a_hard_link_after_the_check_is_refused(candidate, canary, monkeypatch):
    real_stat = os.stat

    def stat_then_swap(name, *args, **kwargs):
        result = real_stat(name, *args, **kwargs)
        if name == "tool.py":
            (candidate / "tool.py").unlink()
            os.link(canary, candidate / "tool.py")
        return result

    monkeypatch.setattr(candidate_dir.os, "stat", stat_then_swap)
    with pytest.raises(UserError, match="tool.py changed while it was being read"):
        read_candidate(candidate)


def test_a_fifo_swapped_in_after_the_check_cannot_hang_the_reader(candidate, monkeypatch):
    real_stat = os.stat

    def stat_then_swap(name, *args, **kwargs):
        result = real_stat(name, *args, **kwargs)
        if name == "test_tool.py":
            (candidate / "test_tool.py").unlink()
            os.mkfifo(candidate / "test_tool.py")
        return result

    monkeypatch.setattr(candidate_dir.os, "stat", stat_then_swap)
    with pytest.raises(UserError, match="test_tool.py changed while it was being read"):
        read_candidate(candidate)


def _home_contains(home: Path, needle: bytes) -> list[str]:
    """Files under ``home`` holding ``needle``, also inside zlib-compressed git objects."""
    found = []
    for file in home.rglob("*"):
        if not file.is_file() or file.is_symlink():
            continue
        data = file.read_bytes()
        try:
            data += zlib.decompress(data)
        except zlib.error:
            pass
        if needle in data:
            found.append(str(file.relative_to(home)))
    return found


@pytest.mark.parametrize("kind", ["symlink_tool", "symlink_test", "symlink_unlisted", "hard_link"])
def test_a_linked_host_file_never_reaches_outputs_audit_memory_or_the_repository(
        kind, candidate, canary, evorag_home, capsys):
    from evorag.cli import main

    REFUSED[kind](candidate, canary)
    assert main(["tools", "add", str(candidate), "--yes", "--json"]) == 2
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "symbolic link" in output or "hard links" in output
    assert len([line for line in captured.err.splitlines() if line.strip()]) <= 2  # one error (and its hint)
    assert CANARY not in output
    assert _home_contains(Path(evorag_home), CANARY.encode()) == []

    # The same through the pipeline's own gate (the agents call it as a tool): a failed verdict, no content.
    from evorag.service import Evorag

    with Evorag() as rag:
        verdict, _ = rag.evolution.check_code(candidate)
        assert not verdict.ok and CANARY not in json.dumps(verdict.details) + (verdict.reason or "")
        assert rag.registry.tools() == []
    assert _home_contains(Path(evorag_home), CANARY.encode()) == []


def test_the_gates_judge_a_snapshot_not_the_live_directory(tmp_path):
    """What the code gate rated is what is staged: later changes to the directory do not reach the staging."""
    from evorag.tools.approvals import PolicyApprover

    from evorag.service import Evorag

    candidate = tmp_path / "cand"
    shutil.copytree(CANDIDATES / "writes_outside", candidate)
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100) as rag:
        original = rag.evolution.check_code

        def check_then_tamper(path):
            result = original(path)
            (candidate / "tool.py").write_text((candidate / "tool.py").read_text() + "# tampered\n")
            return result

        rag.evolution.check_code = check_then_tamper
        outcome = rag.add_tool(candidate, approver=PolicyApprover(assume_yes=True))
        assert outcome.status == "pending" and outcome.risk == "HIGH"
        approval = rag.evolution.approvals.get(outcome.approval_id)
        staged = Path(approval.payload["staged"])
        assert "# tampered" not in (staged / "tool.py").read_text()
        assert "# tampered" not in approval.diff
