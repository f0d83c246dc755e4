"""Retrieval quality on real documentation sites: the docs-dev question sets (Flask 2.2.2, pytest 7.2.1).

Each set's html root (Debian's python-flask-doc / python-pytest-doc) is served on 127.0.0.1 and crawled
with evorag into a persistent bench home (``--home``, outside the repository); later runs re-crawl
incrementally, so only changed pages are embedded again. An index built by an older BM25 encoder is
rebuilt (the bench home is the bench's own). Every question then goes through the service's search
(``Evorag.search``: what the CLI and the MCP server run), result URLs become page paths (fragment and
origin stripped, ``dir/`` -> ``dir/index.html``, each page kept once at its best rank) and are scored:

* Recall@5 (listed pages of any grade in the top 5 pages), MRR@10, nDCG@5 with the graded labels;
* per set, over both sets, and per question type;
* next to ``baseline``: today's ranking before page-aware search (chunk-level fusion only), from the same
  index in the same run, and the ablation rows (each page-aware part switched off on its own).

    python bench/bench_docs_dev.py [--data ../shared/data/docs-dev] [--home /work/benchdata/docs-dev]
                                   [--sets flask,pytest] [--json] [--per-question]

The labels and the serving instructions are in the data set's README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "docs-dev"
DEFAULT_HOME = Path("/work/benchdata/docs-dev")

# name -> (html root, loopback port); fixed ports keep the crawled URLs, and so the incremental re-crawl, stable.
SITES = {
    "flask": (Path("/usr/share/doc/python-flask-doc/html"), 8101),
    "pytest": (Path("/usr/share/doc/python-pytest-doc/html"), 8102),
    # Not in docs-dev: 30 labelled questions of our own (bench/data/python), written before any run on the site
    # and never tuned against: a check that the ranking holds on documentation it was not developed on.
    "python": (Path("/usr/share/doc/python3.11/html"), 8103),
}
DEFAULT_SETS = ("flask", "pytest")

# http.server with keep-alive and a deep backlog (its defaults drop connections under concurrent clients).
SERVER = """
import functools, sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass

class Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True

Server(("127.0.0.1", int(sys.argv[1])), functools.partial(Handler, directory=sys.argv[2])).serve_forever()
"""

# The ranking configurations compared in one run: label -> SearchOptions overrides ({} = the service's search).
# "baseline" is the ranking before page-aware search (chunks in fused order); each "-" row switches one part off.
CONFIGS: dict[str, dict] = {
    "evorag (default)": {},
    "- page support": {"page_support": 0.0},
    "- changelog demotion": {"changelog_weight": 1.0},
    "- one result per page": {"max_per_page": 0},
    "- term coverage": {"term_coverage": 0.0},
    "baseline (chunk ranking)": {"max_per_page": 0, "page_support": 0.0, "changelog_weight": 1.0,
                                 "term_coverage": 0.0},
}


def serve(directory: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=1).read()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the documentation server for {directory} did not start on port {port}")


def page_path(url: str) -> str:
    """A result URL as the labels name pages: no fragment, no origin or leading slash, ``dir/`` -> index.html."""
    path = urlsplit(url).path.lstrip("/")
    return path + "index.html" if path == "" or path.endswith("/") else path


def unique_pages(urls: list[str]) -> list[str]:
    return list(dict.fromkeys(page_path(url) for url in urls))


def score(pages: list[str], relevant: dict[str, int]) -> dict[str, float]:
    """Recall@5, MRR@10 and graded nDCG@5 over unique pages in rank order (the data set's README)."""
    recall = len([page for page in pages[:5] if page in relevant]) / len(relevant)
    mrr = next((1 / (rank + 1) for rank, page in enumerate(pages[:10]) if page in relevant), 0.0)
    dcg = sum(relevant.get(page, 0) / math.log2(rank + 2) for rank, page in enumerate(pages[:5]))
    ideal = sum(grade / math.log2(rank + 2) for rank, grade in enumerate(sorted(relevant.values(), reverse=True)[:5]))
    return {"recall@5": recall, "mrr@10": mrr, "ndcg@5": dcg / ideal}


def mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]} if rows else {}


@dataclass(slots=True)
class Question:
    set: str
    id: str
    query: str
    relevant: dict[str, int]
    type: str


OWN_DATA = ROOT / "bench" / "data"


def load_questions(data: Path, name: str) -> list[Question]:
    """The set's questions from ``data``, else from the bench's own labelled sets (``bench/data``)."""
    path = data / name / "queries.jsonl"
    if not path.exists():
        path = OWN_DATA / name / "queries.jsonl"
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            questions.append(Question(name, item["id"], item["query"], item["relevant"], item["type"]))
    return questions


def crawl(rag, name: str, port: int) -> dict:
    """Crawl (or re-crawl incrementally) one site; an index of another BM25 encoder is rebuilt from scratch."""
    from evorag.tools.types import CrawlRequest

    from evorag.errors import ConfigError

    request = CrawlRequest(url=f"http://127.0.0.1:{port}/index.html", source=name, allow_private=True,
                           max_pages=1000)
    try:
        report = rag.crawl(request)
    except ConfigError as exc:
        if "BM25" not in str(exc):
            raise
        print(f"[{name}] the index was built by another BM25 encoder: rebuilding every source", file=sys.stderr)
        for source in rag.sources():
            rag.remove_source(source.name)
        report = rag.crawl(request)
    return report.to_dict()


def run(args: argparse.Namespace) -> dict:
    from evorag.tools.search import SearchOptions

    from evorag.service import Evorag

    names = [name.strip() for name in args.sets.split(",") if name.strip()]
    questions = [question for name in names for question in load_questions(Path(args.data), name)]
    servers = []
    result: dict = {"sets": names, "crawl": {}, "configs": {}}
    args.home.mkdir(parents=True, exist_ok=True)
    with Evorag(home=args.home, embedder=args.embedder) as rag:
        try:
            for name in names:
                root, port = SITES[name]
                servers.append(serve(root, port))
                started = time.monotonic()
                report = crawl(rag, name, port)
                result["crawl"][name] = {
                    "pages_indexed": report["pages_indexed"], "pages_unchanged": report["pages_unchanged"],
                    "chunks_indexed": report["chunks_indexed"], "seconds": round(time.monotonic() - started, 1)}
        finally:
            for server in servers:
                server.kill()
                server.wait()
        searcher = rag.parts.searcher()
        vectors = rag.embedder.embed_documents([question.query for question in questions])
        vector_of = {(q.set, q.id): vector for q, vector in zip(questions, vectors, strict=True)}
        per_question: dict[str, dict] = {}
        for label, overrides in CONFIGS.items():
            rows = []
            started = time.monotonic()
            for question in questions:
                # The service's options (what `Evorag.search` builds), with the query embedded once for all rows.
                options = SearchOptions.from_settings(rag.settings, limit=10, source=question.set, kind="text",
                                                      **overrides)
                hits = searcher.search_vector(question.query, vector_of[(question.set, question.id)], options)
                urls = [hit.chunk.url for hit in hits]
                pages = unique_pages(urls)
                metrics = score(pages, question.relevant)
                # What a client shown the first 5 results sees: distinct pages and recall among them.
                shown = unique_pages(urls[:5])
                metrics["pages@5"] = len(shown)
                metrics["shown-recall@5"] = len([page for page in shown if page in question.relevant]) / len(
                    question.relevant)
                rows.append((question, metrics))
                per_question.setdefault(f"{question.set}/{question.id}", {})[label] = {
                    **{key: round(value, 4) for key, value in metrics.items()}, "pages": pages[:5]}
            result["configs"][label] = summarise(rows, names)
            result["configs"][label]["ms_per_query"] = round((time.monotonic() - started) * 1000 / len(questions), 1)
        result["service_check"] = check_service(rag, questions, per_question)
        result["questions"] = per_question
    return result


def check_service(rag, questions: list[Question], per_question: dict) -> dict:
    """Run every question through ``Evorag.search`` itself: the same pages as the default row, and its time."""
    same = 0
    started = time.monotonic()
    for question in questions:
        hits = rag.search(question.query, source=question.set, limit=10)
        same += unique_pages([hit.chunk.url for hit in hits])[:5] == per_question[
            f"{question.set}/{question.id}"][next(iter(CONFIGS))]["pages"]
    elapsed = (time.monotonic() - started) * 1000 / len(questions)
    return {"same_top5_pages": same, "questions": len(questions), "ms_per_query_with_embedding": round(elapsed, 1)}


def summarise(rows: list, names: list[str]) -> dict:
    by_set = {name: mean([m for q, m in rows if q.set == name]) for name in names}
    types = sorted({q.type for q, _ in rows})
    by_type = {kind: mean([m for q, m in rows if q.type == kind]) for kind in types}
    by_set_type: dict[str, dict] = defaultdict(dict)
    for name in names:
        for kind in types:
            selected = [m for q, m in rows if q.set == name and q.type == kind]
            if selected:
                by_set_type[name][kind] = mean(selected)
    return {"overall": mean([m for _, m in rows]), "sets": by_set, "types": by_type, "set_types": dict(by_set_type)}


def print_table(result: dict, per_question: bool) -> None:
    metrics = ("recall@5", "mrr@10", "ndcg@5")
    print("metrics over the unique pages of 10 results (the data set's README); 'first 5' = the first 5 results as "
          "returned: distinct pages among them and the recall they give")
    for name, crawl_report in result["crawl"].items():
        print(f"crawl {name}: {crawl_report}")
    names = result["sets"]
    print("\nper set: R@5 / MRR@10 / nDCG@5")
    print(f"{'configuration':34}" + "".join(f" {name:>20}" for name in [*names, "all"])
          + "  first 5: pages R@5    ms/q")
    for label, summary in result["configs"].items():
        cells = [summary["sets"][name] for name in names] + [summary["overall"]]
        overall = summary["overall"]
        print(f"{label:34}" + "".join(" " + " ".join(f"{cell[m]:.3f}" for m in metrics).rjust(20) for cell in cells)
              + f"  {overall['pages@5']:14.2f} {overall['shown-recall@5']:.3f} {summary['ms_per_query']:7.1f}")
    check = result["service_check"]
    print(f"Evorag.search itself: the default row's top 5 pages for {check['same_top5_pages']}/{check['questions']} "
          f"questions, {check['ms_per_query_with_embedding']} ms/query with the query embedding (rows above: "
          f"search only, the query embedded once)")
    print("\nper question type (both sets): R@5 / MRR@10 / nDCG@5")
    types = list(next(iter(result["configs"].values()))["types"])
    print(f"{'configuration':34}" + "".join(f" {kind:>20}" for kind in types))
    for label, summary in result["configs"].items():
        print(f"{label:34}" + "".join(
            " " + " ".join(f"{summary['types'][kind][m]:.3f}" for m in metrics).rjust(20) for kind in types))
    if per_question:
        labels = list(result["configs"])
        print("\nper question: nDCG@5 " + " / ".join(labels))
        for key, by_label in result["questions"].items():
            values = " ".join(f"{by_label[label]['ndcg@5']:.2f}" for label in labels)
            print(f"{key:12} {values}  {by_label[labels[0]]['pages']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME)
    parser.add_argument("--sets", default=",".join(DEFAULT_SETS), help=f"comma-separated, of {', '.join(SITES)}")
    parser.add_argument("--embedder", default="local", choices=["local", "onnx"])
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")
    parser.add_argument("--per-question", action="store_true", help="also print every question's pages")
    args = parser.parse_args()
    unknown = set(args.sets.split(",")) - set(SITES)
    if unknown:
        parser.error(f"unknown sets {sorted(unknown)}: use {', '.join(SITES)}")
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print_table(result, args.per_question)


if __name__ == "__main__":
    main()
