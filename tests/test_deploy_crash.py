"""SIGKILL during deploys: the plugins repository is always at a consistent checkpoint afterwards."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from evorag.tools.plugins import PluginRepository

CANDIDATES = Path(__file__).parent / "candidates"


@pytest.mark.slow
def test_killed_deploys_leave_a_consistent_checkpoint(tmp_path):
    env = {**os.environ, "EVORAG_HOME": str(tmp_path / "home"), "EVORAG_EVOLUTIONS_PER_HOUR": "1000",
           "EVORAG_RESOLVE_DEPENDENCIES": "false"}
    command = [sys.executable, "-m", "evorag.cli", "tools", "add", str(CANDIDATES / "good_word_count"),
               "--yes", "--json"]
    rng = random.Random(3)
    killed = 0
    for _ in range(8):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 6.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait()
        root = tmp_path / "home" / "plugins"
        if not (root / ".git").exists():
            continue
        repository = PluginRepository(root)  # opening repairs an interrupted deploy
        assert not repository.repo.is_dirty(untracked_files=True)
        head_tools = repository.current().tools
        assert [m.name for m in repository.manifests()] == head_tools
        for name in head_tools:
            assert (repository.tools_dir / name / "tool.py").is_file()
            json.loads((repository.tools_dir / name / "manifest.json").read_text())
    assert killed >= 2, "the deploys finished too fast to be interrupted"
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and json.loads(done.stdout)["status"] == "deployed"
