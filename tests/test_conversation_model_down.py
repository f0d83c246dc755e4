"""A conversation team (AssistantAgent based) whose model is down ends like `evolve` does: through the real CLI,
against a real closed port, one line naming the setting to fix and exit 3, no traceback, no API key."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

SECRET = "sk-evorag-conversation-key-8d2e4b"


def test_team_chat_with_the_model_endpoint_refusing_ends_in_one_line_with_exit_3(evorag_home):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    env = {**os.environ, "EVORAG_LLM_PROVIDER": "openai", "EVORAG_LLM_BASE_URL": url, "EVORAG_LLM_API_KEY": SECRET}
    result = subprocess.run([sys.executable, "-m", "evorag.cli", "team", "chat", "which tool counts words?", "--json"],
                            capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300,
                            check=False)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: the agent team's model failed, the conversation with team conversation "
                               "stopped: cannot reach the model endpoint " + url), lines[0]
    assert "EVORAG_LLM_BASE_URL" in lines[0]
    assert SECRET not in result.stderr + result.stdout
