"""An agent team whose model is down degrades instead of crashing: through the real CLI, against a real closed port
and a real server that accepts and never answers, `evolve` and `heal` end with one line naming the setting to fix
and exit 3; the run is audited as finished and remembered, and its slot of the hourly limit is given back. Token
counts reach the audit log (they are not secrets); the API key does not."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from evorag.agents.model_clients import create_model_client
from evorag.tools.approvals import PolicyApprover
from slug_tool_replies import GOOD, PLAN, REQUEST

from evorag.errors import ConfigError, ExternalError, ModelUnavailableError
from evorag.service import Evorag
from evorag.settings import Settings

CANDIDATES = Path(__file__).parent / "candidates"
SECRET = "sk-evorag-test-key-5f1c9a7e3b"
USAGE = {"prompt_tokens": 123, "completion_tokens": 45, "total_tokens": 168}


def closed_port_url() -> str:
    """An OpenAI-compatible base URL on a 127.0.0.1 port nothing listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@contextlib.contextmanager
def hanging_server():
    """A 127.0.0.1 server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1", held
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


@contextlib.contextmanager
def openai_server(replies: list[str]):
    """A 127.0.0.1 OpenAI-compatible chat endpoint answering ``replies`` in order, each with USAGE; it records the
    Authorization header of every request."""
    script, seen = list(replies), []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append(self.headers.get("Authorization"))
            if not script:
                self.send_error(500, "the scripted replies are used up")
                return
            body = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": script.pop(0)}}],
                               "usage": USAGE}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def evorag(*args: str, base_url: str, **settings: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVORAG_LLM_PROVIDER": "openai", "EVORAG_LLM_BASE_URL": base_url,
           "EVORAG_LLM_API_KEY": SECRET, **settings}
    return subprocess.run([sys.executable, "-m", "evorag.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def audit(home: Path) -> list[dict]:
    path = home / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def slots_used(home: Path) -> int:
    with contextlib.closing(sqlite3.connect(home / "rate_limit.sqlite3")) as db:
        return db.execute("SELECT COUNT(*) FROM events WHERE name='evolution'").fetchone()[0]


def assert_one_line(result: subprocess.CompletedProcess, setting: str) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert setting in lines[0] and "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout
    return lines[0]


def test_evolve_with_the_model_endpoint_refusing_ends_in_one_line_and_gives_its_slot_back(evorag_home):
    url = closed_port_url()
    # One evolution an hour: the second run is refused for rate unless the first gave its slot back.
    for _ in range(2):
        result = evorag("evolve", REQUEST, "--json", base_url=url, EVORAG_EVOLUTIONS_PER_HOUR="1")
        assert result.returncode == 3, result.stderr
        line = assert_one_line(result, "EVORAG_LLM_BASE_URL")
        assert line.startswith("error: the agent team's model failed") and url in line
        assert result.stdout == ""
    assert slots_used(evorag_home) == 0

    entries = audit(evorag_home)
    finished = [e for e in entries if e["event"] == "evolution_finished"]
    assert [e["status"] for e in finished] == ["model_unavailable", "model_unavailable"]
    assert all("EVORAG_LLM_BASE_URL" in e["reason"] and e["tokens"] == {"prompt": 0, "completion": 0}
               for e in finished)
    # The run stopped at the step whose model failed: no gate ran, nothing after the orchestrator spoke.
    speakers = [e["agent"] for e in entries if e["event"] == "agent_message"]
    assert speakers == ["user", "orchestrator"] * 2
    assert not [e for e in entries if e["event"] == "gate"]
    assert SECRET not in (evorag_home / "audit.jsonl").read_text()

    with Evorag(home=evorag_home) as rag:
        remembered = [m["metadata"] for m in rag.evolution.memory.all()]
    assert sorted(m["evolution_run_id"] for m in remembered) == sorted(e["run_id"] for e in finished)
    assert {m["status"] for m in remembered} == {"model_unavailable"}


def test_evolve_with_a_model_endpoint_that_never_answers_names_the_timeout_setting(evorag_home):
    with hanging_server() as (url, held):
        result = evorag("evolve", REQUEST, "--json", base_url=url, EVORAG_LLM_TIMEOUT="1")
        assert held, "the model client never connected to the hanging server"
    assert result.returncode == 3, result.stderr
    line = assert_one_line(result, "EVORAG_LLM_TIMEOUT")
    assert "timed out" in line
    finished = [e for e in audit(evorag_home) if e["event"] == "evolution_finished"]
    assert [e["status"] for e in finished] == ["model_unavailable"]
    assert slots_used(evorag_home) == 0


def _deploy_a_tool_then_break_it(home: Path) -> None:
    good = (CANDIDATES / "good_word_count" / "tool.py").read_text()
    with Evorag(home=home) as rag:
        outcome = rag.add_tool(CANDIDATES / "good_word_count", approver=PolicyApprover(assume_yes=True))
        assert outcome.status == "deployed", outcome.reason
        repository = rag.evolution.repository
        (repository.tools_dir / "word_count" / "tool.py").write_text(good.replace("return len(", "return 1 + len("))
        repository.repo.git.add("-A")
        repository.repo.index.commit("manual edit that broke word_count")


def test_heal_with_the_model_endpoint_refusing_ends_in_one_line(evorag_home):
    _deploy_a_tool_then_break_it(evorag_home)
    url = closed_port_url()
    result = evorag("heal", "word counts are off by one", "--yes", "--json", base_url=url)
    assert result.returncode == 3, result.stderr
    line = assert_one_line(result, "EVORAG_LLM_BASE_URL")
    assert "healing stopped" in line and url in line
    # For a person the progress of the health checks comes first; the failure is still its one last line.
    shown = evorag("heal", "word counts are off by one", "--yes", base_url=url)
    assert shown.returncode == 3 and "Traceback" not in shown.stderr
    assert shown.stderr.splitlines()[-1] == line and shown.stderr.count("error:") == 1
    finished = [e for e in audit(evorag_home) if e["event"] == "healing_finished"]
    assert [(e["status"], e["healed"]) for e in finished] == [("model_unavailable", False)] * 2


def test_the_service_raises_an_external_error_and_returns_the_slot(tmp_path):
    settings = Settings(home=tmp_path / "client", llm_provider="openai", llm_base_url=closed_port_url())
    with Evorag(home=tmp_path / "home", evolutions_per_hour=1) as rag:
        for _ in range(2):  # the second run is not refused for rate: the first gave its slot back
            with pytest.raises(ModelUnavailableError) as failure:
                asyncio.run(rag.aevolve(REQUEST, approver=PolicyApprover(assume_yes=True),
                                        model_client=create_model_client(settings, purpose="agents")))
            assert isinstance(failure.value, ExternalError) and failure.value.exit_code == 3
            assert "EVORAG_LLM_BASE_URL" in failure.value.message and failure.value.hint is None
        assert rag.evolution.audit.entries()[-1]["status"] == "model_unavailable"


def test_a_team_without_a_model_is_refused_as_a_setting_and_keeps_its_slot(tmp_path):
    with Evorag(home=tmp_path / "home", evolutions_per_hour=1, llm_provider="none") as rag:
        for _ in range(2):
            with pytest.raises(ConfigError, match="llm_provider is none") as failure:
                asyncio.run(rag.aevolve(REQUEST, approver=PolicyApprover(assume_yes=True)))
            assert "EVORAG_LLM_PROVIDER" in failure.value.hint and failure.value.exit_code == 2
        finished = [e for e in rag.evolution.audit.entries() if e["event"] == "evolution_finished"]
        assert [e["status"] for e in finished] == ["model_unavailable"] * 2


def test_token_counts_of_each_step_are_audited_and_the_api_key_is_not(evorag_home):
    with openai_server([PLAN, GOOD]) as (url, authorizations):
        result = evorag("evolve", REQUEST, "--yes", "--json", base_url=url)
    assert result.returncode == 0, result.stderr
    assert authorizations == [f"Bearer {SECRET}"] * 2  # the key was sent with each model call
    outcome = json.loads(result.stdout)
    assert outcome["status"] == "deployed" and outcome["tokens"] == {"prompt": 246, "completion": 90}

    entries = audit(evorag_home)
    per_step = {e["agent"]: e["tokens"] for e in entries if e["event"] == "agent_message"}
    one_call = {"prompt": 123, "completion": 45, "calls": 1}
    assert per_step["orchestrator"] == one_call and per_step["tool_generator"] == one_call
    assert per_step["dependency_validator"] is None and per_step["integration_tester"] is None
    assert entries[-1]["event"] == "evolution_finished"
    assert entries[-1]["tokens"] == {"prompt": 246, "completion": 90}
    # Nothing evorag wrote under its home holds the key: the audit log, the ledgers, the memory, the repository.
    leaks = [path for path in evorag_home.rglob("*") if path.is_file() and SECRET.encode() in path.read_bytes()]
    assert leaks == [] and SECRET not in result.stdout + result.stderr
