"""The application layer itself: the one writer slot, crawl jobs across processes, defaults from the settings,
the model seams, and a command line that starts without the heavy libraries."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from evorag.agents.model_clients import ForbiddenModelError, ForbiddenModelRequest, replay_client
from evorag.tools.approvals import PolicyApprover
from sitefixtures import serve

from evorag.errors import InternalError, UserError
from evorag.service import CrawlRequest, Evorag, WriterSlot
from evorag.service._queue import RequestQueue

REPO = Path(__file__).resolve().parents[1]


# The writer slot


def test_the_writer_slot_waits_off_the_loop_and_a_waiter_that_gives_up_passes_it_on():
    slot = WriterSlot()
    slot.__enter__()  # another thread's write is in progress

    async def main() -> list[str]:
        seen: list[str] = []

        async def write(name: str) -> None:
            async with slot:
                seen.append(name)

        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        clock = asyncio.create_task(ticker())
        gives_up = asyncio.create_task(write("gave up"))
        waits = asyncio.create_task(write("waited"))
        await asyncio.sleep(0.3)
        assert ticks >= 10, "the event loop stood still while writers waited"
        gives_up.cancel()
        await asyncio.sleep(0.05)
        threading.Thread(target=slot.__exit__, args=(None, None, None)).start()
        await asyncio.wait_for(waits, 5)
        clock.cancel()
        assert not slot.busy
        return seen

    assert asyncio.run(main()) == ["waited"]
    with slot:  # free again: the cancelled waiter's turn was passed on, not kept
        assert slot.busy


def test_the_writer_slot_refuses_to_wait_for_itself():
    slot = WriterSlot()
    with slot, pytest.raises(InternalError, match="taken twice"):
        slot.__enter__()
    assert not slot.busy


# Crawl jobs


def test_crawl_jobs_are_queue_requests_that_any_process_reads_and_cancels_and_a_dead_workers_is_queued_again(
        tmp_path):
    queue = RequestQueue(tmp_path / "queue.sqlite3")
    asker = {"name": "someone", "role": "operator", "via": "cli"}
    submitted = [queue.submit(kind="crawl", payload={"url": "https://docs.example.org/", "source": name},
                              principal=asker, priority=2100, origin="user", now=time.time(), writes=True,
                              submitter="999999999:gone")[0] for name in ("x", "y")]
    waiting, running = submitted
    # Another process took the second one and died: its lease ran out long ago.
    claimed = queue.claim("999999999:gone/w0", kinds=["crawl"], now=time.time() - 100, lease_s=1, max_attempts=3,
                          request_id=running.id)
    assert claimed is not None and claimed.status == "running"
    queue.close()
    with Evorag(home=tmp_path) as rag:
        again = rag.crawl_job(running.id)
        assert again.status == "queued" and again.attempts == 1 and "stopped renewing its lease" in again.note
        assert (rag.crawl_job(waiting.id).position, again.position) == (1, 2)
        cancelled = rag.cancel_crawl_job(waiting.id)
        assert cancelled.status == "cancelled" and "resume" in cancelled.error and cancelled.started_at is None
        with pytest.raises(UserError, match="already cancelled"):
            rag.cancel_crawl_job(waiting.id)
        assert rag.crawl_job(running.id).position == 1
        assert [j.id for j in rag.crawl_jobs()] == [waiting.id, running.id]


def test_every_crawl_is_a_journaled_job_and_the_defaults_come_from_the_settings(tmp_path):
    with serve("sphinx") as server, Evorag(home=tmp_path / "home", embedder="onnx", allow_private=True,
                                           max_pages=3, max_depth=1) as rag:
        plan = rag.knowledge.plan_crawl(CrawlRequest(url=server.url("/docs/index.html")))
        assert (plan.options.max_pages, plan.options.max_depth) == (3, 1)
        assert plan.source == f"127.0.0.1-{server.url().rsplit(':', 1)[1].strip('/')}"
        report = rag.crawl(CrawlRequest(url=server.url("/docs/index.html"), source="docs"))
        assert report.pages_indexed + report.pages_failed == 3
        [job] = rag.crawl_jobs()
        assert job.status == "done" and job.report == report.to_dict() and job.progress["done"] == 3
    # The journal outlives the service: another one (a server started later) reads the finished job.
    with Evorag(home=tmp_path / "home") as again:
        assert again.crawl_job(job.id).report == report.to_dict()


def test_a_crawl_refused_by_the_guard_creates_no_job(tmp_path):
    with Evorag(home=tmp_path) as rag:
        with pytest.raises(UserError, match="loopback"):
            rag.crawl(CrawlRequest(url="http://127.0.0.1:9/"))
        assert rag.crawl_jobs() == []


def test_the_evolution_docs_crawl_is_a_named_setting(tmp_path, monkeypatch):
    with Evorag(home=tmp_path, evolution_docs_max_pages=4, evolution_docs_max_depth=0, gap_crawl_max_pages=2) as rag:
        assert (rag.settings.evolution_docs_max_pages, rag.settings.evolution_docs_max_depth) == (4, 0)
        # A refused documentation URL stops the evolution before it costs a slot of the hourly limit.
        with pytest.raises(UserError, match="loopback"):
            asyncio.run(rag.aevolve("a tool", docs=["http://127.0.0.1/"], approver=PolicyApprover(assume_yes=True),
                                    model_client=replay_client([])))
        rag.parts.rate_limiter.acquire("evolution")  # the limit is untouched


# The model seams


def test_a_forgotten_model_stub_fails_the_test_instead_of_falling_back(demo_rag):
    """conftest.py's default provider: the answerer's fallback does not swallow it."""
    with pytest.raises(ForbiddenModelRequest, match="test_a_forgotten_model_stub_fails"):
        demo_rag.ask("How do I crawl documentation on localhost?")


def test_a_team_run_that_forgot_its_stub_fails_at_once_naming_the_test(tmp_path):
    """Agents get an ordinary exception instead: AutoGen's runtime ends the run with it (a BaseException would
    only be logged there, and the team would wait forever)."""
    with Evorag(home=tmp_path, evolutions_per_hour=10) as rag:
        started = time.monotonic()
        with pytest.raises((ForbiddenModelError, RuntimeError), match="test_a_team_run_that_forgot_its_stub"):
            asyncio.run(rag.aevolve("a tool that counts words", approver=PolicyApprover(assume_yes=True)))
        with pytest.raises(ForbiddenModelError, match="test_a_team_run_that_forgot_its_stub"):
            asyncio.run(rag.aconverse("is this tool fine?"))
    assert time.monotonic() - started < 120


def test_a_model_client_handed_in_is_used_for_answers_and_teams_and_override_restores(demo_rag, tmp_path):
    with demo_rag.override(model_client=replay_client(["Use --allow-private [1]."]), model_name="scripted"):
        answer = demo_rag.ask("How do I crawl documentation on localhost?", evaluate=False)
        assert (answer.model, answer.answer) == ("scripted", "Use --allow-private [1].")
    assert demo_rag.answerer.model_name == "forbidden"  # the configured one again
    with Evorag(home=tmp_path, model_client=replay_client(["no tool"]), model_name="scripted") as rag:
        ports = asyncio.run(rag.teams.ports())
        assert ports.model_client() is rag.parts.model_client("agents")
        assert rag.answerer.model_name == "scripted"


def test_llm_provider_none_answers_from_the_sources(demo_home):
    with Evorag(home=demo_home, llm_provider="none") as rag:
        answer = rag.ask("How do I crawl documentation on localhost?", evaluate=False)
    assert answer.fallback and answer.model == "extractive" and answer.citations
    assert "no language model is configured" in answer.note


# The command line starts light


def test_the_command_line_imports_no_heavy_library_at_start_up():
    """Search and other quick commands must not pay for AutoGen, torch, Qdrant, the MCP SDK, Chainlit, mem0 or
    Crawl4AI before they need them: those are loaded by the parts and commands that use them."""
    heavy = ("autogen_core", "autogen_agentchat", "torch", "qdrant_client", "qdrant_edge", "mcp", "chainlit",
             "mem0", "crawl4ai", "sentence_transformers", "transformers")
    probe = ("import json, sys; import evorag.cli; "
             "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO,
                            timeout=120)
    loaded = set(json.loads(result.stdout))
    assert not loaded & set(heavy), loaded & set(heavy)


def test_python_m_evorag_cli_is_the_entry_point(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVORAG_")}
    env.update(EVORAG_HOME=str(tmp_path / "home"), EVORAG_CONFIG=str(tmp_path / "none.toml"))
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "evorag.cli", "sources", "--json"], capture_output=True,
                            text=True, env=env, timeout=120, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert time.monotonic() - started < 60
