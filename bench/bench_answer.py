"""Answer latency without the LLM: retrieval + context assembly + extractive answer + evaluation.

Target (issue 3): p95 <= 300 ms on 2 cores for a ~5k-chunk index, evaluation <= 20% of it. The in-run
baseline is the bare hybrid search of the same queries (query embedding included in both).

    python bench/bench_answer.py [--home /tmp/scifact-home] [--queries 100]

Uses the BEIR SciFact index that bench/bench_scifact.py builds (5,183 abstracts, ~6k chunks).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from evorag.service import Evorag


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default="/tmp/scifact-home")
    parser.add_argument("--data", default=str(Path(__file__).parents[2] / "shared" / "data" / "scifact"))
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    queries = [json.loads(line)["text"] for line in Path(args.data, "queries.jsonl").read_text().splitlines()]
    queries = queries[: args.queries]
    with Evorag(home=Path(args.home), llm_provider="none") as rag:  # no LLM: the extractive path
        chunks = rag.store.count()
        rag.store.optimize()  # as after any bulk ingest (idempotent)
        rag.search("warm up")
        rag.ask("warm up the evaluator")
        search_ms, total_ms, eval_ms = [], [], []
        for query in queries:  # a warm-up pass: the first touch of each segment reads it from disk
            rag.search(query, limit=12)
        for query in queries:  # interleaved, so load from other processes hits both alike
            started = time.perf_counter()
            rag.search(query, limit=12)
            search_ms.append((time.perf_counter() - started) * 1000)
            answer = rag.ask(query)
            total_ms.append(answer.timings_ms["total"])
            eval_ms.append(answer.timings_ms.get("evaluate", 0.0))
    print(f"index: {chunks} chunks, {len(queries)} queries")
    print(f"{'stage':34} {'p50 ms':>8} {'p95 ms':>8}")
    print(f"{'baseline: hybrid search alone':34} {statistics.median(search_ms):8.1f} {_pct(search_ms, .95):8.1f}")
    print(f"{'answer without LLM (total)':34} {statistics.median(total_ms):8.1f} {_pct(total_ms, .95):8.1f}")
    print(f"{'  of which evaluation':34} {statistics.median(eval_ms):8.1f} {_pct(eval_ms, .95):8.1f}")
    budget_ms = 300.0
    share = statistics.median(eval_ms) / statistics.median(total_ms)
    print(f"evaluation p95 = {_pct(eval_ms, .95) / budget_ms:.1%} of the {budget_ms:.0f} ms budget (target <= 20%); "
          f"{share:.0%} of our own median answer; answer p95 target <= {budget_ms:.0f} ms")


if __name__ == "__main__":
    main()
