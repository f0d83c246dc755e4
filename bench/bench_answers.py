"""Extractive answer quality on the docs-dev reference answers (Flask 2.2.2, pytest 7.2.1), before and after.

Every docs-dev question (``../shared/data/docs-dev/{flask,pytest}/queries.jsonl``) is asked of its own site's
index through the service (``Evorag.ask`` with no language model: retrieval, context assembly, the extractive
answer), and the answer is scored against the question's reference ``answer`` (bench/answer_metrics.py):

* API recall: the share of the API names the reference writes (``request.files``, ``tmp_path``, ``--lf``) that
  the answer writes too, over the questions whose reference names any;
* ROUGE-L F-measure against the reference, citation markers removed;
* the mean length of the answer and how many answers said "not found in the indexed docs".

In the same run, on the same passages, the rows compare:

* ``evorag (current)``: the answer ``Evorag.ask`` gives;
* ``- term match only``: the same method without the embedding model (relevance from term match alone);
* ``before: shared words``: the extractive answer before issue 14 (sentences ranked by shared query words);
* ``lead-3 (top passage)``: the first three sentences of the top passage.

Then the first ``--cross`` questions of each set (default 10) are asked of the *other* site's index (a Flask question of the pytest docs): the share of
answers that say "not found" there, next to the share on their own site (lower is better), shows how well the
not-found decision separates answerable questions from unanswerable ones.

The index is the one bench/bench_docs_dev.py builds (``--home``, default /work/benchdata/docs-dev). It is reused
as it is; a set whose source is missing is served on 127.0.0.1 and crawled first (as bench_docs_dev.py does).

    python bench/bench_answers.py [--data ../shared/data/docs-dev] [--home /work/benchdata/docs-dev]
                                  [--sets flask,pytest] [--per-question] [--cross N]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from answer_metrics import api_names, api_recall, rouge_l
from bench_docs_dev import DEFAULT_DATA, DEFAULT_HOME, SITES, crawl, serve
from evorag.tools.answering import NOT_FOUND, ExtractiveAnswerer, Passage
from evorag.tools.evaluation import split_sentences
from evorag.tools.sparse import tokenize

# The extractive answer before issue 14 (tools/answering/_extractive.py at commit 6e8b1f3), kept here as the
# "before" row: sentences ranked by the question words they share, earlier passages winning ties.
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(\[])")
_FENCE = re.compile(r"```.*?```", re.DOTALL)


def _before_sentences(text: str) -> list[str]:
    out = []
    for line in _FENCE.sub(" ", text).splitlines():
        line = line.strip().lstrip("#").strip()
        if len(line) >= 25:
            out.extend(s.strip() for s in _SENTENCE.split(line) if len(s.strip()) >= 25)
    return out


def before_answer(question: str, passages: Sequence[Passage], max_sentences: int = 3) -> str:
    terms = set(tokenize(question))
    scored = []
    for rank, passage in enumerate(passages):
        for position, sentence in enumerate(_before_sentences(passage.text)):
            scored.append((len(terms & set(tokenize(sentence))), -rank, -position, sentence, passage.number))
    scored.sort(reverse=True)
    best = scored[0][0] if scored else 0
    chosen = [item for item in scored if item[0] > 0 and item[0] * 2 >= best][:max_sentences] or scored[:1]
    if not chosen:
        return f"See {passages[0].title} [{passages[0].number}]."
    chosen.sort(key=lambda item: (-item[1], -item[2]))
    return " ".join(f"{sentence} [{number}]" for _, _, _, sentence, number in chosen)


def lead_answer(question: str, passages: Sequence[Passage], count: int = 3) -> str:
    """The naive extract: the top passage's first sentences (code blocks left out), cited."""
    top = passages[0]
    prose = _FENCE.sub(" ", top.text)
    sentences = [s for s in split_sentences(prose) if len(s) >= 20][:count]
    return " ".join(f"{sentence} [{top.number}]" for sentence in sentences)


def load(data: Path, name: str) -> list[dict]:
    rows = [json.loads(line) for line in (data / name / "queries.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return [{**row, "set": name} for row in rows]


def passages_of(answer) -> list[Passage]:
    """The passages the service answered from (``sources_used`` holds each with its text and score)."""
    return [Passage(s["number"], s["url"], s["title"], s["section"], s["content"], s["score"], s["chunk_ids"],
                    s["source"], s["version"]) for s in answer.sources_used]


def scores(reference: str, text: str) -> dict:
    return {"api": api_recall(reference, text), "rouge": rouge_l(reference, text), "chars": len(text),
            "not_found": text.startswith(NOT_FOUND)}


def summary(rows: list[dict]) -> dict:
    apis = [row["api"] for row in rows if row["api"] is not None]
    return {"api": statistics.fmean(apis) if apis else 0.0, "rouge": statistics.fmean(r["rouge"] for r in rows),
            "chars": statistics.fmean(r["chars"] for r in rows), "not_found": sum(r["not_found"] for r in rows),
            "n": len(rows), "n_api": len(apis)}


def run(args: argparse.Namespace) -> dict:
    from evorag.service import Evorag

    names = [name.strip() for name in args.sets.split(",") if name.strip()]
    questions = [question for name in names for question in load(Path(args.data), name)]
    with Evorag(home=args.home, llm_provider="none") as rag:
        present = {source.name for source in rag.sources()}
        for name in names:
            if name not in present:
                root, port = SITES[name]
                print(f"[{name}] not in {args.home}: crawling it once", file=sys.stderr)
                server = serve(root, port)
                try:
                    crawl(rag, name, port)
                finally:
                    server.kill()
                    server.wait()
        term_only = ExtractiveAnswerer(None, rag.parts.extractive.config)
        methods: dict[str, Callable[[str, Sequence[Passage]], str]] = {
            "- term match only": lambda q, p: term_only.answer(q, p).text,
            "before: shared words": before_answer,
            "lead-3 (top passage)": lead_answer,
        }
        rag.ask("warm up the embedder", source=names[0], evaluate=False)
        rows: dict[str, list[dict]] = {"evorag (current)": [], **{label: [] for label in methods}}
        per_question: list[dict] = []
        started = time.monotonic()
        for number, question in enumerate(questions, 1):
            print(f"\r{number}/{len(questions)} {question['id']}", end="", file=sys.stderr, flush=True)
            answer = rag.ask(question["query"], source=question["set"], evaluate=False)
            passages = passages_of(answer)
            texts = {"evorag (current)": answer.answer}
            for label, method in methods.items():
                texts[label] = method(question["query"], passages) if passages else ""
            for label, text in texts.items():
                rows[label].append(scores(question["answer"], text))
            per_question.append({"id": question["id"], "names": api_names(question["answer"]),
                                 "scores": {label: rows[label][-1] for label in rows}, "answer": answer.answer})
        ask_ms = (time.monotonic() - started) * 1000 / len(questions)
        cross: dict[str, int] = {}
        if args.cross and len(names) > 1:
            # The first ``--cross`` questions of each set (all: --cross 0 = none, a large number = every one).
            sample = [q for name in names for q in [q for q in questions if q["set"] == name][:args.cross]]
            for number, question in enumerate(sample, 1):
                print(f"\rcross {number}/{len(sample)} {question['id']}", end="", file=sys.stderr, flush=True)
                other = next(name for name in names if name != question["set"])
                answer = rag.ask(question["query"], source=other, evaluate=False)
                cross[question["id"]] = answer.not_found
    return {"summary": {label: summary(values) for label, values in rows.items()}, "ask_ms": ask_ms,
            "cross_not_found": cross, "questions": per_question}


def print_table(result: dict, per_question: bool) -> None:
    first = next(iter(result["summary"].values()))
    print(f"docs-dev: {first['n']} questions asked of their own site ({first['n_api']} whose reference names APIs); "
          f"Evorag.ask without a model: {result['ask_ms']:.0f} ms/question (retrieval included)")
    print(f"{'method':24} {'API recall':>10} {'ROUGE-L F':>10} {'chars':>7} {'not found':>10}")
    for label, row in result["summary"].items():
        print(f"{label:24} {row['api']:10.3f} {row['rouge']:10.3f} {row['chars']:7.0f} {row['not_found']:10d}")
    cross = result["cross_not_found"]
    if cross:
        own = result["summary"]["evorag (current)"]
        print(f"\n'not found' (evorag current): {own['not_found']}/{own['n']} on their own site, "
              f"{sum(cross.values())}/{len(cross)} asked of the other site (the other methods never say it)")
    if per_question:
        labels = list(result["summary"])
        print("\nper question: API recall / ROUGE-L for " + ", ".join(labels))
        for item in result["questions"]:
            cells = "  ".join(("-" if s["api"] is None else f"{s['api']:.2f}") + f"/{s['rouge']:.2f}"
                              for s in (item["scores"][label] for label in labels))
            print(f"{item['id']:5} {cells}  {item['names']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME)
    parser.add_argument("--sets", default="flask,pytest", help=f"comma-separated, of {', '.join(SITES)}")
    parser.add_argument("--cross", type=int, default=10,
                        help="questions of each set also asked of the other site (0: none)")
    parser.add_argument("--per-question", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    unknown = set(args.sets.split(",")) - set(SITES)
    if unknown:
        parser.error(f"unknown sets {sorted(unknown)}: use {', '.join(SITES)}")
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        print_table(result, args.per_question)


if __name__ == "__main__":
    main()
