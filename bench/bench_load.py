"""Load on the HTTP MCP server: 20 concurrent MCP clients searching a ~10k-chunk index, alone and while
a crawl job indexes a site, against the bare in-process search measured in the same run.

Corpus: real documentation text, the Python 3.11 docs' reST sources (Debian ``python3-doc``), cut into
short sections (one per heading or API entry) with their code examples, indexed through the Python API
with the ONNX embedder until the index holds ``--chunks`` chunks. The index is built once into
``--cache`` and copied for every run, so runs never change it.

Phases, all traffic to 127.0.0.1 only, each bounded by ``--seconds``:

1. baseline: the same queries through the Python API in this process, one after another
   (``Evorag.search(code=True)`` and ``Evorag.aask(evaluate=False)``);
2. load: ``evorag mcp --http`` in a subprocess; ``--clients`` official SDK client sessions, spread over
   ``--client-processes`` load-generator processes (as separate assistants would be), each loop on
   ``search_code_examples`` (70 %) and ``perform_rag_query_with_metrics(enable_evaluation=False)``
   (30 %). The language model is a replay script (instant), so a RAG query costs retrieval, context
   assembly and citations, not generation;
3. crawl + load: the same clients while crawl jobs index the bundled demo site (served on 127.0.0.1)
   back to back, each into a new source.

Targets: 0 errors, load p95 <= 200 ms. Every latency is client-side (request sent to result parsed).
The load generators share the machine's cores with the server: on 2 cores they take a real share, and
a single client process tops out near 150 light calls/s (its own event loop), so the clients are spread.

    python bench/bench_load.py [--seconds 60] [--clients 20] [--chunks 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DOCS = Path("/usr/share/doc/python3.11/html/_sources")
SOURCE = "pydocs"
CORPUS_VERSION = "1"  # bump when the corpus or the chunking changes: the cache is rebuilt
SECTION_CHARS = 500  # short sections keep the ONNX embedding of 10k chunks to minutes on 2 cores
CODE_CHARS = 400
SEARCH_SHARE = 0.7
P95_TARGET_MS = 200.0
REPLAYED_ANSWER = "See the documentation of this function [1]; the example there shows the call [1]."


# Corpus: reST sources to short Markdown pages.

_HEADING_UNDERLINE = re.compile(r"^([=\-~^\"'*+#`])\1{2,}\s*$")
_DIRECTIVE = re.compile(r"^\.\. (function|method|class|attribute|data|exception|decorator|classmethod|"
                        r"staticmethod|opcode|envvar|cmdoption|option|describe|index|module|currentmodule|"
                        r"[a-z-]+)::\s*(.*)$")
_ROLE = re.compile(r":[a-z:]+:`!?~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LINK = re.compile(r"`([^`<]+?)\s*<[^>]+>`_+")


def _clean(text: str) -> str:
    text = _ROLE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    return text.replace("``", "`").replace("**", "").strip()


def rst_to_sections(text: str) -> list[tuple[str, str, str]]:
    """(heading, prose, code) per section: headings and API directives start sections, ``::`` blocks
    and doctests are code."""
    sections: list[tuple[str, list[str], list[str]]] = []
    heading, prose, code = "Overview", [], []
    lines = text.splitlines()
    i = 0
    in_code = False
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and _HEADING_UNDERLINE.match(nxt) and not _HEADING_UNDERLINE.match(line):
            sections.append((heading, prose, code))
            heading, prose, code, in_code = _clean(line), [], [], False
            i += 2
            continue
        directive = _DIRECTIVE.match(line)
        if directive and directive.group(1) in {"function", "method", "class", "attribute", "data",
                                                "exception", "decorator", "classmethod", "staticmethod"}:
            sections.append((heading, prose, code))
            heading, prose, code, in_code = directive.group(2).strip(), [], [], False
            i += 1
            continue
        if directive:  # other directives (notes, versions, index entries): their line is markup
            in_code = directive.group(1) in {"code-block", "doctest", "testcode", "sourcecode"}
            i += 1
            continue
        if in_code and (line.startswith((" ", "\t")) or not line.strip()):
            code.append(line.strip("\n"))
        elif line.lstrip().startswith(">>>"):
            code.append(line.strip())
        else:
            in_code = False
            if line.strip():
                prose.append(_clean(line.strip().removesuffix("::") + (":" if line.rstrip().endswith("::") else "")))
        if line.rstrip().endswith("::") and not line.lstrip().startswith(".."):
            in_code = True
        i += 1
    sections.append((heading, prose, code))
    result = []
    for title, prose_lines, code_lines in sections:
        body = " ".join(prose_lines)[:SECTION_CHARS].strip()
        snippet = "\n".join(textwrap_dedent(code_lines)).strip()[:CODE_CHARS]
        if len(body) >= 40:
            result.append((title[:120], body, snippet))
    return result


def textwrap_dedent(lines: list[str]) -> list[str]:
    import textwrap

    return textwrap.dedent("\n".join(lines)).splitlines()


def build_pages():
    """Markdown pages (``evorag.tools.types.Page``), one per reST file, each with queries drawn from its sections."""
    from hashlib import sha256

    from evorag.tools.types import Page

    pages = []
    for path in sorted(DOCS.rglob("*.rst.txt")):
        sections = rst_to_sections(path.read_text(errors="replace"))
        if not sections:
            continue
        rel = path.relative_to(DOCS).as_posix().removesuffix(".rst.txt")
        parts, queries = [f"# {sections[0][0]}"], []
        for title, body, snippet in sections:
            parts.append(f"## {title}\n\n{body}")
            if snippet:
                parts.append(f"```python\n{snippet}\n```")
            queries.append(f"how do I use {title.split('(')[0]}" if snippet else title)
        markdown = "\n\n".join(parts)
        page = Page(
            url=f"https://docs.python.org/3.11/{rel}.html",
            title=sections[0][0],
            markdown=markdown,
            content_hash=sha256(markdown.encode()).hexdigest(),
            fetched_at=time.time(),
        )
        pages.append((page, queries))
    return pages


def build_index(cache: Path, target_chunks: int) -> dict:
    """Index pages until ``target_chunks`` chunks (ONNX embedder); reuse ``cache`` when it matches."""
    from evorag.service import Evorag

    marker = cache / "bench_load.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("version") == CORPUS_VERSION and info.get("target") == target_chunks:
            return info
    shutil.rmtree(cache, ignore_errors=True)
    pages = build_pages()
    started = time.perf_counter()
    with Evorag(home=cache, embedder="onnx") as rag:
        rag.catalog.upsert_source(SOURCE, "https://docs.python.org/3.11/", {})
        indexer = rag.parts.indexer()
        chosen, queries, chunks, code_chunks = [], [], 0, 0
        for page, page_queries in pages:
            page_chunks = indexer.chunk(SOURCE, page)
            chosen.append(page)
            queries += page_queries
            chunks += len(page_chunks)
            code_chunks += sum(chunk.kind == "code" for chunk in page_chunks)
            if chunks >= target_chunks:
                break
        print(f"indexing {len(chosen)} pages, {chunks} chunks ({code_chunks} code) with the ONNX embedder...",
              flush=True)
        batch: list = []
        done = 0
        for page in chosen:
            batch.append(page)
            if len(batch) == 20 or page is chosen[-1]:
                done += indexer.index_pages(SOURCE, batch).chunks
                batch = []
                rate = done / (time.perf_counter() - started)
                print(f"  {done}/{chunks} chunks, {rate:.0f} chunks/s", flush=True)
        rag.store.optimize()
    info = {
        "version": CORPUS_VERSION,
        "target": target_chunks,
        "pages": len(chosen),
        "chunks": chunks,
        "code_chunks": code_chunks,
        "build_seconds": round(time.perf_counter() - started, 1),
        "queries": queries,
    }
    marker.write_text(json.dumps(info))
    return info


# Measurements


@dataclass
class Samples:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu: str = ""  # where the CPU time went during the phase

    def add(self, other: Samples) -> None:
        self.latencies_ms += other.latencies_ms
        self.errors += other.errors

    def summary(self) -> str:
        n = len(self.latencies_ms)
        if n < 2:
            return f"{n} requests, {len(self.errors)} errors"
        cuts = statistics.quantiles(self.latencies_ms, n=100, method="inclusive")
        rate = n / self.seconds if self.seconds else 0.0
        return (
            f"{n:6d} requests, {len(self.errors)} errors, {rate:6.1f} req/s, "
            f"p50 {cuts[49]:7.1f} ms, p95 {cuts[94]:7.1f} ms, p99 {cuts[98]:7.1f} ms"
        )

    def p95(self) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[94]


def baseline(home: Path, queries: list[str], seconds: float, replay: Path) -> dict[str, Samples]:
    """The bare search in process, sequential, alternating the two kinds of query as the clients do."""
    from evorag.service import Evorag

    results = {"search_code_examples": Samples(), "perform_rag_query": Samples()}

    async def run(rag) -> float:
        rag.search(queries[0], code=True, limit=5)  # load the model and the index outside the timing
        await rag.aask(queries[0], evaluate=False)
        rng = random.Random(0)
        started, cpu_started = time.perf_counter(), time.process_time()
        while time.perf_counter() - started < seconds:
            query = rng.choice(queries)
            kind = "search_code_examples" if rng.random() < SEARCH_SHARE else "perform_rag_query"
            t = time.perf_counter()
            try:
                if kind == "search_code_examples":
                    rag.search(query, code=True, limit=5)
                else:
                    await rag.aask(query, evaluate=False)
                results[kind].latencies_ms.append((time.perf_counter() - t) * 1000)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                results[kind].errors.append(f"{type(exc).__name__}: {exc}")
        served = sum(len(samples.latencies_ms) for samples in results.values())
        cpu = time.process_time() - cpu_started
        for samples in results.values():
            samples.cpu = f"{1000 * cpu / max(served, 1):.1f} CPU-ms per request (all threads of this process)"
        return time.perf_counter() - started

    with Evorag(home=home, embedder="onnx", llm_provider="replay", replay_file=replay) as rag:
        elapsed = asyncio.run(run(rag))
    for samples in results.values():
        samples.seconds = elapsed
    return results


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def mcp_server(home: Path, token: str, replay: Path, log: Path):
    import httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVORAG_")}
    env.update(
        EVORAG_HOME=str(home),
        EVORAG_CONFIG=str(home / "no-config.toml"),
        EVORAG_EMBEDDER="onnx",
        EVORAG_MCP_TOKEN=token,
        EVORAG_API_CALLS_PER_MINUTE="0",  # a load test: the per-principal limit would refuse most of it
        EVORAG_ALLOW_PRIVATE="true",
        EVORAG_LLM_PROVIDER="replay",
        EVORAG_REPLAY_FILE=str(replay),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=str(REPO),
    )
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "evorag.cli", "mcp", "--http", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy in 120 s")
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.asynccontextmanager
async def session(url: str, token: str):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with (
        streamablehttp_client(url + "/mcp", headers={"Authorization": f"Bearer {token}"}) as (read, write, _),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


async def client_loop(
    client, queries: list[str], seed: int, start_at: float, stop_at: float, overhead_only: bool = False
) -> dict[str, Samples]:
    """One client's requests, back to back, between two wall-clock times (shared by every process)."""
    rng = random.Random(seed)
    results = {"search_code_examples": Samples(), "perform_rag_query": Samples()}
    if overhead_only:
        results = {"get_available_sources": Samples()}
    await asyncio.sleep(max(0.0, start_at - time.time()))
    while time.time() < stop_at:
        query = rng.choice(queries)
        if overhead_only:  # no search: the cost of MCP over HTTP itself
            kind, tool, args = "get_available_sources", "get_available_sources", {}
        elif rng.random() < SEARCH_SHARE:
            kind, tool, args = "search_code_examples", "search_code_examples", {"query": query, "limit": 5}
        else:
            kind, tool = "perform_rag_query", "perform_rag_query_with_metrics"
            args = {"query": query, "enable_evaluation": False}
        t = time.perf_counter()
        try:
            result = await asyncio.wait_for(client.call_tool(tool, args), timeout=30)
            elapsed = (time.perf_counter() - t) * 1000
            if result.isError:
                results[kind].errors.append(result.content[0].text if result.content else "error")
            elif kind == "search_code_examples" and not result.structuredContent["results"]:
                results[kind].errors.append("no results")
            else:
                results[kind].latencies_ms.append(elapsed)
        except Exception as exc:  # noqa: BLE001 - counted and reported
            results[kind].errors.append(f"{type(exc).__name__}: {exc}")
    return results


async def _client_group(url: str, token: str, queries: list[str], seeds: list[int], start_at: float,
                        stop_at: float, overhead_only: bool) -> dict[str, Samples]:
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(session(url, token)) for _ in seeds]
        per_client = await asyncio.gather(*(
            client_loop(s, queries, seed, start_at, stop_at, overhead_only) for seed, s in zip(seeds, sessions)
        ))
    totals = {kind: Samples() for kind in per_client[0]}
    for result in per_client:
        for kind, samples in result.items():
            totals[kind].add(samples)
    return totals


def client_process(url: str, token: str, queries: list[str], seeds: list[int], start_at: float,
                   stop_at: float, overhead_only: bool) -> tuple[dict[str, Samples], float]:
    """A load-generator process: its share of the clients, and the CPU seconds it used."""
    cpu = time.process_time()
    totals = asyncio.run(_client_group(url, token, queries, seeds, start_at, stop_at, overhead_only))
    return totals, time.process_time() - cpu


def load_phase(url: str, token: str, queries: list[str], clients: int, seconds: float, processes: int,
               crawl_site: str | None = None, overhead_only: bool = False) -> tuple[dict[str, Samples], dict]:
    """``clients`` sessions spread over ``processes`` load-generator processes, querying for ``seconds``
    (one Python process tops out near 150 light MCP calls/s: the SDK client, not the server, would be
    measured); with ``crawl_site``, crawl jobs run back to back from this process meanwhile."""
    from concurrent.futures import ProcessPoolExecutor

    processes = max(1, min(processes, clients))
    groups = [list(range(clients))[i::processes] for i in range(processes)]
    start_at = time.time() + 3.0 + 0.15 * clients  # every session connected before the clock starts
    stop_at = start_at + seconds
    crawls = {"jobs": 0, "done": 0, "pages_indexed": 0, "statuses": []}

    async def crawl_loop() -> None:
        async with session(url, token) as client:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            while time.time() < stop_at:
                source = f"demo{crawls['jobs']}"
                crawls["jobs"] += 1
                job = (await client.call_tool("crawl_and_index_documentation", {
                    "url": crawl_site + "index.html", "source": source, "wait_seconds": 0,
                })).structuredContent
                while job["status"] not in ("done", "failed", "cancelled"):
                    await asyncio.sleep(0.5)
                    job = (await client.call_tool("get_job_status", {"job_id": job["job_id"]})).structuredContent
                crawls["statuses"].append(job["status"])
                if job["status"] == "done":
                    crawls["done"] += 1
                    crawls["pages_indexed"] += job["report"]["pages_indexed"]

    with ProcessPoolExecutor(processes) as pool:
        futures = [pool.submit(client_process, url, token, queries, seeds, start_at, stop_at, overhead_only)
                   for seeds in groups]
        if crawl_site:
            asyncio.run(crawl_loop())
        outcomes = [future.result() for future in futures]
    kinds = outcomes[0][0].keys()
    totals = {kind: Samples(seconds=seconds) for kind in kinds}
    for result, _ in outcomes:
        for kind, samples in result.items():
            totals[kind].add(samples)
    crawls["client_cpu_s"] = sum(cpu for _, cpu in outcomes)
    return totals, crawls


def measured_phase(server_pid: int, run):
    """Run one load phase (``run()``) and note the CPU used by the server and by the load generators."""
    import psutil

    server = psutil.Process(server_pid)

    def cpu_of_server() -> float:
        total = server.cpu_times()
        return total.user + total.system + sum(
            c.cpu_times().user + c.cpu_times().system for c in server.children(recursive=True)
        )

    server_before = cpu_of_server()
    results, extra = run()
    server_cpu, seconds = cpu_of_server() - server_before, next(iter(results.values())).seconds
    client_cpu = extra["client_cpu_s"]
    served = sum(len(samples.latencies_ms) + len(samples.errors) for samples in results.values())
    # Cores: CPU over the timed window (session set-up before it adds a little).
    note = (f"server {server_cpu / seconds:.2f} cores ({1000 * server_cpu / max(served, 1):.1f} CPU-ms per request), "
            f"load generators {client_cpu / seconds:.2f} cores ({1000 * client_cpu / max(served, 1):.1f} CPU-ms "
            f"per request) (of {os.cpu_count()}); load average {os.getloadavg()[0]:.2f}; {seconds:.0f} s timed")
    for samples in results.values():
        samples.cpu = note
    return results, extra


def combined(results: dict[str, Samples]) -> Samples:
    total = Samples(seconds=next(iter(results.values())).seconds)
    for samples in results.values():
        total.add(samples)
    return total


def server_counts(url: str, token: str) -> dict[str, float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "evorag_mcp_tool_duration_seconds_count":
                key = f"{sample.labels['tool']}/{sample.labels['outcome']}"
                counts[key] = counts.get(key, 0) + sample.value
    return counts


def report(title: str, results: dict[str, Samples]) -> None:
    print(f"\n{title}")
    for kind, samples in results.items():
        print(f"  {kind:22s} {samples.summary()}")
    if len(results) > 1:
        print(f"  {'all':22s} {combined(results).summary()}")
    cpu = next(iter(results.values())).cpu
    if cpu:
        print(f"  cpu: {cpu}")
    errors = [e for s in results.values() for e in s.errors]
    for message in sorted(set(errors))[:5]:
        print(f"    error: {message[:200]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="Duration of each phase.")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--client-processes", type=int, default=4,
                        help="Load-generator processes the clients are spread over (1 = all in one).")
    parser.add_argument("--chunks", type=int, default=10_000, help="Size of the index.")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "evorag-bench-load-index",
                        help="Where the built index is kept between runs.")
    args = parser.parse_args()
    if not DOCS.is_dir():
        print(f"needs the Python docs' sources at {DOCS}: apt-get install python3-doc", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    procs = args.client_processes
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from evorag.demo import serve_demo_site

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    info = build_index(args.cache, args.chunks)
    print(f"index: {info['chunks']} chunks ({info['code_chunks']} code) from {info['pages']} pages"
          f" (built in {info['build_seconds']} s, cached in {args.cache})")
    queries = [q for q in info["queries"] if len(q) >= 4][:2000]
    random.Random(0).shuffle(queries)

    with tempfile.TemporaryDirectory(prefix="evorag-bench-load-") as tmp:
        home = Path(tmp) / "home"
        shutil.copytree(args.cache, home)  # crawls during the run must not change the cached index
        replay = Path(tmp) / "replies.json"
        replay.write_text(json.dumps([REPLAYED_ANSWER] * 200_000))
        token = secrets.token_urlsafe(24)

        base = baseline(home, queries, args.seconds, replay)
        report(f"baseline: Python API in process, sequential, {args.seconds:.0f} s", base)

        log = Path(tmp) / "server.log"
        with mcp_server(home, token, replay, log) as (url, pid), serve_demo_site(0) as site:
            # Warm up (the server loads the embedder and the index on its first search).
            load_phase(url, token, queries, 1, 2.0, 1)
            before = server_counts(url, token)
            load, _ = measured_phase(pid, lambda: load_phase(url, token, queries, args.clients, args.seconds, procs))
            report(f"load: {args.clients} MCP HTTP clients, {args.seconds:.0f} s", load)
            crawl_load, crawls = measured_phase(
                pid, lambda: load_phase(url, token, queries, args.clients, args.seconds, procs, crawl_site=site)
            )
            report(f"crawl + load: {args.clients} clients while crawl jobs run back to back, "
                   f"{args.seconds:.0f} s", crawl_load)
            print(f"  crawl jobs: {crawls['jobs']} started, {crawls['done']} done, "
                  f"{crawls['pages_indexed']} pages indexed, statuses {crawls['statuses']}")
            after = server_counts(url, token)
            overhead, _ = measured_phase(
                pid, lambda: load_phase(url, token, queries, args.clients, max(3.0, args.seconds / 4), procs,
                                        overhead_only=True)
            )
            report(f"MCP overhead: {args.clients} clients calling get_available_sources (no search), "
                   f"{max(3.0, args.seconds / 4):.0f} s", overhead)

    served = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    sent = len(combined(load).latencies_ms) + len(combined(crawl_load).latencies_ms)
    sent_errors = len(combined(load).errors) + len(combined(crawl_load).errors)
    server_ok = served.get("search_code_examples/ok", 0) + served.get("perform_rag_query_with_metrics/ok", 0)
    print(f"\nserver /metrics: {server_ok:.0f} search calls ok during the two phases "
          f"(clients saw {sent} ok, {sent_errors} errors)")

    load_all, crawl_all, base_all = combined(load), combined(crawl_load), combined(base)
    p95 = load_all.p95() if len(load_all.latencies_ms) > 1 else float("nan")
    print("\nsummary")
    print(f"  baseline p95 {base_all.p95():.1f} ms (sequential, in process)")
    print(f"  load p95 {p95:.1f} ms with {args.clients} clients: "
          f"{'meets' if p95 <= P95_TARGET_MS else 'MISSES'} the {P95_TARGET_MS:.0f} ms target; "
          f"{len(load_all.errors)} errors (target 0); {len(load_all.latencies_ms) / load_all.seconds:.1f} req/s")
    rate = len(load_all.latencies_ms) / load_all.seconds
    print(f"  closed loop (no think time): mean latency = clients / throughput = {1000 * args.clients / rate:.0f} ms; "
          f"p95 was {p95 / (1000 * args.clients / rate):.2f}x the mean; the bare search ran "
          f"{len(base_all.latencies_ms) / base_all.seconds:.1f} req/s on one thread of this process")
    if len(crawl_all.latencies_ms) > 1:
        print(f"  during crawls p95 {crawl_all.p95():.1f} ms ({crawl_all.p95() / p95:.2f}x the load p95), "
              f"{len(crawl_all.errors)} errors")
    print(f"  load average {os.getloadavg()[0]:.2f} at the end (other jobs on this machine count here too)")
    return 0 if not load_all.errors and not crawl_all.errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
