"""Per-principal quotas and the usage metrics: each principal has its own evolutions per hour (a gate's rejection
counts, an infrastructure failure gives the slot back) and its own API calls per minute (a tool error saying when
to retry over MCP in memory, HTTP 429 with Retry-After from a real `evorag mcp --http`); the Prometheus exposition
has tokens and cost by principal and operation and the quota refusals; a limiter database from before per-principal
limits is migrated with its events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from pathlib import Path

import httpx
import pytest
from autogen_core.models import UserMessage
from autogen_ext.models.replay import ReplayChatCompletionClient
from evorag.tools.approvals import PolicyApprover
from evorag.tools.rate_limit import RateLimitedError, SlidingWindowLimiter
from mcp.shared.memory import create_connected_server_and_client_session
from prometheus_client.parser import text_string_to_metric_families
from server_process import serving

from evorag.errors import ConfigError
from evorag.mcp_server import build_server
from evorag.principals import Principal, Role, acting_as
from evorag.service import Evorag

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = Path(__file__).parent / "candidates"
PRICES = {"openai:gpt-test": {"input": 1.0, "output": 2.0}}
ALICE = Principal("alice", Role.OPERATOR, via="mcp")
BOB = Principal("bob", Role.OPERATOR, via="ui")
T0 = 1_764_892_800.0  # 2025-12-05 00:00 UTC


# Evolutions per hour


def test_each_principal_has_its_own_hourly_evolutions_and_a_rejection_counts(tmp_path):
    with Evorag(home=tmp_path / "home", evolutions_per_hour=1) as rag:
        rejected = rag.add_tool(CANDIDATES / "syntax_error", principal=ALICE, approver=PolicyApprover(assume_yes=True))
        assert (rejected.status, rejected.gate) == ("rejected", "code")  # refused by a gate: still a use
        with pytest.raises(RateLimitedError) as refused:
            rag.add_tool(CANDIDATES / "syntax_error", principal=ALICE, approver=PolicyApprover(assume_yes=True))
        message = refused.value.message
        assert message.startswith("rate limit reached: 1 evolutions per 1 h for alice; the next one is possible in ")
        assert "min (at " in message and " UTC)" in message
        assert 3500 <= refused.value.retry_after <= 3600
        assert "EVORAG_EVOLUTIONS_PER_HOUR" in refused.value.hint
        # Alice's spent hour does not block Bob.
        other = rag.add_tool(CANDIDATES / "syntax_error", principal=BOB, approver=PolicyApprover(assume_yes=True))
        assert other.status == "rejected"
        limiter = rag.parts.rate_limiter
        assert limiter.used(principal=ALICE) == 1 and limiter.used(principal=BOB) == 1
        assert rag.quotas.rejections() == {("evolutions_per_hour", "alice"): 1}


def test_a_missing_sandbox_gives_the_slot_back(tmp_path, monkeypatch):
    # The Docker backend with no daemon behind DOCKER_HOST: no usable sandbox for the tests gate.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with Evorag(home=tmp_path / "home", evolutions_per_hour=1, sandbox_backend="docker",
                resolve_dependencies=False) as rag:
        for _ in range(2):  # the second is not refused for rate: the first gave its slot back
            with pytest.raises(ConfigError, match="no usable sandbox"):
                rag.add_tool(CANDIDATES / "good_word_count", principal=ALICE, approver=PolicyApprover(assume_yes=True))
        assert rag.parts.rate_limiter.used(principal=ALICE) == 0
        # A gate's rejection in the same setup keeps its slot (the code gate runs no sandbox).
        assert rag.add_tool(CANDIDATES / "syntax_error", principal=ALICE).status == "rejected"
        assert rag.parts.rate_limiter.used(principal=ALICE) == 1


def test_per_role_limits_and_the_window(tmp_path):
    now = [T0]
    limiter = SlidingWindowLimiter(tmp_path / "limits.sqlite3", limit=1, limits_by_role={"admin": 3},
                                   clock=lambda: now[0])
    admin = Principal("ada", Role.ADMIN, via="mcp-http")
    for _ in range(3):
        limiter.acquire(principal=admin)
        now[0] += 60
    with pytest.raises(RateLimitedError, match="3 evolutions per 1 h for ada") as refused:
        limiter.acquire(principal=admin)
    assert refused.value.retry_after == 3600 - 180  # when the first of the three leaves the window
    with acting_as(ALICE):  # the principal acting now, when none is named
        slot = limiter.acquire()
        with pytest.raises(RateLimitedError, match="for alice"):
            limiter.acquire()
        limiter.release(slot)
        limiter.acquire()
    now[0] += 3600 - 180 + 1
    limiter.acquire(principal=admin)  # the first use left the window


def test_an_old_limiter_database_is_migrated_with_its_events(tmp_path):
    path = tmp_path / "rate_limit.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as old:  # the schema before per-principal limits
        old.execute("CREATE TABLE events (name TEXT NOT NULL, at REAL NOT NULL)")
        old.executemany("INSERT INTO events VALUES (?, ?)",
                        [("evolution", T0 - 7200), ("evolution", T0 - 600), ("evolution", T0 - 300)])
        old.commit()
    now = [T0]
    limiter = SlidingWindowLimiter(path, limit=3, clock=lambda: now[0])
    SlidingWindowLimiter(path, limit=3, clock=lambda: now[0])  # a second process opening it: migrated once
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT name, at, principal FROM events ORDER BY at").fetchall() == [
            ("evolution", T0 - 7200, ""), ("evolution", T0 - 600, ""), ("evolution", T0 - 300, "")]
    # The two uses of the last hour, nobody's, count against everyone: no fresh quota from upgrading.
    assert limiter.used(principal=ALICE) == 2 and limiter.used(principal=BOB) == 2
    limiter.acquire(principal=ALICE)
    with pytest.raises(RateLimitedError, match="in 50 min"):
        limiter.acquire(principal=ALICE)
    limiter.acquire(principal=BOB)


# API calls per minute


def test_api_calls_per_minute_per_principal_with_a_clock(tmp_path):
    now = [1000.0]
    with Evorag(home=tmp_path / "home", api_calls_per_minute=3) as rag:
        rag.parts.api_limiter.clock = lambda: now[0]
        for _ in range(3):
            rag.api_call(ALICE)
            now[0] += 1
        with pytest.raises(RateLimitedError) as refused:
            rag.api_call(ALICE)
        assert refused.value.message == ("rate limit reached: 3 API calls per 60 s for alice; the next one is "
                                         "possible in 57 s")
        assert refused.value.retry_after == 57 and "EVORAG_API_CALLS_PER_MINUTE" in refused.value.hint
        for _ in range(3):
            rag.api_call(BOB)  # another principal is not affected
        local = Principal("me", Role.ADMIN, via="cli")
        for _ in range(10):
            rag.api_call(local)  # the local CLI is not limited
        now[0] += 30
        with pytest.raises(RateLimitedError, match="in 27 s"):
            rag.api_call(ALICE)
        with pytest.raises(RateLimitedError, match="in 29 s"):
            rag.api_call(ALICE, count=3)  # all three fit only once every earlier call has left the window
        now[0] += 28
        rag.api_call(ALICE)  # the first call left the window
        assert rag.quotas.rejections() == {("api_calls_per_minute", "alice"): 3}


def test_unlimited_when_zero(tmp_path):
    with Evorag(home=tmp_path / "home", api_calls_per_minute=0) as rag:
        for _ in range(500):
            rag.api_call(ALICE)


def _error(result) -> str:
    assert result.isError, result
    return result.content[0].text


@pytest.mark.anyio
async def test_an_mcp_client_over_its_limit_gets_a_tool_error_with_the_retry_time(tmp_path):
    with Evorag(home=tmp_path / "home", api_calls_per_minute=2) as rag:
        server = build_server(rag, principal=Principal("stdio-user", Role.OPERATOR, via="mcp-stdio"))
        try:
            async with create_connected_server_and_client_session(server) as client:
                for _ in range(2):
                    assert not (await client.call_tool("list_pending_approvals", {})).isError
                refused = _error(await client.call_tool("list_pending_approvals", {}))
                assert refused.startswith("rate limit reached: 2 API calls per 60 s for stdio-user; the next one "
                                          "is possible in ")
                assert (await client.list_tools()).tools  # listing is not a call
        finally:
            await server.aclose()


# Prometheus


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_the_exposition_has_tokens_cost_and_rejections_by_principal(tmp_path):
    replies = ["one two three", "four five", "six"]
    with Evorag(home=tmp_path / "home", model_client=ReplayChatCompletionClient(replies),
                model_name="openai:gpt-test", model_prices=PRICES, api_calls_per_minute=1) as rag:
        client = rag.parts.model_client("agents")
        with rag._context.acting(ALICE, "ask"):  # as tests/test_costs.py: attributed to alice's ask
            asyncio.run(client.create([UserMessage(content="what is a crawl", source="user")]))  # 4 + 3 tokens
            asyncio.run(client.create([UserMessage(content="and a source", source="user")]))  # 3 + 2
        with rag._context.acting(BOB, "evolve"):
            asyncio.run(client.create([UserMessage(content="write a tool now please", source="user")]))  # 5 + 1
        rag.api_call(BOB)
        with pytest.raises(RateLimitedError):
            rag.api_call(BOB)
        server = build_server(rag)
        try:
            body, _ = server.metrics.render()
            hidden, _ = server.metrics.render(usage=False)
        finally:
            asyncio.run(server.aclose())
    samples = _samples(body.decode())
    alice = (("operation", "ask"), ("principal", "alice"))
    bob = (("operation", "evolve"), ("principal", "bob"))
    assert samples[("evorag_model_calls_total", alice)] == 2
    assert samples[("evorag_model_tokens_total", (("kind", "prompt"), *alice))] == 7
    assert samples[("evorag_model_tokens_total", (("kind", "completion"), *alice))] == 5
    assert samples[("evorag_model_cost_usd_total", alice)] == pytest.approx((7 * 1.0 + 5 * 2.0) / 1000)
    assert samples[("evorag_model_cost_usd_total", bob)] == pytest.approx((5 * 1.0 + 1 * 2.0) / 1000)
    assert samples[("evorag_quota_rejections_total", (("limit", "api_calls_per_minute"), ("principal", "bob")))] == 1
    assert not [key for key in samples if key[0] == "evorag_quota_rejections_total" and "alice" in str(key)]
    # Without the usage part (a reader's scrape): none of it, the server's own metrics still there.
    assert b"evorag_model_" not in hidden and b"evorag_quota_rejections" not in hidden
    assert b"evorag_mcp_tool_duration_seconds" in hidden


# A real HTTP server


HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "quota-test", "version": "1"}}}


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    """`evorag mcp --http` with 3 API calls per minute, and two users: alice (reader), bob (operator)."""
    home = tmp_path_factory.mktemp("quotas") / "home"
    with Evorag(home=home) as rag:
        tokens = {"alice": rag.principals.add("alice", "reader"), "bob": rag.principals.add("bob", "operator")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVORAG_")}
    env.update(EVORAG_HOME=str(home), EVORAG_CONFIG=str(home / "none.toml"), EVORAG_LLM_PROVIDER="none",
               EVORAG_API_CALLS_PER_MINUTE="3", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO))
    log = home / "server.log"
    with serving(env, log, ready="/livez") as (url, _):
        yield url, tokens, log


class _Client:
    """One MCP session over raw HTTP."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url + "/mcp"
        self.headers = HEADERS | {"Authorization": f"Bearer {token}"}
        opened = httpx.post(self.url, json=INITIALIZE, headers=self.headers, timeout=30)
        assert opened.status_code == 200, opened.text
        self.headers["mcp-session-id"] = opened.headers["mcp-session-id"]
        self.headers["mcp-protocol-version"] = "2025-06-18"
        note = httpx.post(self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                          headers=self.headers, timeout=30)
        assert note.status_code == 202, note.text
        self.next_id = 2

    def call(self, tool: str) -> httpx.Response:
        self.next_id += 1
        return httpx.post(self.url, json={"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                                          "params": {"name": tool, "arguments": {}}},
                          headers=self.headers, timeout=60)

    def close(self) -> None:
        httpx.delete(self.url, headers=self.headers, timeout=30)


def _result(response: httpx.Response) -> dict:
    """The JSON-RPC message of a response (a JSON body, or the data line of an event stream)."""
    if response.headers["content-type"].startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return response.json()


def test_http_answers_429_with_retry_after_per_principal(http_server):
    url, tokens, log = http_server
    alice, bob = _Client(url, tokens["alice"]), _Client(url, tokens["bob"])
    try:
        for _ in range(3):
            done = alice.call("get_available_sources")
            assert done.status_code == 200 and _result(done)["result"]["isError"] is False, done.text
        refused = alice.call("get_available_sources")
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        error = refused.json()["error"]
        assert error["message"].startswith("rate limit reached: 3 API calls per 60 s for alice; the next one is "
                                           "possible in ")
        # Another token's principal still has its own minute.
        done = bob.call("get_available_sources")
        assert done.status_code == 200 and _result(done)["result"]["isError"] is False, done.text
        # Bob may see costs: his scrape has the refusal; alice (a reader) gets the server's metrics without usage.
        scraped = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {tokens['bob']}"}, timeout=30)
        samples = _samples(scraped.text)
        assert samples[("evorag_quota_rejections_total",
                        (("limit", "api_calls_per_minute"), ("principal", "alice")))] == 1
        reader_view = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {tokens['alice']}"}, timeout=30)
        assert reader_view.status_code == 200 and "evorag_quota_rejections" not in reader_view.text
        assert "evorag_http_requests_total" in reader_view.text
    finally:
        alice.close()
        bob.close()
    assert "Traceback" not in log.read_text(errors="replace")
