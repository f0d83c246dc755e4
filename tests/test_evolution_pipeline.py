"""Candidates through the real gates: code checks, dependency checks (pip dry-run), the sandbox, approval."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from evorag.tools.approvals import PolicyApprover, TerminalApprover

from evorag.cli import main
from evorag.errors import PermissionDeniedError, UserError
from evorag.principals import Principal, Role
from evorag.service import Evorag

CANDIDATES = Path(__file__).parent / "candidates"

# candidate -> (status, gate, reason substring)
BATTERY = {
    "syntax_error": ("rejected", "code", "syntax error"),
    "missing_docstring": ("rejected", "code", "docstring"),
    "missing_types": ("rejected", "code", "annotation"),
    "two_public_functions": ("rejected", "code", "public function"),
    "failing_test": ("rejected", "tests", "AssertionError"),
    "infinite_loop": ("rejected", "tests", "killed in the sandbox"),
    "memory_bomb": ("rejected", "tests", ""),
    "typosquat": ("rejected", "dependencies", "typo of 'requests'"),
    "dependency_conflict": ("rejected", "dependencies", "pydantic"),
    "unknown_package": ("rejected", "dependencies", "evorag-nonexistent-pkg-zz9"),
    # HIGH risk passes the static gates and waits for a human; none of its code has run yet.
    "uses_eval": ("pending", "approval", "HIGH"),
    "uses_network": ("pending", "approval", "HIGH"),
    "uses_subprocess": ("pending", "approval", "HIGH"),
    "writes_outside": ("pending", "approval", "HIGH"),
    "reads_secret_env": ("pending", "approval", "HIGH"),
}


@pytest.fixture(scope="module")
def rag(tmp_path_factory):
    home = tmp_path_factory.mktemp("evolution-home")
    with Evorag(home=home, evolutions_per_hour=1000) as service:
        yield service


@pytest.mark.parametrize("name", sorted(BATTERY))
def test_defective_candidates_stop_at_the_right_gate(rag, name, tmp_path):
    status, gate, reason = BATTERY[name]
    outcome = rag.add_tool(CANDIDATES / name, approver=PolicyApprover(assume_yes=True))
    assert (outcome.status, outcome.gate) == (status, gate), outcome.reason
    assert reason in (outcome.reason or "") + " " + outcome.risk
    assert outcome.version_id is None
    assert name not in [m.name for m in rag.registry.tools()]
    if outcome.risk == "HIGH":  # a HIGH-risk candidate's code (tests included) runs only after the approval
        assert "tests" not in [v.gate for v in outcome.verdicts]


def test_a_tool_writing_outside_has_no_effect_on_the_host(rag):
    target = Path("/tmp/evorag-candidate-notes.log")
    target.unlink(missing_ok=True)
    outcome = rag.add_tool(CANDIDATES / "writes_outside", approver=PolicyApprover(assume_yes=True))
    assert outcome.status == "pending"
    assert "tests" not in [v.gate for v in outcome.verdicts]  # HIGH: nothing ran before the approval
    approval = rag.evolution.approvals.get(outcome.approval_id)
    assert "not run yet" in approval.tests and "not run yet" in approval.summary
    person = Principal("alice", Role.APPROVER, via="ui", human=True)  # an approver logged in to the UI
    deployed = rag.decide_approval(outcome.approval_id, approve=True, principal=person)
    tests = next(v for v in deployed.verdicts if v.gate == "tests")
    assert tests.ok and deployed.status == "deployed"  # its tests ran after the approval (sandbox /tmp) ...
    assert not target.exists()  # ... and the host's /tmp never saw the file
    rag.rollback(rag.versions()[-2].id)


def test_good_candidate_deploys_is_callable_and_rolls_back(rag):
    before = rag.evolution.repository.current()
    outcome = rag.add_tool(CANDIDATES / "good_word_count", approver=PolicyApprover(assume_yes=True))
    assert outcome.status == "deployed" and outcome.tool == "word_count"
    assert [v.gate for v in outcome.verdicts] == ["code", "dependencies", "tests", "compatibility", "approval",
                                                  "deployed_tests", "examples", "smoke"]
    assert rag.registry.call("word_count", {"text": "one two  three"}) == 3
    with pytest.raises(Exception, match="invalid arguments"):
        rag.registry.call("word_count", {"text": 5})
    events = [e["event"] for e in rag.evolution.audit.entries()]
    assert "deployed" in events and "approval_requested" in events
    rag.rollback(before.id)
    assert "word_count" not in [m.name for m in rag.registry.tools()]


def test_human_rejection_stops_the_deploy(rag):
    outcome = rag.add_tool(CANDIDATES / "good_word_count",
                           approver=TerminalApprover(ask=lambda prompt: "n", show=lambda text: None))
    assert (outcome.status, outcome.gate) == ("rejected", "approval")
    assert "word_count" not in [m.name for m in rag.registry.tools()]


def test_pending_high_risk_is_deployed_only_after_a_human_approves(rag, tmp_path):
    candidate = tmp_path / "net"
    shutil.copytree(CANDIDATES / "uses_network", candidate)
    outcome = rag.add_tool(candidate, approver=PolicyApprover(assume_yes=True))
    assert outcome.status == "pending"
    # The Python API's caller is the home's admin, yet nothing proves a person: refused.
    with pytest.raises(UserError, match="only a human"):
        rag.decide_approval(outcome.approval_id, approve=True)
    with pytest.raises(PermissionDeniedError, match="approve needs the approver role"):
        rag.decide_approval(outcome.approval_id, approve=True, principal=Principal("otto", Role.OPERATOR),
                            token="anything")
    assert outcome.approval_id in [p.id for p in rag.pending_approvals()]  # still pending after both
    person = Principal("ada", Role.APPROVER, via="ui", human=True)  # an approver logged in to the UI
    deployed = rag.decide_approval(outcome.approval_id, approve=True, principal=person)
    assert deployed.status == "deployed" and deployed.tool in [m.name for m in rag.registry.tools()]
    approved = [e for e in rag.evolution.audit.entries() if e["event"] == "approved"][-1]
    assert approved["principal"]["name"] == "ada" and approved["proof"] == "ui login"


def test_cli_tools_add_reports_status_gate_reason_risk(tmp_path, capsys):
    assert main(["tools", "add", str(CANDIDATES / "typosquat"), "--yes", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert (data["status"], data["gate"], data["risk"]) == ("rejected", "dependencies", "HIGH")  # a new dependency
    assert "typo" in data["reason"]
    assert main(["tools", "add", str(CANDIDATES / "good_word_count"), "--yes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "deployed"
    assert main(["versions", "--json"]) == 0
    versions = json.loads(capsys.readouterr().out)
    assert [v["tools"] for v in versions] == [[], ["word_count"]]
    assert main(["rollback", versions[0]["id"], "--yes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == ["word_count"]


def test_the_rate_limit_holds(tmp_path):
    with Evorag(home=tmp_path / "h", evolutions_per_hour=2) as rag:
        for _ in range(2):
            rag.add_tool(CANDIDATES / "syntax_error")
        from evorag.tools.rate_limit import RateLimitedError

        with pytest.raises(RateLimitedError, match="2 evolutions per 1 h"):
            rag.add_tool(CANDIDATES / "syntax_error")


def test_an_approval_naming_code_outside_the_staging_folder_never_deploys(rag, tmp_path):
    """Defence in depth: someone who can edit the approvals database points a pending approval at a folder of
    their own, with a matching digest; approving it must not deploy that folder."""
    import sqlite3

    candidate = tmp_path / "net"
    shutil.copytree(CANDIDATES / "uses_network", candidate)
    outcome = rag.add_tool(candidate, approver=PolicyApprover(assume_yes=True))
    assert outcome.status == "pending"
    staged = Path(rag.evolution.approvals.get(outcome.approval_id).payload["staged"])
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(staged, elsewhere)  # the same files: the recorded digest matches
    db = sqlite3.connect(rag.settings.home / "approvals.sqlite3")
    body = json.loads(db.execute("SELECT body FROM approvals WHERE id=?", (outcome.approval_id,)).fetchone()[0])
    body["payload"]["staged"] = str(elsewhere)
    db.execute("UPDATE approvals SET body=? WHERE id=?", (json.dumps(body), outcome.approval_id))
    db.commit()
    db.close()
    person = Principal("ada", Role.APPROVER, via="ui", human=True)
    versions = [v.id for v in rag.versions()]
    refused = rag.decide_approval(outcome.approval_id, approve=True, principal=person)
    assert (refused.status, refused.gate) == ("rejected", "deploy"), refused
    assert "outside the staging folder" in refused.reason
    assert [v.id for v in rag.versions()] == versions and elsewhere.is_dir()  # nothing deployed
