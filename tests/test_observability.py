"""Operations: /metrics and JSON logs of the real HTTP MCP server, and the logging setup itself."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.memory import create_connected_server_and_client_session
from prometheus_client.parser import text_string_to_metric_families
from server_process import free_port, serving

from evorag.observability import REDACTED, configure_logging

REPO = Path(__file__).resolve().parents[1]
MCP_TOKEN = "obs-mcp-token-0123456789"
HUMAN_TOKEN = "obs-human-token-9876543210"
TOOL_METRIC = "evorag_mcp_tool_duration_seconds"


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text exposition, keyed by (sample name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _sample(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


# The logging setup, in process.


@pytest.fixture
def restore_logging():
    root, evorag = logging.getLogger(), logging.getLogger("evorag")
    saved = (list(root.handlers), root.level, evorag.level)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    evorag.setLevel(saved[2])


def test_json_lines_carry_the_extra_fields_and_mask_secrets(restore_logging, capsys):
    configure_logging(json=True, level="debug", secrets=[MCP_TOKEN])
    configure_logging(json=True, level="debug", secrets=[MCP_TOKEN])  # idempotent: still one handler
    log = logging.getLogger("evorag.test")
    log.debug("tool %s ok", "search_code_examples", extra={"tool": "search_code_examples", "duration_ms": 3.5})
    log.warning("someone pasted %s here", MCP_TOKEN)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    logging.getLogger("httpx").info("third-party chatter")  # other libraries: warnings and above only

    lines = capsys.readouterr().err.splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 3
    first = entries[0]
    assert first["level"] == "DEBUG" and first["logger"] == "evorag.test"
    assert first["message"] == "tool search_code_examples ok"
    assert first["tool"] == "search_code_examples" and first["duration_ms"] == 3.5
    assert first["ts"].endswith("+00:00")
    assert entries[1]["message"] == f"someone pasted {REDACTED} here"
    assert MCP_TOKEN not in "\n".join(lines)
    assert "RuntimeError: boom" in entries[2]["exc"]


def test_plain_text_and_level(restore_logging, capsys):
    configure_logging(json=False, level="WARNING")
    logging.getLogger("evorag.test").info("hidden")
    logging.getLogger("evorag.test").warning("shown %d", 42)
    err = capsys.readouterr().err
    assert "hidden" not in err
    assert "WARNING evorag.test: shown 42" in err
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging(level="loud")


# The real server: `evorag mcp --http` in a subprocess, with JSON logs.


@pytest.fixture(scope="module")
def json_logging_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("obs-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVORAG_") or k == "EVORAG_LLM_PROVIDER"}
    env.update(
        EVORAG_HOME=str(home),
        EVORAG_CONFIG=str(home / "no-config.toml"),
        EVORAG_MCP_TOKEN=MCP_TOKEN,
        EVORAG_APPROVAL_TOKEN=HUMAN_TOKEN,
        EVORAG_ALLOW_PRIVATE="true",
        EVORAG_CRAWL_RETRIES="0",
        EVORAG_LOG_JSON="true",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONPATH=str(REPO),
    )
    with serving(env, home / "server.log") as (url, _):
        yield {"url": url, "log": home / "server.log"}


@pytest.mark.anyio
async def test_metrics_count_tool_calls_http_statuses_and_crawl_jobs(json_logging_server):
    url = json_logging_server["url"]
    closed_port = free_port()  # nothing listens there: the crawl job fails fast
    headers = {"Authorization": f"Bearer {MCP_TOKEN}"}
    with anyio.fail_after(120):
        async with (
            streamablehttp_client(url + "/mcp", headers=headers) as (read, write, _),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            for _ in range(2):
                assert not (await client.call_tool("get_available_sources", {})).isError
            assert (await client.call_tool("search_code_examples", {"query": "x", "limit": 500})).isError
            refused = await client.call_tool("approve", {"approval_id": "nope", "human_token": HUMAN_TOKEN})
            assert refused.isError
            assert (await client.call_tool("no_such_tool", {})).isError
            job = await client.call_tool(
                "crawl_and_index_documentation",
                {"url": f"http://127.0.0.1:{closed_port}/", "source": "dead", "wait_seconds": 30},
            )
            assert job.structuredContent["status"] == "failed", job.structuredContent

    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await http.get("/healthz")).status_code == 200  # open
        response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)

    count = TOOL_METRIC + "_count"
    assert _sample(samples, count, tool="get_available_sources", outcome="ok") == 2
    assert _sample(samples, count, tool="get_available_sources", outcome="error") is None
    assert _sample(samples, count, tool="search_code_examples", outcome="error") == 1
    assert _sample(samples, count, tool="approve", outcome="error") == 1
    assert _sample(samples, count, tool="unknown", outcome="error") == 1  # invented names share one label
    assert _sample(samples, count, tool="crawl_and_index_documentation", outcome="ok") == 1
    assert _sample(samples, TOOL_METRIC + "_bucket", tool="get_available_sources", outcome="ok", le="+Inf") == 2
    assert _sample(samples, TOOL_METRIC + "_sum", tool="get_available_sources", outcome="ok") > 0

    assert _sample(samples, "evorag_http_requests_total", method="GET", path="/metrics", status="401") == 2
    assert _sample(samples, "evorag_http_requests_total", method="GET", path="/healthz", status="200") >= 2
    assert _sample(samples, "evorag_http_requests_total", method="POST", path="/mcp", status="200") >= 7
    assert _sample(samples, "evorag_crawl_jobs_started_total") == 1
    assert _sample(samples, "evorag_crawl_jobs_finished_total", status="failed") == 1
    assert _sample(samples, "process_resident_memory_bytes") > 0

    # One JSON line per tool call, with the tool, duration and status; never a token.
    logged = json_logging_server["log"].read_text(errors="replace")
    entries = [json.loads(line) for line in logged.splitlines() if line.strip()]
    calls = [e for e in entries if e["logger"] == "evorag.mcp" and "tool" in e]
    assert [(e["tool"], e["status"]) for e in calls] == [
        ("get_available_sources", "ok"),
        ("get_available_sources", "ok"),
        ("search_code_examples", "error"),
        ("approve", "error"),
        ("unknown", "error"),
        ("crawl_and_index_documentation", "ok"),
    ]
    assert all(isinstance(e["duration_ms"], float) and e["ts"] for e in calls)
    assert calls[2]["error"] == "ValidationError"
    assert MCP_TOKEN not in logged and HUMAN_TOKEN not in logged


# Evolution outcomes: a request whose plan needs a dependency off the allowlist is rejected at once.


@pytest.mark.slow  # the evolution team loads its memory (mem0 with the real embedding model): ~10 s
@pytest.mark.anyio
async def test_evolution_outcomes_are_counted(tmp_path):
    from evorag.mcp_server import build_server
    from evorag.service import Evorag

    plan = {"tool_name": "fetch_things", "description": "Fetch things.", "requirements": ["surely-not-allowed"]}
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([json.dumps(plan)] * 3))
    with Evorag(
        home=tmp_path / "home", llm_provider="replay", replay_file=replies, resolve_dependencies=False
    ) as rag:
        server = build_server(rag)
        try:
            async with create_connected_server_and_client_session(server) as client:
                with anyio.fail_after(120):
                    result = await client.call_tool("evolve_rag_capability", {"feature_request": "fetch things"})
            assert not result.isError, result.content
            assert result.structuredContent["status"] == "rejected"
        finally:
            await server.aclose()
    body, _ = server.metrics.render()
    samples = _samples(body.decode())
    assert _sample(samples, "evorag_evolution_outcomes_total", status="rejected") == 1
    assert _sample(samples, TOOL_METRIC + "_count", tool="evolve_rag_capability", outcome="ok") == 1
