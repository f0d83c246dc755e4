"""The tests gate's runner: copied into the sandbox workdir and run there (standard library only).

It reads a plan from stdin, runs pytest once per planned run in a child process, keeps each run's JUnit XML
and the tail of its output, and prints, as its very last line block, one frame holding the results:

    <nonce>-BEGIN
    <base64 of zlib of JSON {"runs": [{"name", "exit_code", "finished", "junit"|null, "junit_too_large",
                                        "coverage"?: {"percent", "statements", "missing"} | {"error"} | null}]}>
    <nonce>-END

Why it is built this way (see ``evorag.tools.tests_gate`` for the whole threat model):
- The nonce arrives on stdin and lives only in this process's memory; the children get /dev/null as stdin,
  their own pipes as stdout/stderr, and this process makes itself non-dumpable, so that code under test cannot
  read the nonce from /proc and print a frame of its own.
- Each run's JUnit XML is read into memory as soon as its pytest exits, before the next run starts: the
  candidate's own tests (second run) cannot rewrite the result of the generated edge cases (first run).
- A run counts as finished only if pytest reached its normal end (``tools/gate_plugin.py`` says so on a
  pipe): a test that forges a result file and then ends the process early is caught by that.
- A run the plan asks to measure runs pytest under coverage.py (only the planned file, tool.py, is measured);
  coverage writes its data file when the process ends, named with a random suffix in parallel mode, and the
  runner accepts exactly one such file: a data file the tests forged in advance makes two, and no figure.
  The figure is only as honest as the tests' own outcome: code that tampers with the tracer from inside the
  process (frames, sys, gc) is HIGH risk in the code gate, whose tests run only after a human approved them.
- The children's output is drained and cut here, so a flood of output cannot push the frame out of the
  sandbox's output limit (the host finds no frame then, and the gate fails closed).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zlib

OUTPUT_TAIL_BYTES = 12_000
MAX_JUNIT_BYTES = 2_000_000
PLUGIN = "_evorag_gate_plugin"  # tools/gate_plugin.py, copied next to this file
COVERAGE_DATA = ".coverage"
PYTEST_OPTIONS = [
    "-q", "-x", "--no-header", "-p", "no:cacheprovider", "--confcutdir", "/work", "-o", "junit_family=xunit2",
    "-o", "junit_logging=no",
]


def _not_dumpable() -> None:
    """PR_SET_DUMPABLE 0: /proc/<this pid>/mem, fd and environ become unreadable to the code under test."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)
    except Exception:  # noqa: BLE001, S110 - best effort: the nonce check still fails closed without it
        pass


def _run(files: list[str], coverage: str | None = None) -> dict:
    results = tempfile.mkdtemp(prefix="evorag-results-")
    junit_path = os.path.join(results, "junit.xml")
    argv = [sys.executable, "-m", "pytest", *PYTEST_OPTIONS, "-p", PLUGIN, "--junitxml", junit_path, *files]
    if coverage:
        # Parallel mode: coverage names its data file with a random suffix only when it saves it, at the end.
        argv[1:3] = ["-m", "coverage", "run", "--parallel-mode", "--data-file", os.path.join(results, COVERAGE_DATA),
                     "--include", coverage, "-m", "pytest"]
    # The plugin writes "finished" here after pytest's normal end (after the JUnit XML is written).
    finished_read, finished_write = os.pipe()
    env = {**os.environ, "EVORAG_GATE_FD": str(finished_write)}
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             cwd="/work", close_fds=True, pass_fds=(finished_write,), env=env,
                             start_new_session=True)
    os.close(finished_write)
    tail = bytearray()
    for chunk in iter(lambda: child.stdout.read(65536), b""):
        tail += chunk
        del tail[:-OUTPUT_TAIL_BYTES]
    exit_code = child.wait()
    try:
        os.killpg(child.pid, signal.SIGKILL)  # whatever the run left behind in its session
    except OSError:
        pass
    os.set_blocking(finished_read, False)
    try:
        finished = os.read(finished_read, 64).startswith(b"finished")
    except OSError:
        finished = False
    os.close(finished_read)
    junit, too_large = None, False
    try:
        with open(junit_path, "rb") as handle:
            data = handle.read(MAX_JUNIT_BYTES + 1)
        too_large = len(data) > MAX_JUNIT_BYTES
        junit = None if too_large else data.decode("utf-8", errors="replace")
    except OSError:
        pass
    measured = _coverage(results, coverage) if coverage and finished else None
    shutil.rmtree(results, ignore_errors=True)
    sys.stdout.write(tail.decode("utf-8", errors="replace"))
    sys.stdout.write("\n")
    sys.stdout.flush()
    outcome = {"exit_code": exit_code, "finished": finished, "junit": junit, "junit_too_large": too_large}
    if coverage:
        outcome["coverage"] = measured
    return outcome


def _coverage(results: str, include: str) -> dict:
    """The coverage of ``include`` from the run's one data file: {"percent", "statements", "missing"} or
    {"error"}. A second data file means the tests wrote one of their own: no figure then (fail closed)."""
    found = [name for name in os.listdir(results) if name.startswith(COVERAGE_DATA + ".")]
    if len(found) != 1:
        return {"error": "no coverage data" if not found else "more than one coverage data file"}
    report = os.path.join(results, "coverage.json")
    done = subprocess.run([sys.executable, "-m", "coverage", "json", "--data-file", os.path.join(results, found[0]),
                           "--include", include, "-o", report, "-q"], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=120, check=False)
    try:
        with open(report, encoding="utf-8") as handle:
            data = json.load(handle)
        totals = data["totals"]
        missing = sorted({line for file in data["files"].values() for line in file["missing_lines"]})
        return {"percent": float(totals["percent_covered"]), "statements": int(totals["num_statements"]),
                "missing": missing[:50]}
    except (OSError, ValueError, KeyError, TypeError):
        return {"error": (done.stderr or done.stdout or b"no report").decode("utf-8", "replace").strip()[-300:]}


def main() -> None:
    plan = json.loads(sys.stdin.read())
    nonce = str(plan["nonce"])
    _not_dumpable()
    runs = []
    for run in plan["runs"]:
        outcome = _run([str(f) for f in run["files"]], str(run["coverage"]) if run.get("coverage") else None)
        outcome["name"] = str(run["name"])
        runs.append(outcome)
        if outcome["exit_code"] != 0:
            break  # the gate fails on this run already; a second one would only cost time
    payload = base64.b64encode(zlib.compress(json.dumps({"runs": runs}).encode())).decode()
    sys.stdout.write(f"\n{nonce}-BEGIN\n{payload}\n{nonce}-END\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
