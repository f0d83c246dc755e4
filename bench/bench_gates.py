"""The static gates one after the other (code, then dependencies, stopping at the first failure: the order before)
and through ``EvolutionPipeline.check_static`` (what the Code Debugger runs: at once when the candidate lists
requirements, in order otherwise), on the same candidates, in the same process, alternating so that both see the
same machine state.

Candidates (tests/candidates): ``good_word_count`` (stdlib only: the dependency check is a lookup in the installed
environment), ``new_dependency`` (``tabulate>=0.9``: pip resolves and locks it, with the package index), and
``syntax_error`` (the code gate fails: sequentially the dependency check never runs, at once it is waited for),
and ``new_dependency+helpers``: the same tool with ``--helpers`` private helper functions (50: about 400 lines),
where the code checks take a while too. Prints the median and worst wall time of N runs of each and the speed-up
(sequential / parallel).

    python bench/bench_gates.py [--runs N] [--helpers N] [--candidate NAME ...]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = ROOT / "tests" / "candidates"
DEFAULT = ("good_word_count", "new_dependency", "syntax_error", "new_dependency+helpers")
HELPER = '''def _cell_{i}(value: str, width: int = {width}) -> str:
    """Pad or cut one cell to its column width."""
    text = str(value).strip()
    if len(text) > width:
        return text[:width]
    return text.ljust(width)
'''


def with_helpers(base: Path, helpers: int, where: Path) -> Path:
    """A copy of ``base`` whose tool.py has ``helpers`` private helper functions more."""
    shutil.copytree(base, where)
    code = (base / "tool.py").read_text() + "".join("\n\n" + HELPER.format(i=i, width=i % 7 + 1)
                                                     for i in range(helpers))
    (where / "tool.py").write_text(code)
    return where


def sequential(pipeline, path: Path) -> list:
    verdict, _ = pipeline.check_code(path)
    if not verdict.ok:
        return [verdict]
    return [verdict, pipeline.check_dependencies(path)]


def parallel(pipeline, path: Path) -> list:
    return pipeline.check_static(path)[0]


def timed(fn, *args) -> tuple[float, list]:
    started = time.perf_counter()
    verdicts = fn(*args)
    return time.perf_counter() - started, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--helpers", type=int, default=50, help="helper functions of new_dependency+helpers")
    parser.add_argument("--candidate", action="append", help="a folder of tests/candidates (repeatable)")
    args = parser.parse_args()
    from evorag.service import Evorag

    with tempfile.TemporaryDirectory(prefix="bench-gates-") as home, Evorag(home=Path(home)) as rag:
        pipeline = rag.evolution
        print(f"{'candidate':<24} {'gates':<22} {'sequential med/max':>20} {'parallel med/max':>18} {'speed-up':>9}")
        for name in args.candidate or DEFAULT:
            base, _, extra = name.partition("+")
            path = (with_helpers(CANDIDATES / base, args.helpers, Path(home) / name) if extra
                    else CANDIDATES / name)
            sequential(pipeline, path)  # warm-up: imports, the installed-environment cache
            times: dict[str, list[float]] = {"sequential": [], "parallel": []}
            outcomes = set()
            for _ in range(args.runs):
                for label, fn in (("sequential", sequential), ("parallel", parallel)):
                    seconds, verdicts = timed(fn, pipeline, path)
                    times[label].append(seconds)
                    outcomes.add(tuple((v.gate, v.ok, v.reason) for v in verdicts))
            assert len(outcomes) == 1, f"{name}: the two orders judged differently: {outcomes}"
            gates = " ".join(f"{gate}:{'ok' if ok else 'FAIL'}" for gate, ok, _ in outcomes.pop())
            seq, par = (statistics.median(times[k]) for k in ("sequential", "parallel"))
            print(f"{name:<24} {gates:<22} {seq * 1000:9.1f}/{max(times['sequential']) * 1000:7.1f} ms "
                  f"{par * 1000:7.1f}/{max(times['parallel']) * 1000:7.1f} ms {seq / par:8.2f}x")


if __name__ == "__main__":
    main()
