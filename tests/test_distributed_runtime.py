"""The teams on AutoGen's gRPC runtime: a real `evorag agents-host` in another process, real gates, replayed model.

Every message between the agents of a team crosses into the host process and back; in the last tests one
agent of the conversation team lives in a third process (`evorag agents-worker`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from types import SimpleNamespace

import grpc
import pytest
from autogen_agentchat.agents import BaseChatAgent
from autogen_agentchat.base import Response
from autogen_agentchat.messages import TextMessage
from autogen_agentchat.teams import DiGraphBuilder, GraphFlow
from autogen_ext.runtimes.grpc.protos import agent_worker_pb2, agent_worker_pb2_grpc
from evorag.agents.model_clients import replay_client
from evorag.teams._distributed import run_on, team_runtime
from evorag.tools.approvals import PolicyApprover
from server_process import free_port
from test_teams import GOOD, PLAN

from evorag.cli import main
from evorag.errors import ConfigError, ExternalError
from evorag.service import Evorag

REQUEST = "a tool that turns page titles into URL slugs"


def _cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "evorag.cli", *args], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def _wait_for(proc: subprocess.Popen, text: str, timeout: float = 120) -> str:
    """The first line of the process's stderr containing ``text`` (log lines before it are skipped)."""
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stderr.readline() if ready else ""
        if text in line:
            return line
        if ready and not line:
            break  # the process ended
        seen.append(line)
    raise AssertionError(f"{text!r} never appeared on the stderr of {proc.args}: {''.join(seen)[-2000:]}")


@contextmanager
def agents_host(*args: str):
    """`evorag agents-host --port 0` in its own process; yields (process, host:port)."""
    proc = _cli("agents-host", "--port", "0", *args)
    try:
        yield proc, re.search(r"listening on (\S+)", _wait_for(proc, "listening on"))[1]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def host():
    with agents_host() as (proc, address):
        yield address
    assert proc.returncode == 0, proc.stderr.read()  # Ctrl-C is a clean stop


def _host_agent_types(address: str) -> set[str]:
    """What the host process has subscribed right now (a blocking call: the host is another process)."""
    with grpc.insecure_channel(address) as channel:
        reply = agent_worker_pb2_grpc.AgentRpcStub(channel).GetSubscriptions(
            agent_worker_pb2.GetSubscriptionsRequest(), metadata=[("client-id", "test")], timeout=10)
    return {s.typeSubscription.agent_type for s in reply.subscriptions}


def _evolve(home, events, **settings):
    with Evorag(home=home, evolutions_per_hour=100, **settings) as rag:
        outcome = asyncio.run(rag.aevolve(REQUEST, approver=PolicyApprover(assume_yes=True),
                                            model_client=replay_client([PLAN, GOOD]), on_event=events.append))
        slug = rag.registry.call("slugify_title", {"title": "Crawl & Index"}) if outcome.status == "deployed" else None
        return outcome, slug, [m.name for m in rag.registry.tools()]


def _trace(events):
    return [(type(e).__name__, getattr(e, "source", None)) for e in events]


def _said(events):
    """What the agents said, without what differs between any two runs (durations, the new version's id)."""
    return [re.sub(r"(?<=\()\d+(\.\d+)?s(?=[,)])", "time", e.content) for e in events
            if isinstance(e, TextMessage) and e.source != "deployer"]


def test_an_evolution_through_the_host_process_deploys_exactly_like_in_process(host, tmp_path):
    local_events, remote_events, seen_on_host = [], [], []

    def record(event):
        remote_events.append(event)
        if getattr(event, "source", None) == "tool_generator":
            seen_on_host.append(_host_agent_types(host))

    local = _evolve(tmp_path / "local", local_events)
    remote = _evolve(tmp_path / "remote", SimpleNamespace(append=record), agent_runtime_host=host)

    (l_out, l_slug, l_tools), (r_out, r_slug, r_tools) = local, remote
    assert r_out.status == "deployed", r_out.reason
    assert (r_out.status, r_out.gate, r_out.tool, r_out.risk) == (l_out.status, l_out.gate, l_out.tool, l_out.risk)
    assert [(v.gate, v.ok, v.risk) for v in r_out.verdicts] == [(v.gate, v.ok, v.risk) for v in l_out.verdicts]
    assert r_slug == l_slug == "crawl-index" and r_tools == l_tools == ["slugify_title"]
    assert _trace(remote_events) == _trace(local_events)
    assert _said(remote_events) == _said(local_events)
    # Mid-run, the host process knew every agent of the flow (their types carry the team id) ...
    types = seen_on_host[0]
    for agent in ("orchestrator", "dependency_validator", "tool_generator", "code_debugger",
                  "integration_tester", "human", "deployer"):
        assert any(t.startswith(agent + "_") for t in types), (agent, types)
    # ... and forgot them when the run disconnected.
    assert not any(t.startswith("orchestrator_") for t in _host_agent_types(host))


def test_the_conversation_team_with_tool_calls_runs_through_the_host(host, tmp_path):
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, RequestUsage

    code = 'def double(x: int) -> int:\n    """Double x."""\n    return 2 * x\n'
    usage = RequestUsage(prompt_tokens=1, completion_tokens=1)
    client = replay_client([
        "code_debugger",
        CreateResult(finish_reason="function_calls", usage=usage, cached=False, content=[
            FunctionCall(id="1", name="check_tool_code", arguments=json.dumps({"code": code}))]),
        "orchestrator",
        "The tool passes the code gate. TERMINATE",
    ], function_calling=True)
    with Evorag(home=tmp_path / "home", agent_runtime_host=host) as rag:
        transcript = asyncio.run(rag.aconverse("Is this tool acceptable?", model_client=client))
    speakers = [t["source"] for t in transcript]
    assert "code_debugger" in speakers and speakers[-1] == "orchestrator"
    assert any("PASS (risk LOW)" in t["content"] for t in transcript), transcript


def test_an_unreachable_host_is_a_clear_error_and_costs_no_evolution(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    with Evorag(home=tmp_path / "home", evolutions_per_hour=1, agent_runtime_host=address) as rag:
        with pytest.raises(ExternalError) as caught:
            asyncio.run(rag.aevolve(REQUEST, approver=PolicyApprover(assume_yes=True),
                                      model_client=replay_client([PLAN, GOOD])))
        assert caught.value.message == f"cannot reach the agent runtime host at {address}: connection refused"
        assert "evorag agents-host --port" in caught.value.hint
        assert "unset EVORAG_AGENT_RUNTIME_HOST" in caught.value.hint
        rag.parts.rate_limiter.acquire("evolution")  # the one allowed evolution of the hour is still there


def test_the_cli_reports_an_unreachable_host_in_one_line(tmp_path, monkeypatch, capsys):
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("EVORAG_AGENT_RUNTIME_HOST", address)
    assert main(["evolve", REQUEST, "--yes"]) == 3
    err = capsys.readouterr().err
    assert f"cannot reach the agent runtime host at {address}" in err and "Traceback" not in err


def test_a_silent_server_times_out(tmp_path):
    with socket.socket() as silent:  # accepts TCP, never speaks HTTP/2
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        settings = SimpleNamespace(agent_runtime_host=address, agent_runtime_connect_timeout=1.0)
        started = time.monotonic()
        with pytest.raises(ExternalError, match=r"no answer within 1 s"):
            asyncio.run(team_runtime(settings).__aenter__())
        assert time.monotonic() - started < 10


def test_a_grpc_server_that_is_not_a_host_is_named():
    from concurrent.futures import ThreadPoolExecutor

    server = grpc.server(ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        settings = SimpleNamespace(agent_runtime_host=f"127.0.0.1:{port}", agent_runtime_connect_timeout=5.0)
        with pytest.raises(ExternalError, match="the server there is not an agent runtime host"):
            asyncio.run(team_runtime(settings).__aenter__())
    finally:
        server.stop(None)


@pytest.mark.parametrize("value", ["nonsense", "localhost:", ":50051", "localhost:99999", "http://h:1",
                                   "a b:1", "localhost:0"])
def test_a_malformed_host_setting_is_a_config_error(tmp_path, value):
    with Evorag(home=tmp_path / "home", agent_runtime_host=value) as rag, \
            pytest.raises(ConfigError, match="invalid setting agent_runtime_host") as caught:
        asyncio.run(rag.aevolve(REQUEST, approver=PolicyApprover(assume_yes=True),
                                  model_client=replay_client([PLAN])))
    assert "EVORAG_AGENT_RUNTIME_HOST" in caught.value.hint


def test_ipv6_and_names_are_accepted_forms():
    from evorag.teams._distributed import parse_host_address

    assert parse_host_address("[::1]:50051") == "[::1]:50051"
    assert parse_host_address(" localhost:7 ") == "localhost:7"
    assert parse_host_address("agents.internal:50051") == "agents.internal:50051"


class _KillsTheHost(BaseChatAgent):
    """Takes its turn, but first stops the host process the team runs through."""

    def __init__(self, process: subprocess.Popen) -> None:
        super().__init__("killer", "stops the host")
        self._process = process

    @property
    def produced_message_types(self):
        return (TextMessage,)

    async def on_messages(self, messages, cancellation_token):
        self._process.kill()
        self._process.wait()
        return Response(chat_message=TextMessage(content="host stopped", source=self.name))

    async def on_reset(self, cancellation_token):
        return None


def test_a_host_that_dies_mid_run_ends_the_run_with_an_error_not_a_hang():
    from autogen_agentchat.agents import AssistantAgent

    with agents_host() as (proc, address):
        settings = SimpleNamespace(agent_runtime_host=address, agent_runtime_connect_timeout=5.0)

        async def run():
            seen = []
            async with team_runtime(settings) as runtime:
                first = AssistantAgent("first", replay_client(["hello"]))
                killer = _KillsTheHost(proc)
                last = AssistantAgent("last", replay_client(["never said"]))
                graph = DiGraphBuilder().add_node(first).add_node(killer).add_node(last)
                graph.add_edge(first, killer).add_edge(killer, last)
                flow = GraphFlow(participants=graph.get_participants(), graph=graph.build(), runtime=runtime)
                with pytest.raises(ExternalError, match=f"lost the connection to the agent runtime host at {address}"):
                    async for event in run_on(runtime, flow.run_stream(task="go")):
                        seen.append(getattr(event, "content", None))
            return seen

        seen = asyncio.run(asyncio.wait_for(run(), 60))
    assert seen == ["go", "hello"]


def test_a_message_type_the_runtime_does_not_carry_ends_the_run_with_an_internal_error(host):
    from autogen_agentchat.messages import StructuredMessage
    from pydantic import BaseModel

    from evorag.errors import InternalError

    class Point(BaseModel):
        x: int

    class Structured(BaseChatAgent):
        @property
        def produced_message_types(self):
            return (StructuredMessage[Point],)

        async def on_messages(self, messages, cancellation_token):
            return Response(chat_message=StructuredMessage[Point](content=Point(x=1), source=self.name))

        async def on_reset(self, cancellation_token):
            return None

    async def run():
        settings = SimpleNamespace(agent_runtime_host=host, agent_runtime_connect_timeout=5.0)
        async with team_runtime(settings) as runtime:
            graph = DiGraphBuilder().add_node(Structured("structured", "says a point"))
            flow = GraphFlow(participants=graph.get_participants(), graph=graph.build(), runtime=runtime)
            async for _ in run_on(runtime, flow.run_stream(task="go")):
                pass

    with pytest.raises(InternalError, match=r"could not handle a GroupChat\w+ message: "
                                            r"Unknown message type: StructuredMessage\[.*Point\]"):
        asyncio.run(asyncio.wait_for(run(), 60))


def test_agents_host_binds_loopback_and_refuses_other_addresses_without_the_flag(capsys):
    assert main(["agents-host", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to serve the agent runtime on 0.0.0.0" in err and "--insecure-remote" in err
    with agents_host("--host", "0.0.0.0", "--insecure-remote") as (_, address):
        assert address.startswith("0.0.0.0:")
    with agents_host() as (_, address):
        assert address.startswith("127.0.0.1:")


def test_a_second_host_on_the_same_port_is_refused():
    with agents_host() as (_, address):
        port = address.rsplit(":", 1)[1]
        second = _cli("agents-host", "--port", port)
        assert second.wait(timeout=60) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr.read()


# --- an agent in a third process -------------------------------------------------------------------------


@contextmanager
def agents_worker(address: str, home, replies: list[str], *names: str):
    """`evorag agents-worker NAMES` in its own process, answering from a replay file."""
    replay = home / "worker-replies.json"
    home.mkdir(parents=True, exist_ok=True)
    replay.write_text(json.dumps(replies))
    proc = _cli("agents-worker", *names, env={
        "EVORAG_HOME": str(home), "EVORAG_AGENT_RUNTIME_HOST": address,
        "EVORAG_LLM_PROVIDER": "replay", "EVORAG_REPLAY_FILE": str(replay)})
    try:
        _wait_for(proc, "serving")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)


def test_an_agent_served_by_another_process_takes_part_in_the_conversation(host, tmp_path, monkeypatch):
    worker_says = f"Checked in the worker process: the code is fine ({os.urandom(4).hex()})."
    with agents_worker(host, tmp_path / "worker-home", [worker_says], "code_debugger") as worker:
        monkeypatch.setenv("EVORAG_AGENT_RUNTIME_REMOTE_AGENTS", '["code_debugger"]')
        # This process's model only picks speakers and speaks for the orchestrator.
        client = replay_client(["code_debugger", "orchestrator", "Then we are done. TERMINATE"])
        with Evorag(home=tmp_path / "home", agent_runtime_host=host) as rag:
            transcript = asyncio.run(rag.aconverse("Is this tool acceptable?", model_client=client))
        assert {"source": "code_debugger", "content": worker_says} in transcript
        assert transcript[-1]["source"] == "orchestrator"
        assert worker.poll() is None

        second = _cli("agents-worker", "code_debugger", env={
            "EVORAG_HOME": str(tmp_path / "second"), "EVORAG_AGENT_RUNTIME_HOST": host,
            "EVORAG_LLM_PROVIDER": "replay", "EVORAG_REPLAY_FILE": str(tmp_path / "worker-home/worker-replies.json")})
        assert second.wait(timeout=120) == 2
        assert "another worker already serves code_debugger" in second.stderr.read()
    assert worker.returncode == 0


def test_a_worker_stops_with_an_error_when_its_host_goes_away(tmp_path):
    with agents_host() as (host_process, address), \
            agents_worker(address, tmp_path / "worker-home", ["unused"], "orchestrator") as worker:
        host_process.kill()
        assert worker.wait(timeout=60) == 3
        err = worker.stderr.read()
    assert f"lost the connection to the agent runtime host at {address}" in err and "Traceback" not in err


# A worker whose agent never finishes its turn; it says when the turn starts so the test can kill it then.
SLOW_WORKER = """
import asyncio, sys
from types import SimpleNamespace
from autogen_agentchat.agents import BaseChatAgent
from evorag.teams._distributed import team_runtime, wait_for_stop
from evorag.teams._remote import serve_agent

class Slow(BaseChatAgent):
    produced_message_types = ()
    async def on_messages(self, messages, cancellation_token):
        print("turn started", file=sys.stderr, flush=True)
        await asyncio.sleep(3600)
    async def on_reset(self, cancellation_token):
        pass

async def main():
    settings = SimpleNamespace(agent_runtime_host=sys.argv[1], agent_runtime_connect_timeout=10.0)
    async with team_runtime(settings) as runtime:
        await serve_agent(runtime, "integration_tester", lambda: Slow("integration_tester", "slow"))
        print("serving", file=sys.stderr, flush=True)
        await wait_for_stop(runtime)

asyncio.run(main())
"""


def test_a_missing_worker_or_one_that_dies_during_its_turn_is_an_error_not_a_hang(host, tmp_path, monkeypatch):
    monkeypatch.setenv("EVORAG_AGENT_RUNTIME_REMOTE_AGENTS", '["integration_tester"]')
    with Evorag(home=tmp_path / "home", agent_runtime_host=host) as rag:
        with pytest.raises(ExternalError, match="no `evorag agents-worker` serves integration_tester"):
            asyncio.run(rag.aconverse("hi", model_client=replay_client(["integration_tester"])))

        worker = subprocess.Popen([sys.executable, "-c", SLOW_WORKER, host], stderr=subprocess.PIPE, text=True)
        try:
            _wait_for(worker, "serving")

            def kill_when_the_turn_starts():
                _wait_for(worker, "turn started")
                worker.kill()

            threading.Thread(target=kill_when_the_turn_starts, daemon=True).start()
            started = time.monotonic()
            with pytest.raises(ExternalError) as caught:
                asyncio.run(rag.aconverse("hi", model_client=replay_client(["integration_tester"])))
            assert time.monotonic() - started < 30
        finally:
            worker.kill()
            worker.wait()
    assert worker.returncode == -signal.SIGKILL
    assert caught.value.message == "the worker serving integration_tester disconnected during its turn"
    assert caught.value.hint.startswith("restart `evorag agents-worker integration_tester`")
