"""A home with a few days of health data, written by the real parts: priced model calls of agents in the cost
ledger (today, yesterday and outside a week), finished evolutions in the audit log, and the periodic ``health``
task run once by the real scheduler and queue workers. tests/test_status.py and tests/test_ui.py read it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from evorag.tools.audit import AuditLog
from evorag.tools.costs import CostLedger

from evorag.service import Evorag
from evorag.service._request_kinds import periodic_tasks

DAY = 86_400
PRICES = {"openai:gpt-test": {"input": 1.0, "output": 2.0}}  # USD per 1,000 tokens


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def seed_health(home: Path) -> float:
    """Write the health data into ``home``; returns the time it was written at (UTC seconds)."""
    now = time.time()
    _seed_costs(home, now)
    _seed_evolutions(home, now)
    _run_the_health_schedule_once(home, now)
    return now


def _seed_costs(home: Path, now: float) -> None:
    clock = FakeClock(now)
    ledger = CostLedger(home / "costs.sqlite3", prices=PRICES, clock=clock.time)
    try:
        # Today: two orchestrator calls (1 s and 3 s), one failed code_debugger call, one call of no agent.
        ledger.record(model="openai:gpt-test", prompt_tokens=400, completion_tokens=100, seconds=1.0,
                      principal="alice", operation="evolve", agent="orchestrator")  # $0.60
        ledger.record(model="openai:gpt-test", prompt_tokens=200, completion_tokens=100, seconds=3.0,
                      principal="alice", operation="evolve", agent="orchestrator")  # $0.40
        ledger.record(model="openai:gpt-test", prompt_tokens=100, completion_tokens=0, seconds=0.5, ok=False,
                      principal="bob", operation="evolve", agent="code_debugger")  # $0.10
        ledger.record(model="openai:gpt-test", prompt_tokens=250, completion_tokens=0, seconds=0.2,
                      principal="bob", operation="ask")  # $0.25
        clock.now = now - DAY  # yesterday: one orchestrator call
        ledger.record(model="openai:gpt-test", prompt_tokens=1000, completion_tokens=0, seconds=2.0,
                      principal="alice", operation="evolve", agent="orchestrator")  # $1.00
        clock.now = now - 10 * DAY  # outside a week: counted nowhere in a 7-day status
        ledger.record(model="openai:gpt-test", prompt_tokens=5000, completion_tokens=0, seconds=9.0,
                      principal="alice", operation="evolve", agent="retired_agent")
    finally:
        ledger.close()


def _seed_evolutions(home: Path, now: float) -> None:
    """Six evolutions this week: deployed, rejected, model_unavailable, pending then approved and deployed,
    pending then rejected by an approver (the entry names only the approval, as the service writes it), still
    pending; and one deployed ten days ago (outside the window)."""
    audit = AuditLog(home / "audit.jsonl")
    old = {"ts": now - 10 * DAY, "event": "evolution_finished", "principal": None, "run_id": "old1",
           "status": "deployed", "gate": "deploy", "reason": None, "tokens": {}}
    audit.path.write_text(json.dumps(old) + "\n")
    for run_id, status, gate in (("run1", "deployed", "deploy"), ("run2", "rejected", "tests"),
                                 ("run3", "model_unavailable", "model"), ("run4", "pending", "approval"),
                                 ("run5", "pending", "approval"), ("run6", "pending", "approval")):
        audit.write("evolution_started", run_id=run_id, request=f"tool {run_id}")
        audit.write("agent_message", run_id=run_id, agent="orchestrator", content="plan",
                    tokens={"prompt_tokens": 10, "completion_tokens": 5})
        if status == "pending":
            audit.write("approval_requested", run_id=run_id, approval_id=f"a-{run_id}", risk="LOW")
        audit.write("evolution_finished", run_id=run_id, status=status, gate=gate, reason=None, tokens={})
    audit.write("approved", run_id="run4", approval_id="a-run4", by="ada")
    audit.write("deployed", run_id="run4", tool="tool_run4", version="v4")
    audit.write("rejected", approval_id="a-run5", risk="LOW", reason="rejected by ada (ui)")


def _run_the_health_schedule_once(home: Path, now: float) -> None:
    """The scheduler creates the periodic ``health`` task's daily schedule a day ago, submits it when due, and a
    queue worker runs it; its next run is a day after that, so nothing else runs while a test reads the home.
    Other periodic tasks are off here (a server started later on the home schedules them from its start)."""
    clock = FakeClock(now - DAY - 60)
    others_off = {name: "off" for name in periodic_tasks() if name != "health"}
    with Evorag(home=home, llm_provider="none", clock=clock, queue_poll_seconds=0.05, schedules=others_off) as rag:
        rag.requests.scheduler.sync_periodic()
        clock.now = now - 59
        [submitted] = rag.requests.scheduler.tick()
        assert submitted.kind == "health", submitted
        rag.requests.start_background(workers=1)
        try:
            deadline = time.monotonic() + 120
            while rag.queue_requests(finished=False):
                assert time.monotonic() < deadline, "the scheduled health check did not finish"
                time.sleep(0.05)
        finally:
            rag.requests.stop_background()
