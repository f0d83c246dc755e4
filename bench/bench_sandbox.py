"""Sandbox startup overhead: the same tiny programs run plainly (subprocess, the baseline) and in each
usable sandbox backend, in the same run.

Programs: ``true`` (pure launch cost), ``python -c pass`` (interpreter start), and ``python -m pytest -q``
on a one-test file (what the tests gate runs). Prints the median and worst wall time of N runs and the
overhead over the baseline.

``--ref REF`` also measures the sandbox code of git revision REF (e.g. the commit before the hardening) in
a child process, right after the current code, so that both tables come from the same machine state.

    python bench/bench_sandbox.py [--runs N] [--ref REF]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


def measure(runs: int, label: str) -> None:
    """Print one table: the baseline, then every usable backend of the ``tools`` package imported here."""
    from evorag.tools.sandbox import BubblewrapSandbox, DockerSandbox, Limits

    candidates = (BubblewrapSandbox(), DockerSandbox())
    backends = [b for b in candidates if b.available()]
    skipped = [f"{b.name} ({b.why_unavailable()})" for b in candidates if not b.available()]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "test_one.py").write_text("def test_one():\n    assert True\n")
        print(f"[{label}]")
        print(f"{'program':<18} {'runner':<12} {'median s':>9} {'max s':>7} {'overhead s':>11}")
        for name, argv in PROGRAMS.items():
            plain_argv = [sys.executable, *argv[1:]] if argv[0] == "python" else argv

            def plain(plain_argv=plain_argv):
                subprocess.run(plain_argv, cwd=work, capture_output=True, check=True)

            baseline = timed(plain, runs)
            base_median = statistics.median(baseline)
            print(
                f"{name:<18} {'subprocess':<12} {base_median:>9.3f} {max(baseline):>7.3f} {'(baseline)':>11}"
            )
            for backend in list(backends):

                def sandboxed(backend=backend, argv=argv):
                    result = backend.run(work, argv, limits=Limits(wall_seconds=60))
                    assert result.exit_code == 0, result

                try:
                    sandboxed()  # first use: image build, probes
                except Exception as exc:  # noqa: BLE001 - an old revision may fail here: report, go on
                    skipped.append(f"{backend.name} ({type(exc).__name__}: {str(exc).splitlines()[0]})")
                    backends.remove(backend)
                    continue
                times = timed(sandboxed, runs)
                median = statistics.median(times)
                print(
                    f"{name:<18} {backend.name:<12} {median:>9.3f} {max(times):>7.3f} "
                    f"{median - base_median:>+11.3f}"
                )
    if skipped:
        print("not measured:", "; ".join(skipped))


def measure_revision(ref: str, runs: int) -> None:
    """Run this script against the ``tools`` package of git revision ``ref``, in a child process."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "tools"], capture_output=True, check=True
    ).stdout
    with tempfile.TemporaryDirectory(prefix="evorag-bench-ref-") as tree:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        subprocess.run(
            [sys.executable, __file__, "--runs", str(runs), "--tree", tree, "--label", f"git {ref}"],
            env=env,
            check=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--ref", help="also measure the sandbox of this git revision")
    parser.add_argument("--tree", help=argparse.SUPPRESS)  # internal: import tools from here
    parser.add_argument("--label", default="working tree", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, args.tree or str(ROOT))
    measure(args.runs, args.label)
    if args.ref:
        print()
        measure_revision(args.ref, args.runs)


if __name__ == "__main__":
    main()
