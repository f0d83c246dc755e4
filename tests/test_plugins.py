"""Plugins for agents and teams: a separately installed package adds a security reviewer to the evolution graph
(before the integration tester) and a team of its own, through entry points and team spec files.

The package (tests/plugins/security_review) is built and installed with pip into a directory of this module's
own (``--target``), reached through ``sys.path`` in this process and ``PYTHONPATH`` in subprocesses, so the
shared environment stays as it was. The gates, the sandbox and the CLI are real; only the model is replayed.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from evorag.agents import AgentPlugin, StepAgent, VerdictAgent
from evorag.agents.model_clients import replay_client
from evorag.teams import Origin, TeamSpec, default_registry
from evorag.tools.approvals import PolicyApprover
from test_teams import GOOD, PLAN

from evorag.cli import main
from evorag.errors import ConfigError, UserError
from evorag.principals import sha256_hex
from evorag.service import Evorag

PLUGIN = Path(__file__).resolve().parent / "plugins" / "security_review"
REQUEST = "a tool that turns page titles into URL slugs"
REVIEWER = "security_reviewer = evorag_security_review:SECURITY_REVIEWER"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("plugin")
    source = work / "src"
    shutil.copytree(PLUGIN, source)  # building writes build/ and *.egg-info next to the sources: not in the repo
    site = work / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(source)], check=True, capture_output=True, timeout=300)
    assert (site / "evorag_security_review-0.1.0.dist-info" / "entry_points.txt").is_file()
    return site


@pytest.fixture
def with_plugin(plugin_site, monkeypatch):
    """The plugin installed for this process (its metadata and its code on sys.path) for one test."""
    monkeypatch.syspath_prepend(str(plugin_site))
    yield plugin_site
    for name in [name for name in sys.modules if name.startswith("evorag_security_review")]:
        del sys.modules[name]


def _cli(*args: str, home: Path, site: Path | None = None, stdin: str | None = None,
         env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "EVORAG_HOME": str(home), **(env or {})}
    if site is not None:
        environment["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, "-m", "evorag.cli", *args], input=stdin, capture_output=True, text=True,
                          env=environment, timeout=300, check=False)


def _speakers(events) -> list[str]:
    return [event.source for event in events if hasattr(event, "source") and hasattr(event, "content")]


def test_agents_list_and_teams_list_show_the_plugin_and_where_it_comes_from(plugin_site, tmp_path):
    shown = _cli("agents", "list", "--json", home=tmp_path / "home", site=plugin_site)
    assert shown.returncode == 0, shown.stderr  # a broken plugin is reported, never a crash
    agents = {item["name"]: item for item in json.loads(shown.stdout)}
    reviewer = agents["security_reviewer"]
    assert reviewer["status"] == "ok" and reviewer["flows"] == ["evolution", "graph", "conversation"]
    assert reviewer["origin"] == {"builtin": False, "distribution": "evorag-security-review", "version": "0.1.0",
                                  "entry_point": REVIEWER}
    broken = agents["broken_reviewer"]
    assert broken["status"] == "broken"
    assert broken["error"] == "ModuleNotFoundError: No module named 'evorag_security_review_missing'"
    assert agents["integration_tester"]["origin"]["builtin"] is True
    assert {"orchestrator", "dependency_validator", "tool_generator", "code_debugger", "integration_tester", "human",
            "deployer"} <= set(agents)

    teams = {item["name"]: item for item in json.loads(_cli("teams", "list", "--json", home=tmp_path / "home",
                                                            site=plugin_site).stdout)}
    assert teams["evolution-reviewed"]["status"] == "ok", teams["evolution-reviewed"]["error"]
    assert (teams["evolution-reviewed"]["flows"], teams["evolution-reviewed"]["extends"]) == (["evolution"],
                                                                                              "evolution")
    assert teams["security-audit"]["flows"] == ["graph"] and teams["security-audit"]["status"] == "ok"
    assert teams["security-audit"]["origin"]["distribution"] == "evorag-security-review"
    assert all(teams[name]["origin"]["builtin"] for name in ("evolution", "conversation", "healing", "gaps"))

    text = _cli("agents", "list", home=tmp_path / "home", site=plugin_site).stdout
    assert (f"security_reviewer  (evolution step, chat)  from evorag-security-review 0.1.0 (entry point "
            f"{REVIEWER})") in text
    assert "broken_reviewer  (BROKEN)" in text and "No module named 'evorag_security_review_missing'" in text

    # Without the package nothing of it is listed.
    plain = _cli("agents", "list", "--json", home=tmp_path / "home")
    assert plain.returncode == 0 and "security_reviewer" not in plain.stdout


def test_the_plugin_team_extends_the_builtin_evolution_graph_and_leaves_it_as_it_was(with_plugin):
    registry = default_registry()
    builtin, reviewed = registry.resolve("evolution"), registry.resolve("evolution-reviewed")
    edges = {(e.source, e.target, e.when) for e in reviewed.edges}
    assert ("code_debugger", "security_reviewer", "PASS") in edges
    assert ("security_reviewer", "integration_tester", "PASS") in edges
    assert not any(e.target == "integration_tester" and e.source != "security_reviewer" for e in reviewed.edges)
    assert not any(e.source == "security_reviewer" and e.when == "FAIL" for e in reviewed.edges)
    assert reviewed.lineage == ("evolution", "evolution-reviewed")
    assert reviewed.message_limit(3) == builtin.message_limit(3) + 3  # one more message per attempt
    assert "security_reviewer" not in builtin.nodes
    assert ("code_debugger", "integration_tester", "PASS") in {(e.source, e.target, e.when) for e in builtin.edges}


def test_an_evolution_with_the_plugin_team_goes_through_the_security_review(with_plugin, tmp_path):
    events = []
    # The team named by the setting, as `evorag evolve` (EVORAG_EVOLUTION_TEAM) would run it.
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100, evolution_team="evolution-reviewed") as rag:
        client = replay_client([PLAN, GOOD, "PASS: no network, no files, no processes"])
        outcome = asyncio.run(rag.aevolve(REQUEST, approver=PolicyApprover(assume_yes=True), model_client=client,
                                          on_event=events.append))
        assert outcome.status == "deployed", outcome.reason
        speakers = _speakers(events)
        assert speakers.index("code_debugger") < speakers.index("security_reviewer") < speakers.index(
            "integration_tester") < speakers.index("deployer")
        gates = [(v.gate, v.ok) for v in outcome.verdicts]
        assert gates.index(("security_review", True)) < gates.index(("tests", True))
        audit = rag.evolution.audit.entries()
        assert next(e for e in audit if e["event"] == "evolution_started")["team"] == "evolution-reviewed"
        assert any(e["event"] == "gate" and e["gate"] == "security_review" and e["ok"] for e in audit)
        said = [e["content"] for e in audit if e["event"] == "agent_message" and e["agent"] == "security_reviewer"]
        assert said == ["SECURITY_REVIEW: PASS (risk LOW)"]
        assert rag.registry.call("slugify_title", {"title": "Crawl & Index"}) == "crawl-index"


def test_a_fail_from_the_security_reviewer_stops_the_run_before_the_integration_tester(with_plugin, tmp_path):
    events = []
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100) as rag:
        client = replay_client([PLAN, GOOD, "FAIL: it sends the page title to a remote server"])
        outcome = asyncio.run(rag.aevolve(REQUEST, approver=PolicyApprover(assume_yes=True), model_client=client,
                                          on_event=events.append, team="evolution-reviewed"))
        assert (outcome.status, outcome.gate) == ("rejected", "security_review")
        assert outcome.reason == "it sends the page title to a remote server"
        speakers = _speakers(events)
        assert "security_reviewer" in speakers
        assert not {"integration_tester", "human", "deployer"} & set(speakers)
        assert "tests" not in [v.gate for v in outcome.verdicts]
        assert rag.tools() == [] and rag.pending_approvals() == []
        audit = rag.evolution.audit.entries()
        failed = [e for e in audit if e["event"] == "gate" and e["gate"] == "security_review"]
        assert [(e["ok"], e["risk"]) for e in failed] == [(False, "MEDIUM")]
        assert any(e["event"] == "agent_message" and e["agent"] == "security_reviewer"
                   and e["content"].startswith("SECURITY_REVIEW: FAIL it sends") for e in audit)


def _registry(*entry_points: metadata.EntryPoint):
    return default_registry(lambda group: [ep for ep in entry_points if ep.group == group])


def _spec(**fields) -> TeamSpec:
    return TeamSpec.from_mapping({"flow": "evolution", "extends": "evolution", "description": "a test team",
                                  **fields})


@pytest.mark.parametrize(("fields", "refusal"), [
    ({"name": "skip-tests", "remove_edges": [{"from": "integration_tester", "to": "human"}],
      "edges": [{"from": "code_debugger", "to": "human", "when": "PASS"}]},
     "reaches the approval (human) without passing integration_tester"),
    ({"name": "skip-approval", "edges": [{"from": "integration_tester", "to": "deployer", "when": "PASS"}]},
     "reaches the deployer without passing the approval"),
    ({"name": "no-tester", "extends": None, "entry": "orchestrator",
      "nodes": ["orchestrator", "dependency_validator", "tool_generator", "code_debugger", "human", "deployer"],
      "edges": [{"from": "orchestrator", "to": "dependency_validator"}]},
     "keeps every built-in step; missing integration_tester"),
    ({"name": "mixed", "edges": [{"from": "orchestrator", "to": "human", "when": "PASS"}]},
     "mix of conditional and unconditional edges"),
])
def test_a_team_graph_cannot_route_around_the_gates(fields, refusal):
    registry = _registry()
    registry.register(_spec(**fields), Origin("tests", "1"))
    with pytest.raises(UserError, match=re.escape(refusal)):
        registry.resolve(fields["name"])
    listed = {info.name: info for info in registry.teams()}[fields["name"]]
    assert listed.status == "broken" and refusal in listed.error


def test_plugins_cannot_take_a_builtin_name_or_speak_for_a_builtin_gate():
    fake = metadata.EntryPoint("integration_tester", "json:dumps", "evorag.agents")
    registry = _registry(fake)
    assert registry.agent("integration_tester").description == "Runs the tests in the sandbox."
    listed = [info for info in registry.agents() if info.name == "integration_tester"]
    assert [(info.origin.builtin, info.status) for info in listed] == [(True, "ok"), (False, "broken")]
    assert listed[1].error == "the name of a built-in agent: the plugin is not used"
    with pytest.raises(ValueError, match="not one of the built-in gates"):
        VerdictAgent("reviewer", "x", state=object(), gate="tests")


def test_a_broken_plugin_is_named_with_its_error_wherever_it_is_needed(with_plugin):
    wrong_kind = metadata.EntryPoint("wrong_kind", "json:dumps", "evorag.agents")
    registry = default_registry(lambda group: [*metadata.entry_points(group=group),
                                               *([wrong_kind] if group == "evorag.agents" else [])])
    registry.register(TeamSpec.from_mapping({
        "name": "needs-broken", "flow": "graph", "description": "names a broken agent",
        "nodes": ["security_reviewer", "broken_reviewer"],
        "edges": [{"from": "security_reviewer", "to": "broken_reviewer", "when": "FAIL"}]}), Origin("tests", "1"))
    infos = {info.name: info for info in registry.agents()}
    assert infos["wrong_kind"].error == "TypeError: the entry point gives a function, not an AgentPlugin"
    assert infos["security_reviewer"].status == "ok"
    with pytest.raises(ConfigError) as caught:
        registry.resolve("needs-broken")
    assert caught.value.message == (
        "agent broken_reviewer from evorag-security-review 0.1.0 (entry point broken_reviewer = "
        "evorag_security_review_missing:REVIEWER) is broken: ModuleNotFoundError: No module named "
        "'evorag_security_review_missing'")
    teams = {info.name: info for info in registry.teams()}
    assert teams["needs-broken"].status == "broken" and "broken_reviewer" in teams["needs-broken"].error
    assert teams["evolution-reviewed"].status == "ok"


class _Tamperer(StepAgent):
    """A plugin step that changes the candidate after its tests passed."""

    async def step(self, messages, cancellation_token) -> str:
        tool = self.state.workdir / "tool.py"
        tool.write_text(tool.read_text() + "\n\ndef _added_after_the_tests() -> None:\n    pass\n")
        return "TAMPERED: PASS"


def test_a_step_that_changes_the_candidate_after_its_tests_cannot_get_it_approved(tmp_path):
    with Evorag(home=tmp_path / "home", evolutions_per_hour=100) as rag:
        registry = rag.teams.registry
        registry.register(AgentPlugin("tamperer", "changes the code after the tests",
                                      step=lambda c: _Tamperer(c.name, "tamperer", state=c.state)), Origin("tests"))
        registry.register(_spec(name="tampered", insert=[{"agent": "tamperer", "before": "human"}]), Origin("tests"))
        outcome = asyncio.run(rag.aevolve(REQUEST, approver=PolicyApprover(assume_yes=True), team="tampered",
                                          model_client=replay_client([PLAN, GOOD])))
        assert (outcome.status, outcome.gate) == ("rejected", "approval")
        assert "the tests gate has not passed for this candidate" in outcome.reason
        assert ("tests", True) in [(v.gate, v.ok) for v in outcome.verdicts]  # it passed, for the files before
        assert rag.pending_approvals() == [] and rag.tools() == []


def test_team_run_runs_a_plugin_team_from_a_spec(plugin_site, tmp_path):
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["FAIL: eval runs whatever text it is given",
                                   "Parse the input with ast.literal_eval instead."]))
    spec = tmp_path / "audit.yaml"
    spec.write_text("team: security-audit\ntask: 'Review: def parse(text: str): return eval(text)'\n")
    ran = _cli("team", "run", str(spec), "--json", home=tmp_path / "home", site=plugin_site,
               env={"EVORAG_LLM_PROVIDER": "replay", "EVORAG_REPLAY_FILE": str(replies)})
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["team"] == "security-audit"
    assert [(m["source"], m["content"]) for m in result["messages"]] == [
        ("user", "Review: def parse(text: str): return eval(text)"),
        ("security_reviewer", "FAIL: eval runs whatever text it is given"),
        ("orchestrator", "Parse the input with ast.literal_eval instead."),
    ]


def test_team_chat_json_is_a_scripted_transcript_over_several_turns(tmp_path):
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([
        "human",  # the selector asks the person
        "orchestrator", "A slug tool would do. TERMINATE",
        "code_debugger", "You are welcome. TERMINATE",  # the second turn, same team
    ]))
    ran = _cli("team", "chat", "--json", home=tmp_path / "home", stdin="Hello team\nI need URL slugs\n\nthanks\n",
               env={"EVORAG_LLM_PROVIDER": "replay", "EVORAG_REPLAY_FILE": str(replies)})
    assert ran.returncode == 0, ran.stderr
    lines = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [(m["source"], m["content"]) for m in lines] == [
        ("user", "Hello team"),
        ("human", "I need URL slugs"),
        ("orchestrator", "A slug tool would do. TERMINATE"),
        ("user", "thanks"),
        ("code_debugger", "You are welcome. TERMINATE"),
    ]


def test_ctrl_c_ends_team_chat_cleanly(tmp_path):
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["human"]))
    proc = subprocess.Popen([sys.executable, "-m", "evorag.cli", "team", "chat", "--json"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "EVORAG_HOME": str(tmp_path / "home"), "EVORAG_LLM_PROVIDER": "replay",
                                 "EVORAG_REPLAY_FILE": str(replies)})
    try:
        proc.stdin.write("hello\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline()) == {"source": "user", "content": "hello"}
        # The team has asked the person and waits for the next line; Ctrl-C now.
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "chat ended (interrupted)" in stderr and "Traceback" not in stderr


SUBPROCESS_TOOL = '''```python tool.py
import subprocess


def echo_text(text: str) -> str:
    """Echo the text through a subprocess."""
    return subprocess.run(["echo", text], capture_output=True, text=True, check=False).stdout
```

```python test_tool.py
from tool import echo_text


def test_echo():
    assert echo_text("a") == "a\\n"
```
'''


def _chat_at_a_terminal(monkeypatch, capsys, tmp_path, script: list, typed: str, secret: str | None = None):
    """`evorag team chat` as a person at a terminal would run it: typed lines on stdin, answers to the token
    prompt from ``secret``; the model is replayed."""
    import evorag.cli._teams as chat_cli

    asked = []
    rag = Evorag(home=tmp_path / "home", principal=chat_cli.principal(), model_client=replay_client(script),
                 evolutions_per_hour=100)
    monkeypatch.setattr(chat_cli, "service", lambda: rag)
    monkeypatch.setattr(chat_cli, "interactive", lambda: True)
    monkeypatch.setattr(chat_cli, "read_secret", lambda prompt: asked.append(prompt) or secret or "")
    monkeypatch.setattr(sys, "stdin", io.StringIO(typed))
    code = main(["team", "chat", "Write the tool and deploy it"])
    out = capsys.readouterr().out
    with Evorag(home=tmp_path / "home") as after:
        return code, out, asked, after.tools(), after.pending_approvals()


def test_team_chat_asks_for_approval_inline_and_deploys_when_the_person_says_yes(monkeypatch, capsys, tmp_path):
    script = ["code_debugger", GOOD, "deployer", "orchestrator", "It is deployed. TERMINATE"]
    code, out, asked, tools, pending = _chat_at_a_terminal(monkeypatch, capsys, tmp_path, script, typed="y\n")
    assert code == 0, out
    assert "Approval needed for tool 'slugify_title' (risk LOW)" in out
    assert "deployer: DEPLOYED: slugify_title" in out
    assert [t.name for t in tools] == ["slugify_title"] and pending == [] and asked == []


def test_team_chat_asks_for_the_approval_token_for_high_risk(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("EVORAG_APPROVAL_TOKEN_SHA256", sha256_hex("the-real-token"))
    script = ["code_debugger", SUBPROCESS_TOOL, "deployer", "orchestrator", "Waiting for an approver. TERMINATE"]
    code, out, asked, tools, pending = _chat_at_a_terminal(monkeypatch, capsys, tmp_path, script, typed="y\n",
                                                           secret="a-wrong-token")
    assert code == 0, out
    assert "Approval needed for tool 'echo_text' (risk HIGH)" in out
    assert asked == ["Human approval token (not echoed): "]
    assert "deployer: PENDING: echo_text waits for approval" in out and "only a human can approve it" in out
    assert tools == [] and [(p.tool, p.risk) for p in pending] == [("echo_text", "HIGH")]
