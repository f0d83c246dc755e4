"""Running pip for the dependency gate and the tool environments: one child process, never a shell.

pip runs with this interpreter (``python -m pip``) in an empty scratch directory (so that no local path is
taken for a package), with no prompt and no version check. Callers always pass ``--only-binary=:all:``: pip
then never builds a source distribution, so no package's ``setup.py`` ever runs on the host.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from evorag.errors import ExternalError


class PipTimeout(ExternalError):
    """pip did not finish in time (usually: the package index is unreachable)."""


def run_pip(args: list[str], *, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m pip ARGS`` with captured text output. Raises PipTimeout after ``timeout`` seconds."""
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PIP_REQUIRE_VIRTUALENV", None)  # --target and --dry-run install into no environment
    with tempfile.TemporaryDirectory(prefix="evorag-pip-") as scratch:
        try:
            return subprocess.run(
                [sys.executable, "-m", "pip", *args],
                check=False,
                cwd=cwd or scratch,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise PipTimeout(
                f"pip timed out after {timeout:g} s (is the package index reachable?)",
                hint="check the network or pip's index settings (PIP_INDEX_URL, pip.conf)",
            ) from None


def last_error(stderr: str) -> str:
    """pip's last ERROR line (else its last line), for a one-line message."""
    errors = [line.removeprefix("ERROR:").strip() for line in stderr.splitlines() if line.startswith("ERROR:")]
    return errors[-1] if errors else (stderr.strip().splitlines() or ["pip failed"])[-1].strip()
