"""Tool versions through the real gates, sandbox, git repository, CLI and MCP client (no model involved).

``word_count`` 1.0.0 is deployed, then 1.1.0 (a new optional parameter: minor, LOW), then 2.0.0 (``text``
renamed to ``content``, ``int`` result changed to ``str``): breaking, HIGH, approved by a person, with a migration
guide, while 1.1.0 keeps answering as ``word_count@1`` (``word_count_v1`` over MCP) until it is retired. A
breaking redeploy that fails a previous test which still applies is refused. ``tools openapi`` is checked
structurally (and each schema against JSON Schema 2020-12); the MCP server reports evorag's version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import jsonschema
import pytest
from mcp.shared.memory import create_connected_server_and_client_session

from evorag.about import evorag_version
from evorag.errors import NotFoundError
from evorag.mcp_server import build_server
from evorag.principals import Principal, Role
from evorag.service import Evorag, PolicyApprover

PERSON = Principal("ada", Role.APPROVER, via="ui", human=True)  # an approver logged in to the UI
BACKEND = "bubblewrap"

V1 = '''
def word_count(text: str, lower: bool = False) -> int:
    """Count the words of ``text`` (only the lowercase ones when ``lower``)."""
    words = text.split()
    return len([w for w in words if w.islower()]) if lower else len(words)
'''
V1_TESTS = {
    "test_counts.py": "from tool import word_count\n\n\ndef test_counts():\n    assert word_count(text='a b c') == 3\n",
    "test_lower.py": ("from tool import word_count\n\n\ndef test_lower():\n"
                      "    assert word_count(text='A b c', lower=True) == 2\n"),
}
V1_1 = '''
def word_count(text: str, lower: bool = False, min_length: int = 1) -> int:
    """Count the words of ``text`` at least ``min_length`` long (only lowercase ones when ``lower``)."""
    words = [w for w in text.split() if len(w) >= min_length]
    return len([w for w in words if w.islower()]) if lower else len(words)
'''
V2 = '''
def word_count(content: str) -> str:
    """The number of words of ``content``, as text."""
    return str(len(content.split()))
'''
# Breaking (``lower`` removed), same return type: the previous test_counts.py still applies, and this fails it.
V2_WRONG = '''
def word_count(text: str, min_length: int = 1) -> int:
    """Count the words of ``text`` (off by one)."""
    return len([w for w in text.split() if len(w) >= min_length]) + 1
'''
V2_TEST = "from tool import word_count\n\n\ndef test_counts():\n    assert word_count(content='a b') == '2'\n"


def candidate(root: Path, label: str, source: str, tests: dict[str, str]) -> Path:
    folder = root / label
    folder.mkdir()
    (folder / "tool.py").write_text(source)
    for name, text in tests.items():
        (folder / name).write_text(text)
    return folder


def cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVORAG_HOME": str(home), "EVORAG_SANDBOX_BACKEND": BACKEND}
    return subprocess.run([sys.executable, "-m", "evorag.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def gate(outcome, name: str):
    return next(v for v in outcome.verdicts if v.gate == name)


@pytest.fixture
def rag(tmp_path):
    with Evorag(home=tmp_path / "home", sandbox_backend=BACKEND, evolutions_per_hour=100) as service:
        yield service


def deploy_1_1(rag, root: Path) -> None:
    yes = PolicyApprover(assume_yes=True)
    first = rag.add_tool(candidate(root, "v1", V1, V1_TESTS), approver=yes)
    assert (first.status, first.risk) == ("deployed", "LOW"), first.reason
    assert gate(first, "compatibility").details["semver"] == "1.0.0"
    minor = rag.add_tool(candidate(root, "v1_1", V1_1, V1_TESTS), approver=yes)
    assert (minor.status, minor.risk) == ("deployed", "LOW"), minor.reason
    compat = gate(minor, "compatibility")
    assert compat.reason == ("additive change: 1.0.0 -> 1.1.0 (new optional parameter 'min_length' (int, "
                             "default 1))")
    assert rag.registry.get("word_count").semver == "1.1.0"


def test_a_breaking_redeploy_is_high_with_a_guide_and_the_old_major_keeps_answering(rag, tmp_path):
    deploy_1_1(rag, tmp_path)
    home = tmp_path / "home"

    # --yes does not approve HIGH: the breaking redeploy waits for a person.
    pending = rag.add_tool(candidate(tmp_path, "v2", V2, {"test_word_count.py": V2_TEST}),
                           approver=PolicyApprover(assume_yes=True))
    assert (pending.status, pending.risk, pending.gate) == ("pending", "HIGH", "approval"), pending.reason
    compat = gate(pending, "compatibility")
    assert compat.risk == "HIGH" and compat.details["level"] == "breaking"
    assert [c["text"] for c in compat.details["changes"]] == [
        "parameter 'text' was renamed to 'content'", "parameter 'lower' was removed",
        "parameter 'min_length' was removed", "the return type changed from int to str"]
    assert gate(pending, "tests").ok  # the new code's own tests ran before the approval (its code is LOW risk)
    assert rag.registry.get("word_count").semver == "1.1.0"  # nothing changed yet
    assert rag.call_tool("word_count", {"text": "a b c"}) == 3

    deployed = rag.decide_approval(pending.approval_id, approve=True, principal=PERSON)
    assert deployed.status == "deployed", deployed.reason
    previous = gate(deployed, "previous_tests")
    assert previous.ok and previous.details["ran"] == []
    assert previous.details["skipped"] == [
        "test_counts.py: the return type changed, so its checks of the previous results do not apply",
        "test_lower.py: the return type changed, so its checks of the previous results do not apply"]

    current, pinned = rag.registry.get("word_count"), rag.registry.get("word_count@1")
    assert (current.semver, pinned.name, pinned.semver, pinned.pinned_of) == ("2.0.0", "word_count_v1", "1.1.0",
                                                                             "word_count")
    assert rag.registry.get("word_count@2").name == "word_count"
    assert rag.call_tool("word_count", {"content": "a b"}) == "2"
    assert rag.call_tool("word_count@1", {"text": "a b c", "min_length": 1}) == 3  # the old major answers
    with pytest.raises(NotFoundError, match=r"no major version 3 of tool 'word_count'"):
        rag.call_tool("word_count@3", {})

    # The migration guide: in the tool's folder, its CHANGELOG (newest first), the tool docs, the repository log.
    folder = home / "plugins" / "tools" / "word_count"
    guide = (folder / "MIGRATION.md").read_text()
    assert "## Migrating `word_count` from 1.1.0 to 2.0.0" in guide
    assert "# 1.1.0\nword_count(text=<str>)\n# 2.0.0\nword_count(content=<str>)" in guide
    assert "- pass `content` where you passed `text`" in guide
    changelog = (folder / "CHANGELOG.md").read_text()
    assert changelog.index("## 2.0.0") < changelog.index("### Migrating") < changelog.index("## 1.1.0") < \
        changelog.index("## 1.0.0")
    docs = rag.tool_docs()
    assert "### Migrating `word_count` from 1.1.0 to 2.0.0" in docs and "(version 1.1.0, risk LOW)" in docs
    assert "`word_count` 2.0.0 (BREAKING, 1.1.0 kept as `word_count_v1`, HIGH)" in docs

    # Over MCP: evorag's own version; each tool's version; the old major callable as word_count_v1.
    async def over_mcp():
        with anyio.fail_after(120):
            async with create_connected_server_and_client_session(build_server(rag)) as client:
                info = await client.initialize()
                listed = {tool.name: tool for tool in (await client.list_tools()).tools}
                old = await client.call_tool("word_count_v1", {"text": "x y"})
                new = await client.call_tool("word_count", {"content": "x y z"})
                return info, listed, old, new

    info, listed, old, new = anyio.run(over_mcp)
    assert info.serverInfo.name == "evorag" and info.serverInfo.version == evorag_version() != "1.30.0"
    assert listed["word_count"].meta == {"evorag/version": "2.0.0"}
    assert listed["word_count_v1"].meta == {"evorag/version": "1.1.0", "evorag/pinned_of": "word_count"}
    assert "(version 2.0.0, risk HIGH)" in listed["word_count"].description
    assert "previous major version of word_count" in listed["word_count_v1"].description
    assert (old.isError, old.structuredContent, new.structuredContent) == (False, {"result": 2}, {"result": "3"})

    # The CLI: the old major by its pin, the OpenAPI document, then a person retires the old major.
    called = cli("tools", "call", "word_count@1", '{"text": "one two"}', home=home)
    assert (called.returncode, json.loads(called.stdout or "null")) == (0, 2), called.stderr
    document_path = tmp_path / "openapi.json"
    written = cli("tools", "openapi", "--output", str(document_path), home=home)
    assert written.returncode == 0, written.stderr
    check_openapi(json.loads(document_path.read_text()))
    retired = cli("tools", "retire", "word_count@1", "--json", home=home)
    assert retired.returncode == 0, retired.stderr
    assert json.loads(retired.stdout)["version"]["tools"] == ["word_count"]
    gone = cli("tools", "call", "word_count@1", '{"text": "one two"}', home=home)
    assert gone.returncode == 2 and "no major version 1 of tool 'word_count'" in gone.stderr
    again = cli("tools", "retire", "word_count@2", home=home)
    assert again.returncode == 2 and "word_count is not a previous major version" in again.stderr


def check_openapi(document: dict) -> None:
    """The OpenAPI 3.1 document's required structure, and every schema in it valid JSON Schema 2020-12."""
    assert document["openapi"] == "3.1.0" and document["info"]["version"] == evorag_version()
    assert document["info"]["title"]
    assert sorted(document["paths"]) == ["/tools/word_count", "/tools/word_count_v1"]
    for path, item in document["paths"].items():
        operation = item["post"]
        assert operation["operationId"] == path.rsplit("/", 1)[1]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        result = operation["responses"]["200"]["content"]["application/json"]["schema"]
        for schema in (body, result, operation["responses"]["400"]["content"]["application/json"]["schema"]):
            jsonschema.Draft202012Validator.check_schema(schema)
        assert all(code.isdigit() and response["description"] for code, response in operation["responses"].items())
    current = document["paths"]["/tools/word_count"]["post"]
    assert current["x-tool-version"] == "2.0.0"
    assert current["requestBody"]["content"]["application/json"]["schema"]["required"] == ["content"]
    assert current["responses"]["200"]["content"]["application/json"]["schema"] == {"type": "string"}
    pinned = document["paths"]["/tools/word_count_v1"]["post"]
    assert (pinned["x-tool-version"], pinned["x-call-as"], pinned["deprecated"]) == ("1.1.0", "word_count@1", True)
    assert pinned["responses"]["200"]["content"]["application/json"]["schema"] == {"type": "integer"}


def test_a_breaking_redeploy_that_fails_a_previous_test_that_still_applies_is_refused(rag, tmp_path):
    deploy_1_1(rag, tmp_path)
    # Its own test passes (a candidate needs tests of its own); a test of the previous version that still
    # applies does not.
    own = {"test_min_length.py": "from tool import word_count\n\n\ndef test_min_length():\n"
                                 "    assert word_count('ab', min_length=5) == 1\n"}
    pending = rag.add_tool(candidate(tmp_path, "wrong", V2_WRONG, own), approver=PolicyApprover(assume_yes=True))
    assert (pending.status, pending.risk) == ("pending", "HIGH"), pending.reason
    assert "parameter 'lower' was removed" in gate(pending, "compatibility").reason
    refused = rag.decide_approval(pending.approval_id, approve=True, principal=PERSON)
    assert (refused.status, refused.gate) == ("rejected", "previous_tests"), refused.reason
    previous = gate(refused, "previous_tests")
    assert previous.details["ran"] == ["test_counts.py"]
    assert previous.details["skipped"] == [
        "test_lower.py: line 5 passes lower, which the new version does not take"]
    assert refused.reason.startswith("a test of the previous version that still applies fails:")
    # Nothing changed: 1.1.0 is still deployed, no old major was kept.
    assert rag.registry.get("word_count").semver == "1.1.0"
    assert [m.name for m in rag.tools()] == ["word_count"]
    assert rag.call_tool("word_count", {"text": "a b"}) == 2
