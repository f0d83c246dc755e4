"""Sandbox startup overhead: the same tiny programs run plainly (subprocess, the baseline) and in each
usable sandbox backend, in the same run.

Programs: ``true`` (pure launch cost), ``python -c pass`` (interpreter start), and ``python -m pytest -q``
on a one-test file (what the Integration Tester runs). Prints the median and worst wall time of N runs and
the overhead over the baseline.

    python bench/bench_sandbox.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.sandbox import BubblewrapSandbox, DockerSandbox, Limits

PROGRAMS = {
    "true": ["true"],
    "python -c pass": ["python", "-c", "pass"],
    "pytest (1 test)": ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
}


def timed(fn, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    backends = [b for b in (BubblewrapSandbox(), DockerSandbox()) if b.available()]
    skipped = [
        f"{b.name} ({b.why_unavailable()})"
        for b in (BubblewrapSandbox(), DockerSandbox())
        if not b.available()
    ]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "test_one.py").write_text("def test_one():\n    assert True\n")
        print(f"{'program':<18} {'runner':<12} {'median s':>9} {'max s':>7} {'overhead s':>11}")
        for label, argv in PROGRAMS.items():
            plain_argv = [sys.executable, *argv[1:]] if argv[0] == "python" else argv

            def plain(plain_argv=plain_argv):
                subprocess.run(plain_argv, cwd=work, capture_output=True, check=True)

            baseline = timed(plain, args.runs)
            base_median = statistics.median(baseline)
            print(
                f"{label:<18} {'subprocess':<12} {base_median:>9.3f} {max(baseline):>7.3f} {'(baseline)':>11}"
            )
            for backend in backends:

                def sandboxed(backend=backend, argv=argv):
                    result = backend.run(work, argv, limits=Limits(wall_seconds=60))
                    assert result.exit_code == 0, result

                sandboxed()  # first use: image build, probes
                times = timed(sandboxed, args.runs)
                median = statistics.median(times)
                print(
                    f"{label:<18} {backend.name:<12} {median:>9.3f} {max(times):>7.3f} "
                    f"{median - base_median:>+11.3f}"
                )
    if skipped:
        print("not measured:", "; ".join(skipped))


if __name__ == "__main__":
    main()
