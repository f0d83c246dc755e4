"""`evorag status` and the MCP HTTP server's `/healthz` (the store, the catalog, the model client) and `/livez`,
served by the real ASGI app in process."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
from evorag.tools.costs import CostLedger
from evorag.tools.metrics_store import MetricsStore

from evorag.cli import main
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
