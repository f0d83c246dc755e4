"""The tests gate's runner: copied into the sandbox workdir and run there (standard library only).

It reads a plan from stdin, runs pytest once per planned run in a child process, keeps each run's JUnit XML
and the tail of its output, and prints, as its very last line block, one frame holding the results:

    <nonce>-BEGIN
    <base64 of zlib of JSON {"runs": [{"name", "exit_code", "finished", "junit"|null, "junit_too_large"}]}>
    <nonce>-END

Why it is built this way (see ``evorag.tools.tests_gate`` for the whole threat model):
- The nonce arrives on stdin and lives only in this process's memory; the children get /dev/null as stdin,
  their own pipes as stdout/stderr, and this process makes itself non-dumpable, so that code under test cannot
  read the nonce from /proc and print a frame of its own.
- Each run's JUnit XML is read into memory as soon as its pytest exits, before the next run starts: the
  candidate's own tests (second run) cannot rewrite the result of the generated edge cases (first run).
- A run counts as finished only if pytest reached its normal end (``tools/gate_plugin.py`` says so on a
  pipe): a test that forges a result file and then ends the process early is caught by that.
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


def _run(files: list[str]) -> dict:
    results = tempfile.mkdtemp(prefix="evorag-results-")
    junit_path = os.path.join(results, "junit.xml")
    argv = [sys.executable, "-m", "pytest", *PYTEST_OPTIONS, "-p", PLUGIN, "--junitxml", junit_path, *files]
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
    shutil.rmtree(results, ignore_errors=True)
    sys.stdout.write(tail.decode("utf-8", errors="replace"))
    sys.stdout.write("\n")
    sys.stdout.flush()
    return {"exit_code": exit_code, "finished": finished, "junit": junit, "junit_too_large": too_large}


def main() -> None:
    plan = json.loads(sys.stdin.read())
    nonce = str(plan["nonce"])
    _not_dumpable()
    runs = []
    for run in plan["runs"]:
        outcome = _run([str(f) for f in run["files"]])
        outcome["name"] = str(run["name"])
        runs.append(outcome)
        if outcome["exit_code"] != 0:
            break  # the gate fails on this run already; a second one would only cost time
    payload = base64.b64encode(zlib.compress(json.dumps({"runs": runs}).encode())).decode()
    sys.stdout.write(f"\n{nonce}-BEGIN\n{payload}\n{nonce}-END\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
