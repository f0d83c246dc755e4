"""Cold command line against warm in-process search, in the same run, over one 500-page index.

Builds (once; later runs reuse it) an index of synthetic documentation pages under ``--home``: Markdown
pages with a title, sections, prose and code drawn from a fixed vocabulary of API words, indexed with
``Evorag.add_folder`` and the default embedder. Then measures:

* cold search: ``evorag search QUERY --json`` as a fresh process, ``--runs`` times (median, p90): what a
  person or a script waits for, including interpreter start, imports, opening the index and embedding
  the query;
* cold import: ``python -c "import evorag.cli"`` as a fresh process (the share of the above that is imports);
  the two cold commands alternate, so background load hits them alike;
* warm search: ``Evorag.search`` in this process after a first search (the baseline: the search itself).

The cold commands run once untimed first (cold processes, warm OS caches) and, unless
``--no-bytecode-cache``, with their bytecode cached under ``HOME/pycache`` as an installed package has it.

Goal (issue 14): cold search median <= 1.5 s on a 2-core machine. The cold commands' CPU time (user +
system) is printed next to their wall time, with the load average: on a busy machine the wall time
stretches by the load while the CPU time stays what the command costs.

    python bench/bench_cold_cli.py --home ~/.cache/evorag-bench-cold [--pages 500] [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SOURCE = "coldbench"
QUERIES = ("how do I set a request timeout", "retry a failed connection with backoff",
           "stream a large response body", "configure the connection pool size")
TOPICS = ("client", "request", "response", "timeout", "retry", "stream", "pool", "proxy", "cookie", "auth",
          "header", "redirect", "session", "cache", "transport", "certificate", "upload", "download", "event", "hook")
VERBS = ("configure", "set", "send", "read", "close", "open", "retry", "cancel", "limit", "enable", "disable",
         "inspect", "override", "reuse", "stream")
NOUNS = ("connection", "body", "timeout", "pool", "header", "cookie", "socket", "buffer", "limit", "handler",
         "callback", "context", "backoff", "status code", "payload", "encoding")


def _sentence(rng: random.Random, topic: str) -> str:
    verb, noun, other = rng.choice(VERBS), rng.choice(NOUNS), rng.choice(NOUNS)
    return rng.choice((
        f"Use `{topic}.{verb}_{noun.replace(' ', '_')}()` to {verb} the {noun} of a {topic}.",
        f"The {topic} keeps one {noun} per {other}; {verb} it before the {other} is closed.",
        f"If the {noun} is missing, the {topic} raises `{topic.title()}Error` with the {other} that failed.",
        f"You can {verb} the {noun} for every {topic} at once with the `{noun.replace(' ', '_')}` option.",
        f"A {topic} {verb}s its {noun} lazily, so the first {other} pays for it.",
    ))


def make_page(rng: random.Random, number: int) -> str:
    topic = TOPICS[number % len(TOPICS)]
    lines = [f"# The {topic} API, part {number}", ""]
    for section in range(rng.randint(2, 4)):
        verb, noun = rng.choice(VERBS), rng.choice(NOUNS)
        lines += [f"## How to {verb} the {noun} ({number}.{section})", ""]
        lines.append(" ".join(_sentence(rng, topic) for _ in range(rng.randint(4, 9))))
        lines.append("")
        if rng.random() < 0.4:
            lines += ["```python", f"{topic} = {topic}.{topic.title()}({noun.replace(' ', '_')}=5.0)",
                      f"{topic}.{verb}_{noun.replace(' ', '_')}()", "```", ""]
    return "\n".join(lines)


def build_index(home: Path, pages: int) -> None:
    from evorag.service import Evorag

    with Evorag(home=home) as rag:
        existing = {record.name: record.pages for record in rag.sources()}
        if existing.get(SOURCE) == pages:
            print(f"reusing the index under {home}: {pages} pages")
            return
        folder = home / "bench-pages"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        rng = random.Random(14)
        for number in range(pages):
            (folder / f"page{number:04d}.md").write_text(make_page(rng, number), encoding="utf-8")
        if SOURCE in existing:
            rag.remove_source(SOURCE)
        started = time.perf_counter()
        report = rag.add_folder(folder, source=SOURCE)
        print(f"indexed {report.pages_indexed} pages, {report.chunks_indexed} chunks in "
              f"{time.perf_counter() - started:.0f} s under {home}")


def _evorag_command() -> list[str]:
    script = Path(sys.executable).with_name("evorag")
    return [str(script)] if script.exists() else [sys.executable, "-m", "evorag.cli"]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system: what the command costs whatever the load) and stdout."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return elapsed, _children_cpu() - cpu_before, done.stdout


def _summary(samples: list[float], cpu: list[float] | None = None) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    text = f"median {statistics.median(ordered) * 1000:6.0f} ms  p90 {p90 * 1000:6.0f} ms"
    if cpu:
        text += f"  cpu median {statistics.median(cpu) * 1000:6.0f} ms"
    return f"{text}  (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="EVORAG_HOME of the index (built if missing).")
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="Compile every module at every start (what PYTHONDONTWRITEBYTECODE=1 does).")
    args = parser.parse_args()
    home = args.home.expanduser().resolve()
    env = {**os.environ, "EVORAG_HOME": str(home)}
    if not args.no_bytecode_cache:
        # As after `pip install`, whose byte-compiled modules spare every start the compiling of ~170
        # modules (about 0.6 s of CPU here); PYTHONDONTWRITEBYTECODE=1 in a dev shell would hide that.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(home / "pycache")
    build_index(home, args.pages)
    search_command = [*_evorag_command(), "search", QUERIES[0], "--source", SOURCE, "--json"]
    for command in (search_command, [sys.executable, "-c", "import evorag.cli"]):
        _timed(command, env)  # untimed: fills the bytecode cache and the OS page cache, as on a used machine

    # The embedded index admits one process at a time: the cold processes run first, then the warm one here.
    cold_search: list[float] = []
    cold_import: list[float] = []
    search_cpu: list[float] = []
    import_cpu: list[float] = []
    for run in range(args.runs):
        query = QUERIES[run % len(QUERIES)]
        elapsed, cpu, stdout = _timed([*_evorag_command(), "search", query, "--source", SOURCE, "--json"], env)
        if not json.loads(stdout):
            raise SystemExit(f"`evorag search {query!r}` found nothing: is the index under {home} intact?")
        cold_search.append(elapsed)
        search_cpu.append(cpu)
        elapsed, cpu, _ = _timed([sys.executable, "-c", "import evorag.cli"], env)
        cold_import.append(elapsed)
        import_cpu.append(cpu)

    from evorag.service import Evorag

    warm_search: list[float] = []
    with Evorag(home=home) as rag:
        rag.search(QUERIES[0], source=SOURCE)  # opens the index and loads the query encoder
        for run in range(args.runs):
            query = QUERIES[run % len(QUERIES)]
            started = time.perf_counter()
            hits = rag.search(query, source=SOURCE)
            warm_search.append(time.perf_counter() - started)
            if not hits:
                raise SystemExit(f"Evorag.search({query!r}) found nothing")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    bytecode = "compiled at every start" if args.no_bytecode_cache else "cached"
    print(f"{args.pages} pages, {os.cpu_count()} CPUs, load average {load}, bytecode {bytecode}")
    print(f"cold `evorag search --json`:   {_summary(cold_search, search_cpu)}   (goal: median <= 1500 ms)")
    print(f"cold `import evorag.cli`:      {_summary(cold_import, import_cpu)}")
    print(f"warm Evorag.search in-process: {_summary(warm_search)}")


if __name__ == "__main__":
    main()
