"""Long-term memory through real mem0 2.x, the real local MiniLM and qdrant-client's local mode, offline."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from evorag.tools.evolution import EvolutionOutcome
from evorag.tools.memory import EvolutionMemory, describe_outcome, memory_dir

from evorag.errors import StoreError, UserError
from evorag.settings import Settings

pytestmark = pytest.mark.slow  # loads the embedding model (once per memory folder)

REPO = Path(__file__).resolve().parents[1]

PDF = ("add a tool that extracts the text of PDF files",
       EvolutionOutcome("rejected", "tests", "AssertionError: expected 3 pages, got 0", "LOW", tool="pdf_text",
                        run_id="run0pdf"))
CSV = ("export search results to a CSV file",
       EvolutionOutcome("deployed", "deploy", None, "LOW", tool="csv_export", run_id="run1csv"))
WEATHER = ("fetch weather forecasts from an online API",
           EvolutionOutcome("rejected", "dependencies", "requests-weather is not on the dependency allowlist",
                            "HIGH", tool="weather", run_id="run2wx"))


def settings_at(home: Path) -> Settings:
    return Settings(home=home, qdrant_url=None)


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


@pytest.fixture(scope="module")
def memory_home(tmp_path_factory):
    return tmp_path_factory.mktemp("memory-home")


@pytest.fixture(scope="module")
def memory(memory_home):
    store = EvolutionMemory(settings_at(memory_home))
    for request, outcome in (PDF, CSV, WEATHER):
        store.record_outcome(request, outcome)
    yield store
    store.close()


def test_outcome_text_is_one_bounded_line_with_the_reason():
    text = describe_outcome("parse\nPDF  files", EvolutionOutcome(
        "rejected", "tests", "Traceback:\n  File x\nAssertionError: " + "x" * 2000, "LOW", tool="pdf"))
    assert text.startswith("request: parse PDF files -> rejected at tests: Traceback: File x AssertionError: ")
    assert "\n" not in text and len(text) < 800 and text.endswith("(tool pdf)")
    assert describe_outcome("csv", CSV[1]) == "request: csv -> deployed as tool csv_export (risk LOW)"


def test_the_most_similar_request_comes_first_with_its_failure_reason(memory):
    hits = memory.search("extract text from PDF documents")
    assert hits, "the PDF request should be found"
    first = hits[0]
    assert "AssertionError: expected 3 pages, got 0" in first["text"]
    assert first["metadata"]["status"] == "rejected" and first["metadata"]["gate"] == "tests"
    assert first["metadata"]["kind"] == "evolution" and first["metadata"]["tool"] == "pdf_text"
    assert first["metadata"]["run_id"] == "run0pdf"
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all("weather" not in h["text"] for h in hits), "an unrelated request is not 'similar'"

    weather = memory.search("get the weather forecast for tomorrow")
    assert weather[0]["metadata"]["gate"] == "dependencies"
    assert "allowlist" in weather[0]["metadata"]["reason"]


def test_search_with_no_threshold_ranks_everything(memory):
    hits = memory.search("save the hits as a CSV spreadsheet", limit=10, min_score=0.0)
    assert len(hits) == 3
    assert hits[0]["metadata"]["status"] == "deployed" and hits[0]["metadata"]["tool"] == "csv_export"
    assert memory.search("   ") == [] and memory.search("csv", limit=0) == []


def test_context_for_lists_similar_past_requests_as_bullets(memory):
    context = asyncio.run(memory.context_for("a tool to read PDF documents as text"))
    lines = context.splitlines()
    assert lines and all(line.startswith("- request: ") for line in lines)
    assert "rejected at tests: AssertionError: expected 3 pages, got 0" in lines[0]
    assert asyncio.run(memory.context_for("translate the glossary into Klingon")) == ""
    assert asyncio.run(memory.context_for("")) == ""


async def _ask_agent_with(memory, task: str, answer: str = "fine"):
    from autogen_agentchat.agents import AssistantAgent
    from autogen_ext.models.replay import ReplayChatCompletionClient

    agent = AssistantAgent("assistant", model_client=ReplayChatCompletionClient([answer]), memory=[memory])
    result = await agent.run(task=task)
    return result, await agent.model_context.get_messages()


def test_a_held_store_fails_cleanly_and_runs_go_on_without_memory(tmp_path):
    from autogen_core.models import SystemMessage
    from evorag.tools.memory import Mem0Memory
    from qdrant_client import QdrantClient

    settings = settings_at(tmp_path / "held")
    folder = memory_dir(settings) / "qdrant"
    folder.mkdir(parents=True)
    holder = QdrantClient(path=str(folder))  # what another evorag process would hold
    try:
        store = EvolutionMemory(settings)
        with pytest.raises(StoreError, match="in use by another evorag process"):
            store.record_outcome(*PDF)
        assert asyncio.run(store.context_for("PDF text")) == ""
        result, context = asyncio.run(_ask_agent_with(Mem0Memory(settings), "What about PDF text?"))
        assert result.messages[-1].content == "fine" and not any(isinstance(m, SystemMessage) for m in context)
    finally:
        holder.close()
    store.record_outcome(*PDF)  # free again: the next use opens it
    assert store.search("PDF text")[0]["metadata"]["tool"] == "pdf_text"
    store.close()


def test_a_new_instance_sees_what_a_closed_one_stored_and_nothing_goes_to_home(tmp_path, monkeypatch):
    from qdrant_client import QdrantClient

    fake_home = tmp_path / "user-home"
    fake_home.mkdir()
    monkeypatch.setenv("HOME", str(fake_home))
    settings = settings_at(tmp_path / "evorag")
    first = EvolutionMemory(settings)
    first.record_outcome(*WEATHER)
    first.close()
    # Closed for real: the folder lock is free for anyone.
    QdrantClient(path=str(memory_dir(settings) / "qdrant")).close()

    second = EvolutionMemory(settings)
    hits = second.search("weather forecasts API")
    assert [h["metadata"]["run_id"] for h in hits] == ["run2wx"]
    second.clear()
    assert second.search("weather forecasts API", min_score=0.0) == []
    second.close()
    assert files_under(fake_home) == set()


def test_evolution_memory_and_the_adapter_share_a_store_but_not_a_scope(tmp_path):
    from autogen_core.memory import MemoryContent
    from evorag.tools.memory import Mem0Memory

    settings = settings_at(tmp_path / "shared")
    evolution = EvolutionMemory(settings)
    assistant = Mem0Memory(settings, agent_id="assistant")
    evolution.record_outcome(*CSV)
    asyncio.run(assistant.add(MemoryContent(content="The user exports CSV files every Monday",
                                            mime_type="text/plain", metadata={"agent_id": "elsewhere"})))
    assert [h["metadata"]["tool"] for h in evolution.search("CSV export", min_score=0.0)] == ["csv_export"]
    found = asyncio.run(assistant.query("CSV export", min_score=0.0)).results
    assert [m.content for m in found] == ["The user exports CSV files every Monday"]
    assert found[0].metadata["agent_id"] == "assistant"  # metadata cannot move a memory to another scope

    evolution.clear()
    assert evolution.search("CSV export", min_score=0.0) == []
    assert len(asyncio.run(assistant.query("CSV export", min_score=0.0)).results) == 1
    asyncio.run(assistant.clear())
    assert asyncio.run(assistant.query("CSV export", min_score=0.0)).results == []
    asyncio.run(assistant.close())
    evolution.close()


def test_the_adapter_puts_relevant_memories_into_an_assistant_agents_context(memory, memory_home):
    from autogen_agentchat.messages import MemoryQueryEvent
    from autogen_core.memory import MemoryContent
    from autogen_core.models import SystemMessage
    from evorag.tools.memory import Mem0Memory
    from evorag.tools.memory._autogen import CONTEXT_HEADER

    adapter = Mem0Memory(settings_at(memory_home), user_id="alice", limit=3)

    async def scenario():
        await adapter.add(MemoryContent(content="Alice's documentation source is named pydocs",
                                        mime_type="text/plain"))
        await adapter.add(MemoryContent(content={"preferred_format": "markdown tables"},
                                        mime_type="application/json", metadata={"topic": "format"}))
        return await _ask_agent_with(adapter, "What is the name of Alice's documentation source?", "It is pydocs.")

    try:
        result, context = asyncio.run(scenario())
        system = [m.content for m in context if isinstance(m, SystemMessage)]
        assert len(system) == 1 and system[0].startswith(CONTEXT_HEADER)
        assert "Alice's documentation source is named pydocs" in system[0]
        assert "request:" not in system[0], "another scope's memories (the evolution runs) stay out"
        events = [m for m in result.messages if isinstance(m, MemoryQueryEvent)]
        assert events and events[0].content[0].content == "Alice's documentation source is named pydocs"
        assert result.messages[-1].content == "It is pydocs."

        json_hits = asyncio.run(adapter.query("preferred format markdown tables", min_score=0.0)).results
        stored = next(m for m in json_hits if isinstance(m.content, dict))
        assert stored.content == {"preferred_format": "markdown tables"}
        assert stored.metadata["topic"] == "format" and stored.metadata["score"] > 0
    finally:
        asyncio.run(adapter.clear())
        asyncio.run(adapter.close())


def test_the_adapter_round_trips_as_an_autogen_component(memory_home):
    from autogen_core.memory import Memory
    from evorag.tools.memory import Mem0Memory

    adapter = Mem0Memory(settings_at(memory_home), user_id="bob", agent_id="helper", limit=4, min_score=0.2)
    model = adapter.dump_component()
    assert model.provider == "evorag.tools.memory.Mem0Memory"
    loaded = Memory.load_component(json.loads(model.model_dump_json()))
    assert isinstance(loaded, Mem0Memory)
    assert (loaded.settings.home, loaded.user_id, loaded.agent_id, loaded.limit, loaded.min_score) == (
        memory_home, "bob", "helper", 4, 0.2)


def test_the_adapter_refuses_binary_content_and_bad_ids(memory_home):
    from autogen_core.memory import MemoryContent
    from evorag.tools.memory import Mem0Memory

    adapter = Mem0Memory(settings_at(memory_home))
    with pytest.raises(UserError, match="stores text"):
        asyncio.run(adapter.add(MemoryContent(content=b"\x89PNG", mime_type="image/png")))
    with pytest.raises(UserError, match="user_id"):
        Mem0Memory(settings_at(memory_home), user_id="two words")


def test_the_service_hands_its_memory_to_the_pipeline(tmp_path):
    from evorag.service import Evorag

    with Evorag(home=tmp_path / "svc") as rag:
        assert isinstance(rag.memory_store, EvolutionMemory)
        assert rag.evolution.memory is rag.memory_store
        assert rag.memory_store.settings.home == tmp_path / "svc"


_CHILD = textwrap.dedent("""
    import asyncio, sys
    from evorag.settings import Settings
    from evorag.tools.evolution import EvolutionOutcome
    from evorag.tools.memory import EvolutionMemory
    assert "mem0" not in sys.modules
    memory = EvolutionMemory(Settings())
    memory.record_outcome("summarise a page in three bullet points",
                          EvolutionOutcome("rejected", "code", "SyntaxError: invalid syntax", "LOW",
                                           tool="summary", run_id="child1"))
    print(asyncio.run(memory.context_for("summarise pages as bullet points")))
""")


def _without_network() -> list[str]:
    """``unshare -n`` where it works (root, as on CI): the child then has no network at all."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], check=False, capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def test_a_second_process_sees_what_the_first_stored_and_nothing_is_written_outside_home(tmp_path):
    fake_home, workdir, evorag_home = tmp_path / "user-home", tmp_path / "cwd", tmp_path / "evorag"
    fake_home.mkdir()
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVORAG_", "MEM0_"))}
    env.update(HOME=str(fake_home), EVORAG_HOME=str(evorag_home), EVORAG_CONFIG=str(tmp_path / "none.toml"),
               PYTHONPATH=str(REPO))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # the module must go offline by itself
        env.pop(name, None)
    child = subprocess.run([*_without_network(), sys.executable, "-c", _CHILD], check=False, cwd=workdir, env=env,
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    assert "rejected at code: SyntaxError: invalid syntax" in child.stdout
    assert "spaCy" not in child.stderr and "fastembed" not in child.stderr

    assert files_under(fake_home) == set(), "mem0 wrote into HOME (~/.mem0?)"
    assert files_under(workdir) == set()
    written = files_under(evorag_home)
    assert {"memory/mem0/config.json", "memory/history.sqlite3", "memory/qdrant"} <= written
    assert all(path.startswith("memory") for path in written)

    later = EvolutionMemory(settings_at(evorag_home))
    hits = later.search("bullet point summaries of pages")
    assert hits and hits[0]["metadata"]["run_id"] == "child1" and hits[0]["metadata"]["gate"] == "code"
    later.close()
