"""Approvals by risk, the audit log's redaction, the evolution rate limit and the circuit breaker."""

from __future__ import annotations

import asyncio
import json

import pytest

from evorag.errors import UserError
from tools.approvals import ApprovalStore, PolicyApprover, QueueApprover, TerminalApprover
from tools.audit import REDACTED, AuditLog
from tools.rate_limit import RateLimitedError, SlidingWindowLimiter
from tools.resilience import CircuitBreaker


def test_high_risk_needs_a_human_or_the_token(tmp_path):
    store = ApprovalStore(tmp_path / "a.sqlite3", human_token="human-secret-token")
    high = store.create(tool="t", risk="HIGH", summary="s")
    with pytest.raises(UserError, match="only a human"):
        store.decide(high.id, approve=True, by="mcp")
    with pytest.raises(UserError):
        store.decide(high.id, approve=True, by="mcp", token="wrong")
    assert store.get(high.id).status == "pending"
    assert store.decide(high.id, approve=True, by="mcp", token="human-secret-token").status == "approved"
    low = store.create(tool="t", risk="LOW", summary="s")
    assert store.decide(low.id, approve=True, by="mcp").status == "approved"
    with pytest.raises(UserError, match="already approved"):
        store.decide(low.id, approve=False, by="x")


def test_pending_requests_expire_into_rejection(tmp_path):
    store = ApprovalStore(tmp_path / "a.sqlite3")
    request = store.create(tool="t", risk="MEDIUM", summary="s", ttl=0.0)
    assert store.get(request.id).status == "expired"
    assert store.pending() == []
    waiting = store.create(tool="t", risk="MEDIUM", summary="s")
    decision = asyncio.run(QueueApprover(store, timeout=0.3)(waiting))
    assert decision.approved is False and store.get(waiting.id).status == "expired"


def test_policy_and_terminal_approvers(tmp_path):
    store = ApprovalStore(tmp_path / "a.sqlite3")
    high, low = store.create(tool="t", risk="HIGH", summary="s"), store.create(tool="t", risk="LOW", summary="s")
    assert asyncio.run(PolicyApprover(assume_yes=True)(high)).approved is None
    assert asyncio.run(PolicyApprover(assume_yes=True)(low)).approved is True
    assert asyncio.run(PolicyApprover(assume_yes=False)(low)).approved is None
    shown = []
    terminal = TerminalApprover(ask=lambda prompt: "y", show=shown.append)
    assert asyncio.run(terminal(high)).approved is True and any("HIGH" in line for line in shown)
    assert asyncio.run(TerminalApprover(ask=lambda p: "", show=lambda s: None)(high)).approved is False


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
        store.decide(high.id, approve=True, by="mcp", token="tökén-ünïcode")
