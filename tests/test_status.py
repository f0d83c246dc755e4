"""`evorag status` and the MCP HTTP server's `/healthz` (the store, the catalog, the model client) and `/livez`,
served by the real ASGI app in process."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest
from evorag.tools.costs import CostLedger
from evorag.tools.metrics_store import MetricsStore
from health_fixtures import DAY, seed_health

from evorag.cli import main
from evorag.errors import UserError
from evorag.mcp_server._server import build_server
from evorag.mcp_server._transports import http_app
from evorag.service import Evorag


def test_status_shows_resources_queue_cost_and_anomalies(evorag_home, capsys) -> None:
    ledger = CostLedger(evorag_home / "costs.sqlite3", prices={"openai:gpt-test": {"input": 1.0, "output": 1.0}})
    ledger.record(model="openai:gpt-test", prompt_tokens=300, completion_tokens=200, principal="alice")
    ledger.close()
    store = MetricsStore(evorag_home / "metrics.sqlite3")
    rng = random.Random(2)
    for i in range(120):
        store.record({"overall": 0.8 + rng.gauss(0, 0.02) - (0.3 if i >= 90 else 0.0)}, query=f"q{i}")

    with Evorag(home=evorag_home) as rag:
        status = rag.status()
        assert status.cost_today_usd == 0.5 and status.model_calls_today == 1
        assert status.queue_waiting == 0 and status.queue_running == 0
        assert {"cpu_percent", "memory_available_mb", "disk_free_mb", "load_1m"} <= set(status.resources)
        assert status.resources["disk_free_mb"] > 0 and status.resources["memory_available_mb"] > 0
        drops = [a for a in status.recent_anomalies if a.metric == "answer_quality"]
        assert drops and drops[0].direction == "down" and drops[0].query.startswith("q9")
        # A queued request is counted (the queue is the service's; nothing runs it here).
        rag.submit_request("health")
        assert rag.status().queue_waiting == 1

    assert main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cost_today_usd"] == 0.5 and data["queue_waiting"] == 1
    assert data["recent_anomalies"][0]["metric"] == "answer_quality"
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert "queue: 1 waiting, 0 running" in text and "cost today: $0.5000 (1 model calls)" in text


def test_status_shows_schedules_evolution_success_agents_and_cost_by_day(evorag_home, capsys) -> None:
    now = seed_health(evorag_home)
    with Evorag(home=evorag_home, daily_budget_usd=2.0) as rag:
        status = rag.status()
        queue = rag.queue_requests(finished=True)
    assert status.cost_today_usd == 1.35 and status.model_calls_today == 4
    assert status.budget_usd == 2.0 and status.budget_left_usd == 0.65
    # The schedule the scheduler created, with the run the worker finished: the queue's own record of it.
    [health] = [s for s in status.schedules if s.name == "task:health"]
    [ran] = [r for r in queue if r.kind == "health"]
    assert (health.spec, health.last_status, health.last_error) == ("daily", "done", None), health
    assert health.last_finished_at == ran.finished_at and now - 60 <= health.last_submitted_at <= now
    assert health.next_due == now - DAY - 60 + 2 * DAY
    # Six evolutions this week (pending ones decided later count as their decision; one still waits): 2 deployed
    # of the 5 decided. The one of 10 days ago is out.
    assert status.evolutions.finished == 6
    assert status.evolutions.by_status == {"deployed": 2, "model_unavailable": 1, "pending": 1, "rejected": 2}
    assert status.evolutions.success_rate == 0.4
    # Per agent over the week: the orchestrator's calls of today and yesterday; the retired agent is too old.
    agents = {row.key: row for row in status.agents}
    assert list(agents) == ["orchestrator", "code_debugger"]
    orchestrator, debugger = agents["orchestrator"], agents["code_debugger"]
    assert (orchestrator.calls, orchestrator.prompt_tokens, orchestrator.completion_tokens) == (3, 1600, 200)
    assert (orchestrator.mean_seconds, orchestrator.cost_usd) == (2.0, 2.0)
    assert (debugger.calls, debugger.failed, debugger.prompt_tokens, debugger.mean_seconds) == (1, 1, 100, 0.5)
    days = [(d.cost_usd, d.calls) for d in status.cost_by_day]
    assert len(days) == 7 and days[-2:] == [(1.0, 1), (1.35, 4)] and days[:-2] == [(0.0, 0)] * 5
    with Evorag(home=evorag_home) as rag:
        assert [d.calls for d in rag.status(days=1).cost_by_day] == [4]
        assert rag.status(days=1).evolutions.finished == 6  # all of them finished today
        with pytest.raises(UserError, match="days must be between 1 and 90"):
            rag.status(days=0)

    assert main(["status", "--json", "--days", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["window_days"] == 3 and [d["calls"] for d in data["cost_by_day"]] == [0, 1, 4]
    assert data["evolutions"] == {"finished": 6, "by_status": status.evolutions.by_status, "success_rate": 0.4}
    assert [(a["key"], a["prompt_tokens"]) for a in data["agents"]] == [("orchestrator", 1600), ("code_debugger", 100)]
    assert [(s["name"], s["last_status"]) for s in data["schedules"]] == [("task:health", "done")]
    assert main(["status"]) == 0
    text = capsys.readouterr().out
    assert ("evolutions (last 7 days): 6 finished (2 deployed, 1 model_unavailable, 1 pending, 2 rejected), "
            "success rate 40%") in text
    assert "task:health" in text and "done" in text and "orchestrator" in text and "1600" in text
    assert "cost today: $1.3500 (4 model calls)" in text
    assert main(["status", "--days", "91"]) == 2


async def _get(app, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        return await http.get(path)


def _app(rag: Evorag):
    return http_app(build_server(rag), authenticate=None, allowed_origins=[], host="127.0.0.1")


def test_healthz_checks_store_catalog_and_model_livez_stays_trivial(evorag_home) -> None:
    with Evorag(home=evorag_home, llm_provider="none") as rag:
        app = _app(rag)
        live = asyncio.run(_get(app, "/livez"))
        assert live.status_code == 200 and live.json() == {"status": "ok"}
        health = asyncio.run(_get(app, "/healthz"))
        assert health.status_code == 200, health.text
        checks = {c["name"]: c for c in health.json()["checks"]}
        assert set(checks) == {"catalog", "store", "model"} and all(c["ok"] for c in checks.values())
        assert checks["catalog"]["detail"] == "0 sources" and checks["store"]["detail"] == "0 chunks"
        assert "extractive" in checks["model"]["detail"]

    # A spent budget stops the model: the model check fails, /healthz says 503 and why.
    ledger = CostLedger(evorag_home / "costs.sqlite3", prices={"openai:gpt-test": {"input": 1.0, "output": 1.0}})
    ledger.record(model="openai:gpt-test", prompt_tokens=1000, completion_tokens=0)
    ledger.close()
    with Evorag(home=evorag_home, model_client=object(), model_name="openai:gpt-test",
                model_prices={"openai:gpt-test": {"input": 1.0, "output": 1.0}}, daily_budget_usd=0.5) as rag:
        health = asyncio.run(_get(_app(rag), "/healthz"))
        assert health.status_code == 503 and health.json()["status"] == "failing"
        model = next(c for c in health.json()["checks"] if c["name"] == "model")
        assert not model["ok"] and "budget" in model["detail"]


def test_healthz_reports_a_broken_catalog(evorag_home) -> None:
    evorag_home.mkdir(parents=True, exist_ok=True)
    (evorag_home / "catalog.sqlite3").write_bytes(b"this is not a database" * 100)
    with Evorag(home=evorag_home, llm_provider="none") as rag:
        assert rag.settings.catalog_path == evorag_home / "catalog.sqlite3"
        health = asyncio.run(_get(_app(rag), "/healthz"))
        assert health.status_code == 503
        checks = {c["name"]: c for c in health.json()["checks"]}
        assert not checks["catalog"]["ok"] and checks["catalog"]["detail"]
        assert checks["model"]["ok"]
