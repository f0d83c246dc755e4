"""The MCP server through real clients of the official SDK: in memory, over stdio, over streamable HTTP,
and through AutoGen's McpWorkbench."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import httpx
import pytest
from evorag.tools.approvals import ApprovalStore
from evorag.tools.sandbox import BubblewrapSandbox, DockerSandbox
from mcp import ClientSession, types
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.server.fastmcp import Context, FastMCP
from mcp.shared.exceptions import McpError
from mcp.shared.memory import create_connected_server_and_client_session
from server_process import free_port, serving
from sitefixtures import SiteServer, send

from evorag.mcp_server import build_server
from evorag.mcp_server._approvals import McpApprover
from evorag.mcp_server._auth import OriginPolicy, is_loopback
from evorag.principals import Principal, Role

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = REPO / "tests" / "candidates"
MCP_TOKEN = "test-mcp-token-0123456789"
HUMAN_TOKEN = "human-approval-token-42"
# In-memory sessions carry no bearer token: the server acts for the principal it was built with.
APPROVER = Principal("ada", Role.APPROVER, via="mcp")
REPLAYED_ANSWER = (
    "Pass --allow-private or set EVORAG_ALLOW_PRIVATE=true to crawl localhost [1][2]. "
    "Loopback addresses are refused by default [2]."
)
CORE_TOOLS = {
    "perform_rag_query_with_metrics",
    "search_code_examples",
    "get_available_sources",
    "crawl_and_index_documentation",
    "get_job_status",
    "cancel_job",
    "evolve_rag_capability",
    "self_heal_system",
    "list_versions",
    "rollback",
    "get_metrics_report",
    "list_pending_approvals",
    "approve",
    "reject",
    "talk_to_team",
}
# What a stdio client (an operator: EVORAG_MCP_LOCAL_ROLE) is shown: the tools that decide what is deployed
# need an approver, so they are not listed to it.
APPROVER_TOOLS = {"approve", "reject", "rollback"}
OPERATOR_TOOLS = CORE_TOOLS - APPROVER_TOOLS


# CI lists the sandbox backends it provides (read at import: conftest.py clears EVORAG_* for each test). A
# backend listed there that does not work fails the tests that need a sandbox instead of skipping them.
REQUIRED_SANDBOXES = {
    name.strip() for name in os.environ.get("EVORAG_REQUIRE_SANDBOXES", "").split(",") if name.strip()
}


@pytest.fixture(scope="session")
def sandbox_ready() -> str:
    """The name of a working sandbox backend; fails when a required one does not work, skips when none does."""
    problems = {backend.name: backend.why_unavailable() for backend in (BubblewrapSandbox(), DockerSandbox())}
    broken = {name: problem for name, problem in problems.items() if problem and name in REQUIRED_SANDBOXES}
    if broken:
        pytest.fail(f"sandbox backends required by EVORAG_REQUIRE_SANDBOXES are unavailable: {broken}")
    working = [name for name, problem in problems.items() if not problem]
    if not working:
        pytest.skip(f"no sandbox backend works here: {problems}")
    return working[0]


needs_sandbox = pytest.mark.usefixtures("sandbox_ready")


def _payload(result: types.CallToolResult) -> dict:
    assert not result.isError, result.content[0].text if result.content else result
    return result.structuredContent


def _error(result: types.CallToolResult) -> str:
    assert result.isError, result.structuredContent
    return result.content[0].text


class Notifications:
    """A message handler that records server notifications and lets a test wait for one."""

    def __init__(self) -> None:
        self.tool_list_changes = 0
        self._changed = anyio.Event()

    async def __call__(self, message) -> None:
        if isinstance(message, types.ServerNotification) and isinstance(
            message.root, types.ToolListChangedNotification
        ):
            self.tool_list_changes += 1
            self._changed.set()

    async def wait_tool_list_change(self, timeout: float = 15.0) -> None:
        with anyio.fail_after(timeout):
            await self._changed.wait()
        self._changed = anyio.Event()


def _evorag_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVORAG_") or k == "EVORAG_LLM_PROVIDER"}
    env.update(
        EVORAG_HOME=str(home),
        EVORAG_CONFIG=str(home / "no-config.toml"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(REPO),
        **extra,
    )
    return env


# In memory: the server object with the SDK's client session, no transport.


@pytest.fixture
def service(evorag_home):
    from evorag.service import Evorag

    with Evorag(approval_token=HUMAN_TOKEN) as rag:
        yield rag


@pytest.fixture
async def server(service):
    server = build_server(service, principal=APPROVER)
    yield server
    await server.aclose()


@pytest.mark.anyio
async def test_every_tool_is_listed_with_a_schema_and_list_changes_are_advertised(server):
    async with create_connected_server_and_client_session(server) as client:
        capabilities = client.get_server_capabilities()
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert capabilities.tools.listChanged is True
    assert CORE_TOOLS <= set(listed)
    crawl = listed["crawl_and_index_documentation"].inputSchema
    assert crawl["required"] == ["url"]
    # Optional limits: the server's settings decide when a client leaves them out, so no default is announced.
    max_pages = crawl["properties"]["max_pages"]
    assert "default" not in max_pages or max_pages["default"] is None
    assert {"type": "integer", "minimum": 1, "maximum": 100_000} in max_pages["anyOf"]
    assert listed["search_code_examples"].inputSchema["properties"]["limit"]["maximum"] == 50
    assert listed["perform_rag_query_with_metrics"].outputSchema["required"] == [
        "answer",
        "citations",
        "sources_used",
        "model",
    ]
    assert all(tool.description for tool in listed.values())


@pytest.mark.anyio
async def test_bad_arguments_are_tool_errors_with_clear_messages(server):
    async with create_connected_server_and_client_session(server) as client:
        assert "limit: Input should be greater than or equal to 1" in _error(
            await client.call_tool("search_code_examples", {"query": "x", "limit": 0})
        )
        assert "query: Field required" in _error(await client.call_tool("perform_rag_query_with_metrics", {}))
        # A filter that cannot be a source name (NAME or NAME@VERSION) is refused before any index lookup.
        assert "invalid source name '../../etc'" in _error(
            await client.call_tool("search_code_examples", {"query": "x", "source_filter": "../../etc"})
        )
        assert "unknown source 'nothing-here'" in _error(
            await client.call_tool("search_code_examples", {"query": "x", "source_filter": "nothing-here"})
        )
        assert "invalid source name" in _error(
            await client.call_tool(
                "crawl_and_index_documentation", {"url": "https://example.com/", "source": "../../etc"}
            )
        )
        # A path on the server's own disk is never read for a remote caller (folders are CLI-only).
        assert "crawl takes http(s) URLs, not files" in _error(
            await client.call_tool("crawl_and_index_documentation", {"url": "file:///etc/passwd"})
        )
        assert "loopback" in _error(
            await client.call_tool("crawl_and_index_documentation", {"url": "http://127.0.0.1:9/"})
        )
        assert "no crawl job" in _error(await client.call_tool("get_job_status", {"job_id": "0123456789ab"}))
        assert "job_id: String should match pattern" in _error(
            await client.call_tool("cancel_job", {"job_id": "../../etc"})
        )
        assert "Unknown tool" in _error(await client.call_tool("no_such_tool", {}))
        # The server still serves after all of that.
        assert _payload(await client.call_tool("get_available_sources", {})) == {"sources": []}


@pytest.mark.anyio
async def test_metrics_report_has_history_and_trend(server):
    async with create_connected_server_and_client_session(server) as client:
        report = _payload(await client.call_tool("get_metrics_report", {"last": 5}))
    assert report["history"] == []
    assert report["trend"]["direction"] == "insufficient data"


def _slow_site() -> tuple[SiteServer, threading.Event, threading.Event]:
    """A site whose ``/slow/`` page answers once ``release`` is set; ``requested`` is set when it is asked for."""
    requested, release = threading.Event(), threading.Event()

    def slow_page(handler):
        requested.set()
        release.wait(60)
        send(handler, 200, b"<html><body><h1>Slow</h1><p>finally here</p></body></html>", "text/html")

    site = SiteServer(None)
    site.routes["/slow/"] = slow_page
    return site, requested, release


@pytest.mark.anyio
async def test_crawl_jobs_run_one_at_a_time_and_can_be_cancelled(tmp_path):
    from evorag.service import Evorag

    site, requested, release = _slow_site()
    with site, Evorag(home=tmp_path / "home", embedder="onnx", allow_private=True) as rag:
        server = build_server(rag)
        try:
            async with create_connected_server_and_client_session(server) as client:
                crawl = {"url": site.url("/slow/"), "wait_seconds": 0}
                first = _payload(
                    await client.call_tool("crawl_and_index_documentation", crawl | {"source": "a"})
                )
                with anyio.fail_after(60):
                    while not requested.is_set():
                        await anyio.sleep(0.1)
                second = _payload(
                    await client.call_tool("crawl_and_index_documentation", crawl | {"source": "b"})
                )
                assert (
                    _payload(await client.call_tool("get_job_status", {"job_id": first["job_id"]}))["status"]
                    == "running"
                )
                assert second["status"] == "queued"

                cancelled = _payload(await client.call_tool("cancel_job", {"job_id": second["job_id"]}))
                assert cancelled["status"] == "cancelled" and cancelled["started_at"] is None
                with anyio.fail_after(15):
                    stopped = _payload(await client.call_tool("cancel_job", {"job_id": first["job_id"]}))
                assert stopped["status"] == "cancelled" and "resume" in stopped["error"]
                assert "already cancelled" in _error(
                    await client.call_tool("cancel_job", {"job_id": first["job_id"]})
                )
        finally:
            release.set()
            await server.aclose()


# Approval over MCP: elicitation when the client can, pending otherwise.


def _approval_test_server(store: ApprovalStore, principal: Principal = APPROVER) -> FastMCP:
    app = FastMCP("approval-test")

    @app.tool()
    async def decide(approval_id: str, ctx: Context) -> dict[str, object]:
        decision = await McpApprover(ctx, store.apply, principal=principal, timeout=10)(store.get(approval_id))
        return {
            "approved": decision.approved,
            "by": decision.by,
            "reason": decision.reason,
            "status": store.get(approval_id).status,
        }

    return app


def _answers(*, approve: bool, token: str | None = None, action: str = "accept"):
    asked: list[types.ElicitRequestParams] = []

    async def callback(context, params):
        asked.append(params)
        if action != "accept":
            return types.ElicitResult(action=action)
        content = {"approve": approve} | ({"human_token": token} if token is not None else {})
        return types.ElicitResult(action="accept", content=content)

    return callback, asked


@pytest.mark.anyio
async def test_elicitation_approves_low_risk_and_shows_the_change(tmp_path):
    store = ApprovalStore(tmp_path / "approvals.sqlite3", human_token=HUMAN_TOKEN)
    request = store.create(
        tool="word_count",
        risk="LOW",
        summary="Deploy tool 'word_count'",
        diff="+def word_count(text: str) -> int:",
        risk_reasons=[],
    )
    callback, asked = _answers(approve=True)
    async with create_connected_server_and_client_session(
        _approval_test_server(store), elicitation_callback=callback
    ) as client:
        result = _payload(await client.call_tool("decide", {"approval_id": request.id}))
    assert result["approved"] is True and result["by"] == "mcp-elicitation"
    assert "word_count" in asked[0].message and "+def word_count" in asked[0].message
    assert "human_token" not in asked[0].requestedSchema["properties"]


@pytest.mark.anyio
async def test_high_risk_through_elicitation_needs_the_human_token(tmp_path):
    store = ApprovalStore(tmp_path / "approvals.sqlite3", human_token=HUMAN_TOKEN)
    server = _approval_test_server(store)
    first = store.create(tool="page_title", risk="HIGH", summary="uses the network", risk_reasons=["network"])
    callback, asked = _answers(approve=True, token="a guess")
    async with create_connected_server_and_client_session(server, elicitation_callback=callback) as client:
        result = _payload(await client.call_tool("decide", {"approval_id": first.id}))
    assert result["approved"] is None and result["status"] == "pending"
    assert "human_token" in asked[0].requestedSchema["properties"]
    assert "HIGH risk" in asked[0].message

    callback, _ = _answers(approve=True, token=HUMAN_TOKEN)
    async with create_connected_server_and_client_session(server, elicitation_callback=callback) as client:
        result = _payload(await client.call_tool("decide", {"approval_id": first.id}))
    assert result["approved"] is True and result["status"] == "approved"


@pytest.mark.anyio
async def test_elicitation_answers_for_the_caller_whose_role_must_allow_the_risk(tmp_path):
    store = ApprovalStore(tmp_path / "approvals.sqlite3", human_token=HUMAN_TOKEN)
    medium = store.create(tool="word_count", risk="MEDIUM", summary="reads files")
    callback, asked = _answers(approve=True)
    operator = _approval_test_server(store, Principal("otto", Role.OPERATOR, via="mcp-http"))
    async with create_connected_server_and_client_session(operator, elicitation_callback=callback) as client:
        result = _payload(await client.call_tool("decide", {"approval_id": medium.id}))
    assert result["approved"] is None and result["status"] == "pending" and not asked  # not even asked
    assert "MEDIUM risk needs the approver role" in result["reason"]
    low = store.create(tool="word_count", risk="LOW", summary="counts")
    async with create_connected_server_and_client_session(operator, elicitation_callback=callback) as client:
        assert _payload(await client.call_tool("decide", {"approval_id": low.id}))["status"] == "approved"
    assert store.get(low.id).decided_by == "otto"
    async with create_connected_server_and_client_session(
        _approval_test_server(store), elicitation_callback=callback
    ) as client:
        assert _payload(await client.call_tool("decide", {"approval_id": medium.id}))["status"] == "approved"
    assert (store.get(medium.id).decided_by, store.get(medium.id).decided_role) == ("ada", "approver")


@pytest.mark.anyio
async def test_declined_dismissed_and_unsupported_elicitation(tmp_path):
    store = ApprovalStore(tmp_path / "approvals.sqlite3", human_token=HUMAN_TOKEN)
    server = _approval_test_server(store)
    outcomes = []
    for callback in (
        _answers(approve=False)[0],
        _answers(approve=True, action="decline")[0],
        _answers(approve=True, action="cancel")[0],
        None,
    ):
        request = store.create(tool="word_count", risk="MEDIUM", summary="reads files")
        kwargs = {"elicitation_callback": callback} if callback else {}
        async with create_connected_server_and_client_session(server, **kwargs) as client:
            outcomes.append(_payload(await client.call_tool("decide", {"approval_id": request.id})))
    assert [o["approved"] for o in outcomes] == [False, False, None, None]
    assert "cannot ask a person" in outcomes[3]["reason"] and "approve" in outcomes[3]["reason"]


# Deployed tools: registered as MCP tools, added and removed live, with list_changed notifications.


def _policy(*, assume_yes: bool):
    from evorag.tools.approvals import PolicyApprover

    return PolicyApprover(assume_yes=assume_yes)


@needs_sandbox
@pytest.mark.anyio
async def test_pending_approval_deploys_over_mcp_and_rollback_removes_the_tool(service, server):
    outcome = await service.aadd_tool(
        CANDIDATES / "good_word_count", request="count words", approver=_policy(assume_yes=False)
    )
    assert outcome.status == "pending"
    notifications = Notifications()
    async with create_connected_server_and_client_session(server, message_handler=notifications) as client:
        before = {t.name for t in (await client.list_tools()).tools}
        assert "word_count" not in before
        pending = _payload(await client.call_tool("list_pending_approvals", {}))["approvals"]
        assert [p["id"] for p in pending] == [outcome.approval_id]
        assert pending[0]["risk"] == "LOW" and "payload" not in pending[0]

        decision = _payload(await client.call_tool("approve", {"approval_id": outcome.approval_id}))
        assert decision["status"] == "deployed" and decision["tool"] == "word_count"
        await notifications.wait_tool_list_change()
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["word_count"].inputSchema["required"] == ["text"]
        counted = _payload(await client.call_tool("word_count", {"text": "Hello, world! Don't panic."}))
        assert counted == {"result": 4}
        assert "invalid arguments for word_count" in _error(await client.call_tool("word_count", {"text": 3}))

        versions = _payload(await client.call_tool("list_versions", {}))["versions"]
        assert versions[-1]["tools"] == ["word_count"]
        rolled = _payload(await client.call_tool("rollback", {"version_id": versions[-2]["id"]}))
        assert rolled["removed"] == ["word_count"]
        await notifications.wait_tool_list_change()
        assert "word_count" not in {t.name for t in (await client.list_tools()).tools}
        assert "Unknown tool" in _error(await client.call_tool("word_count", {"text": "a b"}))


@needs_sandbox
@pytest.mark.anyio
async def test_model_cannot_approve_high_risk_without_the_human_token(service, server):
    outcome = await service.aadd_tool(
        CANDIDATES / "reads_secret_env", request="key check", approver=_policy(assume_yes=True)
    )
    assert outcome.status == "pending" and outcome.risk == "HIGH"
    async with create_connected_server_and_client_session(server) as client:
        refused = _error(await client.call_tool("approve", {"approval_id": outcome.approval_id}))
        assert "only a human can approve" in refused
        assert "only a human" in _error(
            await client.call_tool(
                "approve", {"approval_id": outcome.approval_id, "human_token": "wrong-token"}
            )
        )
        assert "only a human" in _error(
            await client.call_tool("approve", {"approval_id": outcome.approval_id, "human_token": "tökén"})
        )
        assert HUMAN_TOKEN not in refused
        decision = _payload(
            await client.call_tool(
                "approve", {"approval_id": outcome.approval_id, "human_token": HUMAN_TOKEN}
            )
        )
        assert decision["status"] == "deployed"
        assert "has_api_key" in {t.name for t in (await client.list_tools()).tools}


@needs_sandbox
@pytest.mark.anyio
async def test_reject_over_mcp(service, server):
    outcome = await service.aadd_tool(
        CANDIDATES / "good_word_count", request="count words", approver=_policy(assume_yes=False)
    )
    async with create_connected_server_and_client_session(server) as client:
        decision = _payload(
            await client.call_tool("reject", {"approval_id": outcome.approval_id, "reason": "not now"})
        )
        assert decision["status"] == "rejected"
        assert "already rejected" in _error(
            await client.call_tool("approve", {"approval_id": outcome.approval_id})
        )
        assert _payload(await client.call_tool("list_pending_approvals", {})) == {"approvals": []}


# Evolution through MCP: the agent team with a replayed model and the real gates.

PLAN = json.dumps(
    {"tool_name": "slugify_title", "description": "Turn a title into a URL slug.", "requirements": []}
)
GENERATED = """```python tool.py
import re


def slugify_title(title: str, separator: str = "-") -> str:
    \"\"\"Turn a page title into a lowercase URL slug.\"\"\"
    return separator.join(re.findall(r"[a-z0-9]+", title.lower()))
```

```python test_tool.py
from tool import slugify_title


def test_slug():
    assert slugify_title("Hello, World!") == "hello-world"
```
"""


@pytest.fixture
def evolving_service(tmp_path):
    from evorag.service import Evorag

    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([PLAN, GENERATED]))
    with Evorag(
        home=tmp_path / "home",
        llm_provider="replay",
        replay_file=replies,
        evolutions_per_hour=100,
        resolve_dependencies=False,
    ) as rag:
        yield rag


@needs_sandbox
@pytest.mark.anyio
async def test_evolution_asks_the_person_through_elicitation_and_deploys(evolving_service):
    server = build_server(evolving_service, principal=Principal("otto", Role.OPERATOR, via="mcp"))
    notifications = Notifications()
    callback, asked = _answers(approve=True)
    progress: list[str | None] = []

    async def on_progress(value, total, message):
        progress.append(message)

    try:
        async with create_connected_server_and_client_session(
            server, message_handler=notifications, elicitation_callback=callback
        ) as client:
            assert "slugify_title" not in {t.name for t in (await client.list_tools()).tools}
            with anyio.fail_after(180):
                outcome = _payload(
                    await client.call_tool(
                        "evolve_rag_capability",
                        {"feature_request": "a tool that turns page titles into URL slugs"},
                        progress_callback=on_progress,
                    )
                )
            assert outcome["status"] == "deployed", outcome["reason"]
            assert outcome["tool"] == "slugify_title" and outcome["version_id"]
            assert "slugify_title" in asked[0].message and "LOW" in asked[0].message
            assert any(m and m.startswith("tool_generator") for m in progress)
            await notifications.wait_tool_list_change()
            assert _payload(await client.call_tool("slugify_title", {"title": "Crawl & Index"})) == {
                "result": "crawl-index"
            }
    finally:
        await server.aclose()


@needs_sandbox
@pytest.mark.anyio
async def test_evolution_without_elicitation_stays_pending_until_approved(evolving_service):
    server = build_server(evolving_service, principal=APPROVER)
    try:
        async with create_connected_server_and_client_session(server) as client:
            with anyio.fail_after(180):
                outcome = _payload(
                    await client.call_tool(
                        "evolve_rag_capability",
                        {"feature_request": "a tool that turns page titles into URL slugs"},
                    )
                )
            assert outcome["status"] == "pending" and outcome["approval_id"]
            assert "cannot ask a person" in outcome["reason"]
            decision = _payload(await client.call_tool("approve", {"approval_id": outcome["approval_id"]}))
            assert decision["status"] == "deployed"
            assert "slugify_title" in {t.name for t in (await client.list_tools()).tools}
    finally:
        await server.aclose()


@pytest.mark.anyio
async def test_self_heal_reports_healthy_checks(server):
    async with create_connected_server_and_client_session(server) as client:
        with anyio.fail_after(120):
            report = _payload(await client.call_tool("self_heal_system", {"issue_description": "is it ok?"}))
    assert report["healed"] is True
    assert {check["name"] for check in report["before"]} >= {"catalog_database", "plugin_repository"}


# The group chat over MCP: talk_to_team runs one turn of the conversation team.


def _chat_service(tmp_path, script: list[str]):
    from evorag.agents.model_clients import replay_client

    from evorag.service import Evorag

    return Evorag(home=tmp_path / "home", model_client=replay_client(script), evolutions_per_hour=100,
                  resolve_dependencies=False)


@pytest.mark.anyio
async def test_talk_to_team_waits_for_the_human_without_elicitation_and_continues(tmp_path):
    script = ["orchestrator", "Which tool do you want?", "human", "code_debugger", "A slugifier, then. TERMINATE"]
    with _chat_service(tmp_path, script) as rag:
        server = build_server(rag, principal=Principal("otto", Role.OPERATOR, via="mcp"))
        progress: list[str | None] = []

        async def on_progress(value, total, message):
            progress.append(message)

        try:
            async with create_connected_server_and_client_session(server) as client:
                with anyio.fail_after(120):
                    first = _payload(await client.call_tool("talk_to_team", {"message": "I need a tool"},
                                                            progress_callback=on_progress))
                    assert first["waiting_for_human"] is True and first["question"] == "Which tool do you want?"
                    assert first["messages"][1] == {"source": "orchestrator", "content": "Which tool do you want?"}
                    assert "orchestrator: Which tool do you want?" in progress
                    second = _payload(await client.call_tool("talk_to_team", {
                        "message": "one that slugifies titles", "conversation_id": first["conversation_id"]}))
                assert second["conversation_id"] == first["conversation_id"]
                assert second["waiting_for_human"] is False and second["outcomes"] == []
                assert second["messages"][-1] == {"source": "code_debugger", "content": "A slugifier, then. TERMINATE"}
                assert "no conversation" in _error(await client.call_tool(
                    "talk_to_team", {"message": "hi", "conversation_id": "0" * 32}))
                assert "conversation_id: String should match pattern" in _error(await client.call_tool(
                    "talk_to_team", {"message": "hi", "conversation_id": "../x"}))
        finally:
            await server.aclose()
        # Another principal cannot continue it (the in-memory session acts for the server's principal).
        other = build_server(rag, principal=Principal("ada", Role.APPROVER, via="mcp"))
        try:
            async with create_connected_server_and_client_session(other) as client:
                assert "no conversation" in _error(await client.call_tool(
                    "talk_to_team", {"message": "hi", "conversation_id": first["conversation_id"]}))
        finally:
            await other.aclose()
        reader = build_server(rag, principal=Principal("rita", Role.READER, via="mcp"))
        try:
            async with create_connected_server_and_client_session(reader) as client:
                assert _error(await client.call_tool("talk_to_team", {"message": "hi"})).startswith(
                    "talk_to_team needs the operator role; rita has the reader role")
        finally:
            await reader.aclose()


@needs_sandbox
@pytest.mark.anyio
async def test_talk_to_team_asks_the_human_and_the_approval_through_elicitation_and_deploys(tmp_path):
    script = ["orchestrator", GENERATED, "deployer", "human", "orchestrator", "Deployed as you wished. TERMINATE"]
    asked: list[types.ElicitRequestParams] = []

    async def person(context, params):
        asked.append(params)
        if "approve" in params.requestedSchema["properties"]:
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action="accept", content={"answer": "Thanks, that is all."})

    with _chat_service(tmp_path, script) as rag:
        server = build_server(rag, principal=Principal("otto", Role.OPERATOR, via="mcp"))
        notifications = Notifications()
        try:
            async with create_connected_server_and_client_session(
                server, message_handler=notifications, elicitation_callback=person
            ) as client:
                with anyio.fail_after(180):
                    turn = _payload(await client.call_tool("talk_to_team", {"message": "a slug tool, please"}))
                [outcome] = turn["outcomes"]
                assert outcome["status"] == "deployed", outcome["reason"]
                assert turn["waiting_for_human"] is False
                assert {"source": "human", "content": "Thanks, that is all."} in turn["messages"]
                assert "slugify_title" in asked[0].message and "LOW" in asked[0].message  # the approval first
                assert asked[1].message.startswith("The agent team asks you:")
                await notifications.wait_tool_list_change()
                assert _payload(await client.call_tool("slugify_title", {"title": "Crawl & Index"})) == {
                    "result": "crawl-index"}
        finally:
            await server.aclose()


def test_the_private_fastmcp_parts_this_server_relies_on_are_still_there(tmp_path):
    """EvoragMCP._lowlevel is its one reach into FastMCP's private parts: if the SDK renames them, this fails
    (rather than the server quietly advertising no tools.listChanged)."""
    from mcp.server.lowlevel import Server

    from evorag.service import Evorag

    with Evorag(home=tmp_path / "home") as rag:
        server = build_server(rag)
        lowlevel = server._lowlevel()
        assert isinstance(lowlevel, Server)
        assert lowlevel.create_initialization_options().capabilities.tools.listChanged is True


# Over stdio: `evorag mcp` as a subprocess, as a desktop client starts it.


@pytest.mark.anyio
async def test_stdio_server_lists_tools_and_answers(tmp_path):
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "evorag.cli", "mcp"],
        cwd=str(REPO),
        env=_evorag_env(tmp_path / "home"),
    )
    with anyio.fail_after(60):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            names = {tool.name for tool in (await client.list_tools()).tools}
            sources = _payload(await client.call_tool("get_available_sources", {}))
            bad = await client.call_tool("get_metrics_report", {"last": -1})
    assert OPERATOR_TOOLS <= names and not APPROVER_TOOLS & names
    assert sources == {"sources": []}
    assert bad.isError


@pytest.mark.anyio
async def test_stdio_talk_to_team_leaves_the_question_pending_for_the_next_call(tmp_path):
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["orchestrator", "Which tool do you want?", "human"]))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "evorag.cli", "mcp"],
        cwd=str(REPO),
        env=_evorag_env(tmp_path / "home", EVORAG_LLM_PROVIDER="replay", EVORAG_REPLAY_FILE=str(replies)),
    )
    with anyio.fail_after(120):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            first = _payload(await client.call_tool("talk_to_team", {"message": "I need a tool"}))
            second = _payload(await client.call_tool(
                "talk_to_team", {"message": "a word counter", "conversation_id": first["conversation_id"]}))
    assert first["waiting_for_human"] and first["question"] == "Which tool do you want?"
    assert second["conversation_id"] == first["conversation_id"]
    assert second["messages"][0] == {"source": "user", "content": "a word counter"}
    stored = json.loads((tmp_path / "home" / "conversations" / f"{first['conversation_id']}.json").read_text())
    assert stored["turns"] == 2 and stored["owner"]


@pytest.mark.anyio
async def test_autogen_mcp_workbench_uses_the_server(tmp_path):
    from autogen_ext.tools.mcp import McpWorkbench, StdioServerParams

    params = StdioServerParams(
        command=sys.executable,
        args=["-m", "evorag.cli", "mcp"],
        cwd=str(REPO),
        env=_evorag_env(tmp_path / "home"),
        read_timeout_seconds=60,
    )
    with anyio.fail_after(90):
        async with McpWorkbench(server_params=params) as workbench:
            tools = {tool["name"]: tool for tool in await workbench.list_tools()}
            result = await workbench.call_tool("get_available_sources", {})
            bad = await workbench.call_tool("search_code_examples", {"query": "x", "limit": 500})
    assert OPERATOR_TOOLS <= set(tools)
    assert tools["search_code_examples"]["parameters"]["properties"]["limit"]["maximum"] == 50
    assert not result.is_error and json.loads(result.result[0].content) == {"sources": []}
    assert bad.is_error and "limit" in bad.result[0].content


# Over streamable HTTP: `evorag mcp --http` in a subprocess, shared by the tests below.


@contextlib.contextmanager
def _http_process(home: Path, port: int, env: dict[str, str]):
    """``evorag mcp --http`` on ``port`` until healthy; stopped (if still running) on exit."""
    log = home / f"server-{port}.log"
    with serving(env, log, port=port) as (_, process):
        yield process, log


@pytest.fixture(scope="module")
def demo_site():
    from evorag.demo import serve_demo_site

    with serve_demo_site(0) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    """``evorag mcp --http`` with a token, allowed private addresses and the human approval token."""
    home = tmp_path_factory.mktemp("mcp-http-home")
    port = free_port()
    replies = home / "replies.json"
    replies.write_text(json.dumps([REPLAYED_ANSWER] * 5))
    env = _evorag_env(
        home,
        EVORAG_MCP_TOKEN=MCP_TOKEN,
        EVORAG_ALLOW_PRIVATE="true",
        EVORAG_APPROVAL_TOKEN=HUMAN_TOKEN,
        EVORAG_RESOLVE_DEPENDENCIES="false",
        EVORAG_LLM_PROVIDER="replay",
        EVORAG_REPLAY_FILE=str(replies),
    )
    with _http_process(home, port, env) as (_, log):
        yield {"url": f"http://127.0.0.1:{port}", "home": home, "env": env}
    logged = log.read_text(errors="replace")
    assert MCP_TOKEN not in logged and HUMAN_TOKEN not in logged


@contextlib.asynccontextmanager
async def _mcp_session(http_server, notifications=None):
    headers = {"Authorization": f"Bearer {MCP_TOKEN}"}
    async with (
        streamablehttp_client(http_server["url"] + "/mcp", headers=headers) as (read, write, _),
        ClientSession(read, write, message_handler=notifications) as client,
    ):
        await client.initialize()
        yield client


async def _finish(client: ClientSession, job: dict) -> dict:
    while job["status"] not in ("done", "failed", "cancelled"):
        await anyio.sleep(0.3)
        job = _payload(await client.call_tool("get_job_status", {"job_id": job["job_id"]}))
    return job


async def _ensure_demo_indexed(client: ClientSession, demo_site: str) -> None:
    sources = _payload(await client.call_tool("get_available_sources", {}))["sources"]
    if not any(s["name"] == "demo" for s in sources):
        job = _payload(
            await client.call_tool(
                "crawl_and_index_documentation", {"url": demo_site + "index.html", "source": "demo"}
            )
        )
        assert (await _finish(client, job))["status"] == "done"


def test_http_needs_the_bearer_token_and_an_allowed_origin(http_server):
    url = http_server["url"]
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    assert httpx.get(url + "/livez").json() == {"status": "ok"}
    health = httpx.get(url + "/healthz", timeout=30).json()  # open too, and checks the parts
    assert health["status"] == "ok" and [c["name"] for c in health["checks"]] == ["catalog", "store", "model"]
    missing = httpx.post(url + "/mcp", json=body, headers=headers)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert MCP_TOKEN not in missing.text
    wrong = httpx.post(url + "/mcp", json=body, headers=headers | {"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    authorized = headers | {"Authorization": f"Bearer {MCP_TOKEN}"}
    evil = httpx.post(url + "/mcp", json=body, headers=authorized | {"Origin": "http://evil.example"})
    assert evil.status_code == 403
    tricky = httpx.post(
        url + "/mcp", json=body, headers=authorized | {"Origin": "http://localhost:80.evil.example"}
    )
    assert tricky.status_code == 403
    local = httpx.post(url + "/mcp", json=body, headers=authorized | {"Origin": "http://localhost:5173"})
    assert local.status_code not in (401, 403)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--http"], "EVORAG_MCP_TOKEN"),
        (["--http", "--insecure-no-auth", "--host", "0.0.0.0"], "only a loopback address"),
    ],
)
def test_http_server_refuses_to_start_without_a_token(tmp_path, args, message):
    port = str(free_port())
    result = subprocess.run(
        [sys.executable, "-m", "evorag.cli", "mcp", *args, "--port", port],
        cwd=REPO,
        check=False,
        env=_evorag_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.anyio
async def test_http_crawl_runs_as_a_job_with_progress(http_server, demo_site):
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value, total, message):
        progress.append((value, total, message))

    with anyio.fail_after(240):
        async with _mcp_session(http_server) as client:
            assert CORE_TOOLS <= {tool.name for tool in (await client.list_tools()).tools}
            started = _payload(
                await client.call_tool(
                    "crawl_and_index_documentation",
                    {"url": demo_site + "index.html", "source": "demo", "max_pages": 50, "wait_seconds": 60},
                    progress_callback=on_progress,
                )
            )
            job = await _finish(client, started)
            assert job["status"] == "done", job["error"]
            assert job["report"]["pages_indexed"] >= 5 and job["report"]["pages_failed"] == 0
            # The job's progress has a total; once done it is the pages the crawl went through.
            counted = ("pages_indexed", "pages_unchanged", "pages_failed", "pages_removed")
            pages = sum(job["report"][key] for key in counted)
            assert job["progress"]["discovered"] == job["progress"]["done"] == pages
            assert progress, "no progress notification arrived"
            values = [value for value, _, _ in progress]
            assert values == sorted(values)
            # The total is the pages found so far: never below the pages done, never above max_pages,
            # and the pages the crawl went through once it is done.
            assert all(total is None or value <= total <= 50 for value, total, _ in progress)
            assert progress[-1][:2] == (pages, pages)

            # A re-crawl returns at once and finishes in the background, with nothing to re-embed.
            again = _payload(
                await client.call_tool(
                    "crawl_and_index_documentation",
                    {"url": demo_site + "index.html", "source": "demo", "max_pages": 50, "wait_seconds": 0},
                )
            )
            assert again["status"] in ("queued", "running")
            again = await _finish(client, again)
            assert again["status"] == "done" and again["report"]["pages_unchanged"] >= 5
            assert again["report"]["pages_indexed"] == 0
            assert "already done" in _error(await client.call_tool("cancel_job", {"job_id": again["job_id"]}))

            sources = _payload(await client.call_tool("get_available_sources", {}))["sources"]
            assert [s["name"] for s in sources] == ["demo"] and sources[0]["pages"] >= 5


@pytest.mark.anyio
async def test_http_search_and_query_with_metrics(http_server, demo_site):
    question = "How do I crawl documentation on localhost?"
    with anyio.fail_after(240):
        async with _mcp_session(http_server) as client:
            await _ensure_demo_indexed(client, demo_site)
            code = _payload(
                await client.call_tool(
                    "search_code_examples", {"query": "search the index from Python", "limit": 3}
                )
            )
            assert code["results"] and all(r["kind"] == "code" for r in code["results"])

            answer = _payload(
                await client.call_tool(
                    "perform_rag_query_with_metrics", {"query": question, "source_filter": "demo"}
                )
            )
            assert answer["citations"], answer
            assert answer["fallback"] is False and "--allow-private" in answer["answer"]
            assert all(c["url"].startswith(demo_site) for c in answer["citations"])
            assert 0 <= answer["metrics"]["overall"] <= 1 and answer["metrics"]["grounding"] is not None
            unscored = _payload(
                await client.call_tool(
                    "perform_rag_query_with_metrics", {"query": question, "enable_evaluation": False}
                )
            )
            assert unscored["metrics"] is None
            report = _payload(await client.call_tool("get_metrics_report", {"last": 5}))
            assert [row["query"] for row in report["history"]] == [question]


@pytest.mark.anyio
async def test_http_sources_and_resources_describe_the_index(http_server, demo_site):
    with anyio.fail_after(240):
        async with _mcp_session(http_server) as client:
            await _ensure_demo_indexed(client, demo_site)
            sources = _payload(await client.call_tool("get_available_sources", {}))["sources"]
            listed = json.loads((await client.read_resource("docs://sources")).contents[0].text)
            pages = json.loads((await client.read_resource("docs://demo/pages")).contents[0].text)
            templates = (await client.list_resource_templates()).resourceTemplates
            with pytest.raises(McpError, match="invalid source name"):
                await client.read_resource("docs://../pages")
            with pytest.raises(McpError, match="unknown source"):
                await client.read_resource("docs://nope/pages")
    demo = next(s for s in sources if s["name"] == "demo")
    assert demo["pages"] >= 5 and demo["chunks"] > demo["pages"] and demo["last_crawl_at"] > 0
    assert listed == sources
    assert len(pages["pages"]) == demo["pages"] and all(url.startswith(demo_site) for url in pages["pages"])
    assert [t.uriTemplate for t in templates] == ["docs://{source}/pages"]


@needs_sandbox
@pytest.mark.anyio
async def test_http_clients_see_tools_deployed_and_rolled_back_elsewhere(http_server):
    """A deploy made by another process (here: this test, like the CLI or UI would) reaches connected
    HTTP clients as notifications/tools/list_changed; a rollback over MCP removes the tool again."""
    from evorag.service import Evorag

    notifications = Notifications()
    with anyio.fail_after(180):
        async with _mcp_session(http_server, notifications) as client:
            assert "word_count" not in {t.name for t in (await client.list_tools()).tools}
            with pytest.MonkeyPatch.context() as patch:
                for key, value in http_server["env"].items():
                    patch.setenv(key, value)
                with Evorag() as other_process:
                    outcome = await other_process.aadd_tool(
                        CANDIDATES / "good_word_count", request="count", approver=_policy(assume_yes=True)
                    )
            assert outcome.status == "deployed", outcome.reason
            await notifications.wait_tool_list_change(timeout=30)
            assert "word_count" in {t.name for t in (await client.list_tools()).tools}
            assert _payload(
                await client.call_tool("word_count", {"text": "one two two", "mode": "unique"})
            ) == {"result": 2}

            versions = _payload(await client.call_tool("list_versions", {}))["versions"]
            rolled = _payload(await client.call_tool("rollback", {"version_id": versions[0]["id"]}))
            assert rolled["removed"] == ["word_count"]
            await notifications.wait_tool_list_change(timeout=30)
            assert "word_count" not in {t.name for t in (await client.list_tools()).tools}


# The guard's pieces on their own.


@pytest.mark.parametrize(
    "origin, allowed",
    [
        ("http://localhost:3000", True),
        ("http://127.0.0.1:8848", True),
        ("HTTP://LOCALHOST:1", True),
        ("http://localhost", False),
        ("https://localhost:3000", False),
        ("http://evil.example", False),
        ("http://localhost:3000.evil.example", False),
        ("http://user@localhost:3000", False),
        ("null", False),
        ("http://127.0.0.1.evil.example:80", False),
    ],
)
def test_origin_policy(origin, allowed):
    assert OriginPolicy(["http://127.0.0.1:*", "http://localhost:*"]).allows(origin) is allowed


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.4", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


# Crawl jobs across a server crash: they are requests in the queue under EVORAG_HOME, whose ids stay valid and
# whose runs are leased: a crawl whose server was killed runs again once its lease expires.


@pytest.mark.anyio
async def test_a_crawl_of_a_killed_server_resumes_in_the_next_one_once_its_lease_expires(tmp_path, demo_site):
    site, requested, release = _slow_site()
    home = tmp_path / "home"
    home.mkdir()
    env = _evorag_env(home, EVORAG_MCP_TOKEN=MCP_TOKEN, EVORAG_ALLOW_PRIVATE="true", EVORAG_EMBEDDER="onnx",
                      EVORAG_QUEUE_LEASE_SECONDS="3")
    with site:
        port = free_port()
        server = {"url": f"http://127.0.0.1:{port}"}
        with _http_process(home, port, env) as (process, _):
            async with _mcp_session(server) as client:
                done = await _finish(client, _payload(await client.call_tool(
                    "crawl_and_index_documentation", {"url": demo_site + "index.html", "source": "demo"})))
                assert done["status"] == "done"
                running = _payload(await client.call_tool(
                    "crawl_and_index_documentation", {"url": site.url("/slow/"), "source": "slow", "wait_seconds": 0}))
                with anyio.fail_after(60):
                    while not requested.is_set():
                        await anyio.sleep(0.1)
            process.kill()  # SIGKILL mid-crawl: no shutdown code runs
            process.wait(timeout=10)
        release.set()

        port = free_port()
        server = {"url": f"http://127.0.0.1:{port}"}
        with _http_process(home, port, env):
            async with _mcp_session(server) as client:
                before = _payload(await client.call_tool("get_job_status", {"job_id": done["job_id"]}))
                assert before["status"] == "done" and before["report"] == done["report"]
                with anyio.fail_after(120):
                    resumed = await _finish(client, running)
                assert resumed["status"] == "done" and resumed["attempts"] == 2, resumed
                assert "lease" in resumed["note"] and resumed["url"] == site.url("/slow/")
                assert resumed["source"] == "slow" and resumed["report"]["pages_indexed"] == 1
                assert "already done" in _error(
                    await client.call_tool("cancel_job", {"job_id": running["job_id"]}))
                unknown = _error(await client.call_tool("get_job_status", {"job_id": "feedfacecafe"}))
                assert "no crawl job" in unknown
                sources = {s["name"] for s in _payload(await client.call_tool("get_available_sources", {}))["sources"]}
                assert {"demo", "slow"} <= sources
