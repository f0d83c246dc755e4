"""Roles over MCP: each bearer token is a principal, each tool needs a role, stdio clients are operators, and
the approval token never reaches the server's environment nor a deployed tool in the sandbox.

The HTTP tests share one `evorag mcp --http` process and run in file order (approve, then call)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from evorag.tools.approvals import ApprovalStore, PolicyApprover
from mcp import ClientSession, types
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.memory import create_connected_server_and_client_session
from server_process import serving

from evorag.approval_token import DIGEST_ENV
from evorag.mcp_server import TOOL_OPERATIONS, build_server, tool_role
from evorag.mcp_server._auth import BearerAuthenticator
from evorag.principals import Principal, PrincipalStore, Role, sha256_hex
from evorag.service import Evorag

REPO = Path(__file__).resolve().parents[1]
CANDIDATES = REPO / "tests" / "candidates"
HUMAN_TOKEN = "human-approval-token-for-roles-0123456789"
LEGACY_TOKEN = "the-single-shared-mcp-token-0123456789"
# A tool that reports everything it can see of environments: its own, and every /proc/*/environ it can read.
PEEK = '''"""Report the environments this process can see."""

import os


def peek_environments(limit: int = 500) -> dict:
    """Return this process's environment and the environ of every process it can read in /proc."""
    seen = {"environ": dict(os.environ), "proc": {}}
    for entry in ["self", *os.listdir("/proc")][:limit]:
        if entry == "self" or entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    seen["proc"][entry] = handle.read().decode("latin-1")
            except OSError:
                seen["proc"][entry] = "unreadable"
    return seen
'''

needs_sandbox = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")


def _payload(result: types.CallToolResult) -> dict:
    assert not result.isError, result.content[0].text if result.content else result
    return result.structuredContent


def _error(result: types.CallToolResult) -> str:
    assert result.isError, result.structuredContent
    return result.content[0].text


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVORAG_") or k == "EVORAG_LLM_PROVIDER"}
    env.update(EVORAG_HOME=str(home), EVORAG_CONFIG=str(home / "no-config.toml"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO), **extra)
    return env


# The table, in memory


def test_every_core_tool_has_a_role_and_deployed_tools_need_an_operator():
    assert tool_role("perform_rag_query_with_metrics", generated=False) == Role.READER
    assert tool_role("list_pending_approvals", generated=False) == Role.READER
    assert tool_role("crawl_and_index_documentation", generated=False) == Role.OPERATOR
    assert tool_role("cancel_job", generated=False) == Role.OPERATOR
    assert tool_role("talk_to_team", generated=False) == Role.OPERATOR
    assert {tool_role(name, generated=False) for name in ("approve", "reject", "rollback")} == {Role.APPROVER}
    assert tool_role("word_count", generated=True) == Role.OPERATOR
    with pytest.raises(KeyError):  # a core tool without an entry is a bug, never a default
        tool_role("something_new", generated=False)


def test_a_tool_cannot_be_declared_without_an_operation_that_has_a_role():
    from evorag.mcp_server._registration import ToolGroup

    tools = ToolGroup()
    with pytest.raises(KeyError, match="not in evorag.principals.OPERATIONS"):
        tools.tool("do_anything")
    with pytest.raises(TypeError):
        tools.tool()  # the operation is required


@pytest.mark.anyio
async def test_in_memory_sessions_act_for_the_servers_principal(tmp_path):
    with Evorag(home=tmp_path / "home") as rag:
        server = build_server(rag)  # default: the local user with EVORAG_MCP_LOCAL_ROLE, i.e. an operator
        try:
            async with create_connected_server_and_client_session(server) as client:
                listed = {t.name for t in (await client.list_tools()).tools}
                # Listed: every core tool an operator may call, and none it may not.
                assert listed == {name for name in TOOL_OPERATIONS
                                  if tool_role(name, generated=False) <= Role.OPERATOR}
                assert "crawl_and_index_documentation" in listed and "rollback" not in listed
                assert _payload(await client.call_tool("list_pending_approvals", {})) == {"approvals": []}
                refused = _error(await client.call_tool("rollback", {"version_id": "abcd"}))
                assert refused.startswith("rollback needs the approver role; ") and "has the operator role" in refused
        finally:
            await server.aclose()
        reader = build_server(rag, principal=Principal("rita", Role.READER, via="mcp"))
        try:
            async with create_connected_server_and_client_session(reader) as client:
                refused = _error(await client.call_tool("crawl_and_index_documentation",
                                                        {"url": "https://example.com/"}))
                assert refused.startswith("crawl_and_index_documentation needs the operator role; rita has the "
                                          "reader role")
                assert "Unknown tool" in _error(await client.call_tool("no_such_tool", {}))
        finally:
            await reader.aclose()


def test_the_single_token_is_one_admin_until_the_first_user(tmp_path):
    store = PrincipalStore(tmp_path / "p.sqlite3")
    authenticate = BearerAuthenticator(store, LEGACY_TOKEN)
    assert authenticate(LEGACY_TOKEN) == Principal("admin", Role.ADMIN, via="mcp-http")
    assert authenticate("wrong") is None and authenticate(LEGACY_TOKEN + "x") is None
    token = store.add("rita", "reader")
    assert authenticate(LEGACY_TOKEN) is None  # retired, also in a running server
    assert authenticate(token).name == "rita"


# Over stdio: the client is an assistant's, and a model drives it


@pytest.mark.anyio
async def test_stdio_clients_are_operators_and_never_proof_of_a_person(tmp_path):
    home = tmp_path / "home"
    store = ApprovalStore(home / "approvals.sqlite3")
    medium = store.create(tool="t", risk="MEDIUM", summary="a proposed crawl")
    high = store.create(tool="t", risk="HIGH", summary="uses the network")

    async def approve(env: dict[str, str], approval_id: str) -> str:
        params = StdioServerParameters(command=sys.executable, args=["-m", "evorag.cli", "mcp"], cwd=str(REPO),
                                       env=env)
        with anyio.fail_after(90):
            async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
                await client.initialize()
                return _error(await client.call_tool("approve", {"approval_id": approval_id}))

    assert "approve needs the approver role" in await approve(_env(home), medium.id)
    # Even configured as an approver, a stdio client is not a person: HIGH risk needs the token.
    as_approver = _env(home, EVORAG_MCP_LOCAL_ROLE="approver")
    assert "only a human can approve it" in await approve(as_approver, high.id)
    assert store.get(medium.id).status == store.get(high.id).status == "pending"


# Over HTTP: one server, several principals


@pytest.fixture(scope="module")
def roles(tmp_path_factory):
    """A home with a reader, an operator and an approver, a LOW and a HIGH pending change, and
    `evorag mcp --http` serving it with the approval token (and the retired single token) in its environment."""
    if shutil.which("bwrap") is None:
        pytest.skip("needs bubblewrap")
    tmp = tmp_path_factory.mktemp("roles")
    home = tmp / "home"
    peek = tmp / "peek"
    peek.mkdir()
    (peek / "tool.py").write_text(PEEK)
    (peek / "test_tool.py").write_text("from tool import peek_environments\n\n\ndef test_peek():\n"
                                       "    assert 'environ' in peek_environments(1)\n")  # no deploy without tests
    with Evorag(home=home, resolve_dependencies=False, evolutions_per_hour=100) as rag:
        tokens = {name: rag.principals.add(name, role) for name, role in
                  (("rita", "reader"), ("otto", "operator"), ("ada", "approver"))}
        low = rag.add_tool(CANDIDATES / "good_word_count", approver=PolicyApprover(assume_yes=False))
        high = rag.add_tool(peek, approver=PolicyApprover(assume_yes=True))
    assert (low.status, low.risk, high.status, high.risk) == ("pending", "LOW", "pending", "HIGH"), high.reason
    env = _env(home, EVORAG_APPROVAL_TOKEN=HUMAN_TOKEN, EVORAG_MCP_TOKEN=LEGACY_TOKEN,
               EVORAG_RESOLVE_DEPENDENCIES="false")
    log = tmp / "server.log"
    with serving(env, log) as (url, process):
        yield {"url": url, "home": home, "tokens": tokens, "low": low.approval_id, "high": high.approval_id,
               "pid": process.pid}
    logged = log.read_text(errors="replace")
    assert HUMAN_TOKEN not in logged and not any(token in logged for token in tokens.values())


@contextlib.asynccontextmanager
async def _session(roles, name: str):
    headers = {"Authorization": f"Bearer {roles['tokens'][name]}"}
    async with (streamablehttp_client(roles["url"] + "/mcp", headers=headers) as (read, write, _),
                ClientSession(read, write) as client):
        await client.initialize()
        yield client


def test_the_server_process_never_held_the_approval_token(roles):
    # /proc/PID/environ is the environment the process was started with: `evorag mcp` restarted itself
    # without the token before serving, keeping only its digest.
    environ = Path(f"/proc/{roles['pid']}/environ").read_bytes()
    assert HUMAN_TOKEN.encode() not in environ
    assert f"{DIGEST_ENV}={sha256_hex(HUMAN_TOKEN)}".encode() in environ.split(b"\0")


def test_the_single_token_is_retired_once_users_exist(roles):
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    retired = httpx.post(roles["url"] + "/mcp", json=body, headers=headers | {"Authorization": f"Bearer {LEGACY_TOKEN}"})
    assert retired.status_code == 401 and LEGACY_TOKEN not in retired.text
    user = httpx.post(roles["url"] + "/mcp", json=body,
                      headers=headers | {"Authorization": f"Bearer {roles['tokens']['rita']}"})
    assert user.status_code not in (401, 403)


@pytest.mark.anyio
async def test_readers_look_and_operators_start_work_but_neither_decides(roles):
    async with _session(roles, "rita") as reader:
        # A reader's listing holds only what it may call; an operator's adds the tools that start work.
        listed = {tool.name for tool in (await reader.list_tools()).tools}
        assert {"get_available_sources", "list_pending_approvals"} <= listed
        assert listed == {name for name in TOOL_OPERATIONS if tool_role(name, generated=False) <= Role.READER}
        assert not {"crawl_and_index_documentation", "approve", "reject", "rollback"} & listed
        assert _payload(await reader.call_tool("get_available_sources", {})) == {"sources": []}
        pending = _payload(await reader.call_tool("list_pending_approvals", {}))["approvals"]
        assert {p["id"] for p in pending} == {roles["low"], roles["high"]}
        refused = _error(await reader.call_tool("crawl_and_index_documentation", {"url": "https://example.com/"}))
        assert refused.startswith("crawl_and_index_documentation needs the operator role; rita has the reader role")
        assert "approve needs the approver role; rita has the reader role" in _error(
            await reader.call_tool("approve", {"approval_id": roles["low"]}))
    async with _session(roles, "otto") as operator:
        listed = {tool.name for tool in (await operator.list_tools()).tools}
        assert "crawl_and_index_documentation" in listed and not {"approve", "reject", "rollback"} & listed
        assert "no crawl job" in _error(await operator.call_tool("cancel_job", {"job_id": "0123456789ab"}))
        for tool, arguments in (("approve", {"approval_id": roles["low"]}),
                                ("reject", {"approval_id": roles["low"]}),
                                ("rollback", {"version_id": "abcd"})):
            assert f"{tool} needs the approver role; otto has the operator role" in _error(
                await operator.call_tool(tool, arguments))
        assert "approve needs the approver role" in _error(
            await operator.call_tool("approve", {"approval_id": roles["high"], "human_token": HUMAN_TOKEN}))
    with Evorag(home=roles["home"]) as rag:
        assert {p.id for p in rag.pending_approvals()} == {roles["low"], roles["high"]}


@pytest.mark.anyio
async def test_an_approver_approves_and_high_risk_also_needs_the_token(roles):
    async with _session(roles, "ada") as approver:
        with anyio.fail_after(180):
            low = _payload(await approver.call_tool("approve", {"approval_id": roles["low"]}))
            assert low["status"] == "deployed" and low["tool"] == "word_count"
            for guess in (None, "wrong-token", "tökén"):
                arguments = {"approval_id": roles["high"]} | ({"human_token": guess} if guess else {})
                refused = _error(await approver.call_tool("approve", arguments))
                assert "only a human can approve it" in refused and HUMAN_TOKEN not in refused
            high = _payload(await approver.call_tool(
                "approve", {"approval_id": roles["high"], "human_token": HUMAN_TOKEN}))
    assert high["status"] == "deployed" and high["tool"] == "peek_environments"
    with Evorag(home=roles["home"]) as rag:
        approved = {e["approval_id"]: e for e in rag.evolution.audit.entries()
                    if e["event"] == "approved" and "run_id" not in e}
    assert approved[roles["low"]]["principal"] == {"name": "ada", "role": "approver", "via": "mcp-http",
                                                   "human": False}
    assert approved[roles["high"]]["proof"] == "approval token"


@needs_sandbox
@pytest.mark.anyio
async def test_deployed_tools_need_an_operator_and_cannot_see_the_token(roles):
    async with _session(roles, "rita") as reader:
        assert "word_count" not in {tool.name for tool in (await reader.list_tools()).tools}
        refused = _error(await reader.call_tool("word_count", {"text": "a b"}))
        assert refused.startswith("word_count needs the operator role; rita has the reader role")
    async with _session(roles, "otto") as operator:
        assert _payload(await operator.call_tool("word_count", {"text": "a b c"})) == {"result": 3}
        with anyio.fail_after(120):
            seen = _payload(await operator.call_tool("peek_environments", {}))["result"]
    assert seen["environ"] and seen["proc"].get("self")  # it did read environments ...
    text = json.dumps(seen)
    # ... and none of them holds the token, its digest, or anyone's bearer token.
    for secret in (HUMAN_TOKEN, sha256_hex(HUMAN_TOKEN), LEGACY_TOKEN, *roles["tokens"].values()):
        assert secret not in text
