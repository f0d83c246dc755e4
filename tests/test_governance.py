"""Approvals by risk, the audit log's redaction, the evolution rate limit and the circuit breaker."""

from __future__ import annotations

import asyncio
import json

import pytest
from evorag.tools.approvals import ApprovalStore, PolicyApprover, QueueApprover, TerminalApprover
from evorag.tools.audit import REDACTED, AuditLog
from evorag.tools.rate_limit import RateLimitedError, SlidingWindowLimiter
from evorag.tools.resilience import CircuitBreaker

from evorag.errors import PermissionDeniedError, UserError
from evorag.principals import POLICY, Principal, Role

APPROVER = Principal("ada", Role.APPROVER, via="cli")
OPERATOR = Principal("otto", Role.OPERATOR, via="mcp-http")
PERSON = Principal("ada", Role.APPROVER, via="ui", human=True)  # an approver logged in to the UI


def test_high_risk_needs_an_approver_and_proof_of_a_person(tmp_path):
    store = ApprovalStore(tmp_path / "a.sqlite3", human_token="human-secret-token")
    high = store.create(tool="t", risk="HIGH", summary="s")
    with pytest.raises(UserError, match="only a human"):  # an approver, but nothing proves a person
        store.decide(high.id, approve=True, principal=APPROVER)
    with pytest.raises(UserError, match="only a human"):
        store.decide(high.id, approve=True, principal=APPROVER, token="wrong")
    with pytest.raises(PermissionDeniedError, match="needs the approver role; otto has the operator role"):
        store.decide(high.id, approve=True, principal=OPERATOR, token="human-secret-token")
    assert store.get(high.id).status == "pending"
    approved = store.decide(high.id, approve=True, principal=APPROVER, token="human-secret-token")
    assert (approved.status, approved.decided_by, approved.decided_role, approved.proof) == (
        "approved", "ada", "approver", "approval token")
    in_ui = store.decide(store.create(tool="t", risk="HIGH", summary="s").id, approve=True, principal=PERSON)
    assert (in_ui.status, in_ui.proof, in_ui.decided_via) == ("approved", "ui login", "ui")
    # A risk this module does not know is treated as HIGH.
    odd = store.create(tool="t", risk="CRITICAL", summary="s")
    with pytest.raises(UserError, match="only a human"):
        store.decide(odd.id, approve=True, principal=APPROVER)
    with pytest.raises(UserError, match="already approved"):
        store.decide(high.id, approve=False, principal=APPROVER)


def test_low_is_policy_medium_needs_an_approver(tmp_path):
    store = ApprovalStore(tmp_path / "a.sqlite3")
    low = store.create(tool="t", risk="LOW", summary="s")
    assert store.decide(low.id, approve=True, principal=POLICY).status == "approved"
    medium = store.create(tool="t", risk="MEDIUM", summary="s")
    for refused in (POLICY, OPERATOR):
        with pytest.raises(PermissionDeniedError, match="MEDIUM risk: approving it needs the approver role"):
            store.decide(medium.id, approve=True, principal=refused)
    decided = store.decide(medium.id, approve=True, principal=APPROVER)
    assert (decided.status, decided.proof) == ("approved", None)
    # Turning down what one's own run proposes needs no role.
    assert store.decide(store.create(tool="t", risk="HIGH", summary="s").id, approve=False,
                        principal=OPERATOR).status == "rejected"


def test_pending_requests_expire_into_rejection(tmp_path):
    store = ApprovalStore(tmp_path / "a.sqlite3")
    request = store.create(tool="t", risk="MEDIUM", summary="s", ttl=0.0)
    assert store.get(request.id).status == "expired"
    assert store.pending() == []
    waiting = store.create(tool="t", risk="MEDIUM", summary="s")
    decision = asyncio.run(QueueApprover(store, timeout=0.3)(waiting))
    assert decision.approved is False and store.get(waiting.id).status == "expired"


def test_policy_and_terminal_approvers(tmp_path):
    store = ApprovalStore(tmp_path / "a.sqlite3", human_token="human-secret-token")
    high, medium, low = (store.create(tool="t", risk=risk, summary="s") for risk in ("HIGH", "MEDIUM", "LOW"))
    policy = PolicyApprover(assume_yes=True, principal=OPERATOR)
    assert asyncio.run(policy(high)).approved is None
    assert asyncio.run(policy(medium)).approved is None  # --yes approves LOW only
    decision = asyncio.run(policy(low))
    assert decision.approved is True and decision.principal == OPERATOR
    assert asyncio.run(PolicyApprover(assume_yes=False)(low)).approved is None

    # The terminal: "y" is the admin's answer, and HIGH risk then asks for the token, without echo.
    shown, secrets_asked = [], []

    def secret(prompt):
        secrets_asked.append(prompt)
        return "not the token"

    terminal = TerminalApprover(APPROVER, ask=lambda prompt: "y", show=shown.append, ask_secret=secret)
    decision = asyncio.run(terminal(high))
    assert decision.approved is True and decision.token == "not the token" and secrets_asked
    assert any("HIGH" in line for line in shown)
    with pytest.raises(UserError, match="only a human"):  # a TTY and "y" prove nothing without the token
        store.apply(high.id, decision)
    right = TerminalApprover(APPROVER, ask=lambda p: "y", show=lambda s: None, ask_secret=lambda p: "human-secret-token")
    assert store.apply(high.id, asyncio.run(right(high))).proof == "approval token"
    # MEDIUM: no token asked; LOW: none either.
    secrets_asked.clear()
    assert store.apply(medium.id, asyncio.run(terminal(medium))).status == "approved" and not secrets_asked
    assert asyncio.run(TerminalApprover(APPROVER, ask=lambda p: "", show=lambda s: None)(low)).approved is False
    # Someone whose role cannot approve the risk is not even asked.
    asked = []
    reader = TerminalApprover(Principal("r", Role.READER), ask=asked.append, show=lambda s: None)
    assert asyncio.run(reader(store.create(tool="t", risk="MEDIUM", summary="s"))).approved is None and not asked


def test_audit_log_never_holds_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("EVORAG_MCP_TOKEN", "mcp-token-value-123")
    log = AuditLog(tmp_path / "audit.jsonl", known_secrets=["approval-token-xyz"])
    log.write("step", api_key="sk-abcdefghijklmnop", note="used approval-token-xyz and mcp-token-value-123",
              headers={"Authorization": "Bearer abcdefghijklmnop"}, nested=[{"password": "hunter22"}])
    raw = (tmp_path / "audit.jsonl").read_text()
    for secret in ("sk-abcdefghijklmnop", "approval-token-xyz", "mcp-token-value-123", "abcdefghijklmnop",
                   "hunter22"):
        assert secret not in raw
    entry = json.loads(raw)
    assert entry["api_key"] == REDACTED and entry["event"] == "step"
    # A torn last line (killed writer) does not break reading.
    with (tmp_path / "audit.jsonl").open("a") as handle:
        handle.write('{"ts": 1, "event": "to')
    assert [e["event"] for e in log.entries()] == ["step"]
    # Nor does a line nested past the JSON parser's depth (written by hand into the file).
    with (tmp_path / "audit.jsonl").open("a") as handle:
        handle.write("\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    log.write("after")
    assert [e["event"] for e in log.entries()] == ["step", "after"]


def test_rate_limit_holds_across_instances(tmp_path):
    now = [1000.0]
    path = tmp_path / "rl.sqlite3"
    first = SlidingWindowLimiter(path, limit=3, window_seconds=3600, clock=lambda: now[0])
    for _ in range(3):
        first.acquire()
    second = SlidingWindowLimiter(path, limit=3, window_seconds=3600, clock=lambda: now[0])
    with pytest.raises(RateLimitedError, match="3 evolutions per 1 h"):
        second.acquire()
    now[0] += 3601
    second.acquire()
    assert second.used() == 1


def test_circuit_breaker_opens_and_half_opens():
    now = [0.0]
    breaker = CircuitBreaker("llm", failure_threshold=2, reset_after=10, clock=lambda: now[0])
    breaker.record_failure("down")
    assert breaker.allow()
    breaker.record_failure("down")
    assert not breaker.allow() and breaker.state == "open" and breaker.last_error == "down"
    now[0] = 11
    assert breaker.state == "half-open" and breaker.allow()
    breaker.record_failure("still down")
    assert breaker.state == "open"
    now[0] = 22
    breaker.record_success()
    assert breaker.state == "closed"


def test_a_non_ascii_token_is_simply_wrong(tmp_path):
    store = ApprovalStore(tmp_path / "a.sqlite3", human_token="human-secret-token")
    high = store.create(tool="t", risk="HIGH", summary="s")
    with pytest.raises(UserError, match="only a human"):
        store.decide(high.id, approve=True, principal=APPROVER, token="tökén-ünïcode\udcff")


def test_the_store_keeps_only_a_digest_of_the_token(tmp_path):
    from evorag.principals import sha256_hex

    given = ApprovalStore(tmp_path / "a.sqlite3", human_token="human-secret-token")
    assert "human-secret-token" not in repr(vars(given))
    by_digest = ApprovalStore(tmp_path / "a.sqlite3", token_digests=[sha256_hex("human-secret-token")])
    high = by_digest.create(tool="t", risk="HIGH", summary="s")
    assert by_digest.decide(high.id, approve=True, principal=APPROVER, token="human-secret-token").status == "approved"


def test_every_audit_entry_names_its_principal(tmp_path):
    from evorag.principals import acting_as

    log = AuditLog(tmp_path / "audit.jsonl")
    with acting_as(OPERATOR):
        log.write("crawl_started")
        log.write("approved", principal=APPROVER)  # an explicit principal wins
    log.write("bare")  # below the service nobody is acting: recorded as such, not guessed
    entries = log.entries()
    assert [e["principal"] and e["principal"]["name"] for e in entries] == ["otto", "ada", None]
    assert entries[0]["principal"] == {"name": "otto", "role": "operator", "via": "mcp-http", "human": False}


def test_concurrent_tasks_are_audited_under_their_own_principal(tmp_path):
    from evorag.principals import acting_as

    log = AuditLog(tmp_path / "audit.jsonl")

    async def act(principal, pause):
        with acting_as(principal):
            await asyncio.sleep(pause)  # the other task runs meanwhile
            await asyncio.to_thread(log.write, "step", who=principal.name)

    async def both():
        await asyncio.gather(act(OPERATOR, 0.05), act(APPROVER, 0.0))

    asyncio.run(both())
    assert {(e["who"], e["principal"]["name"]) for e in log.entries()} == {("otto", "otto"), ("ada", "ada")}
