"""The tests gate cannot be faked, and a HIGH-risk candidate's code runs only after a human approves it.

Every fake below sits next to an honest test that FAILS (the tool is wrong on purpose), so a fake that worked
would turn the verdict into a pass. The fakes run for real in the sandbox (``run_tests(..., approved=True)``
skips only the "HIGH risk waits for a human" deferral, which has its own tests at the end).
"""

from __future__ import annotations

import base64
import json
import textwrap
import zlib
from pathlib import Path

import pytest
from evorag.tools import tests_gate
from evorag.tools.approvals import PolicyApprover
from evorag.tools.code_checks import check_code
from evorag.tools.evolution import edge_cases

from evorag.principals import Principal, Role
from evorag.service import Evorag

# Wrong on purpose: it does not upper-case. The generated edge cases still pass (it never raises).
WRONG_TOOL = '''"""Shout a text."""


def shout(text: str) -> str:
    """Return ``text`` in upper case."""
    return text
'''
RIGHT_TOOL = WRONG_TOOL.replace("return text", "return text.upper()")
HONEST_FAILING_TEST = '''

def test_shouts():
    from tool import shout

    assert shout("abc") == "ABC"
'''


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    with Evorag(home=tmp_path_factory.mktemp("gates-home"), evolutions_per_hour=1000) as rag:
        yield rag.evolution


def candidate(root: Path, files: dict[str, str], tool: str = WRONG_TOOL) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tool.py").write_text(tool)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text))
    return root


def run_gate(pipeline, path: Path):
    signature = check_code((path / "tool.py").read_text()).function
    return pipeline.run_tests(path, signature.name, signature.json_schema, approved=True)


# Controls: the gate can pass and can fail


def test_an_honest_candidate_passes_with_every_test_counted(pipeline, tmp_path):
    path = candidate(tmp_path / "c", {"test_shout.py": HONEST_FAILING_TEST}, tool=RIGHT_TOOL)
    verdict = run_gate(pipeline, path)
    assert verdict.ok, verdict.reason
    # 1 own test + the generated edge cases (base case + 5 string values)
    assert verdict.details["passed"] == 1 + len(edge_cases(check_code(RIGHT_TOOL).function.json_schema))


def test_an_honestly_failing_test_fails_the_gate(pipeline, tmp_path):
    verdict = run_gate(pipeline, candidate(tmp_path / "c", {"test_shout.py": HONEST_FAILING_TEST}))
    assert not verdict.ok
    assert verdict.reason.startswith("FAILED test_shout.py::test_shouts - AssertionError")


# Fakes that end the process, skip, deselect or hide tests: refused at run time

RUNTIME_FAKES = {
    "os_exit_at_import": "import os\nos._exit(0)\n" + HONEST_FAILING_TEST,
    "sys_exit_at_import": "import sys\nsys.exit(0)\n" + HONEST_FAILING_TEST,
    "sys_exit_in_the_test": HONEST_FAILING_TEST.replace('assert shout("abc")', 'import sys\n    sys.exit(0)\n'
                                                                                 '    assert shout("abc")'),
    "keyboard_interrupt_in_the_test": HONEST_FAILING_TEST.replace('assert shout("abc")', 'raise KeyboardInterrupt\n'
                                                                                           '    assert shout("abc")'),
    "kill_itself": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n" + HONEST_FAILING_TEST,
    "delete_the_test_at_import": HONEST_FAILING_TEST + "\ndel test_shouts\n",
    "replace_the_test_by_a_non_test": HONEST_FAILING_TEST + "\ntest_shouts = 42\n",
    "forge_junit_then_exit": '''
        import glob, os, sys
        path = sys.argv[sys.argv.index("--junitxml") + 1]
        cases = "".join('<testcase classname="test_fake" name="test_shouts" time="0.1"/>' for _ in range(1))
        with open(path, "w") as handle:
            handle.write('<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="1" failures="0" '
                         'errors="0" skipped="0"><testcase classname="test_fake" name="test_shouts" time="0.1"/>'
                         '</testsuite></testsuites>')
        os._exit(0)
    ''' + HONEST_FAILING_TEST,
    "forge_junit_and_let_pytest_finish": '''
        import sys
        path = sys.argv[sys.argv.index("--junitxml") + 1]
        with open(path, "w") as handle:
            handle.write('<testsuites><testsuite><testcase classname="test_fake" name="test_shouts"/>'
                         '</testsuite></testsuites>')
    ''' + HONEST_FAILING_TEST,
    "print_a_fake_result_frame": '''
        print("0" * 32 + "-BEGIN")
        print("eJyrVirKz0lVslIqSizPzEvPz1GqBQBDNwbn")
        print("0" * 32 + "-END")
        print("1 passed in 0.01s")
    ''' + HONEST_FAILING_TEST,
}


@pytest.mark.parametrize("fake", sorted(RUNTIME_FAKES))
def test_a_fake_in_the_test_file_is_refused(pipeline, tmp_path, fake):
    path = candidate(tmp_path / "c", {"test_fake.py": RUNTIME_FAKES[fake]})
    verdict = run_gate(pipeline, path)
    assert not verdict.ok, f"{fake} faked a pass: {verdict.details.get('output')}"
    assert verdict.reason


def test_a_conftest_pytest_ini_or_sitecustomize_in_the_candidate_never_runs(pipeline, tmp_path):
    path = candidate(tmp_path / "c", {
        "test_shout.py": HONEST_FAILING_TEST,
        "conftest.py": "import os\nos._exit(0)\n\ndef pytest_collection_modifyitems(items):\n    items.clear()\n",
        "pytest.ini": "[pytest]\naddopts = -p no:junitxml --co\n",
        "sitecustomize.py": "import os\nos._exit(0)\n",
        "evorag.pth": "import os; os._exit(0)\n",
    })
    verdict = run_gate(pipeline, path)
    assert not verdict.ok and verdict.reason.startswith("FAILED test_shout.py::test_shouts")


def test_an_output_flood_cannot_hide_the_result(pipeline, tmp_path):
    flood = 'import sys\nsys.stdout.write("passed " * 400_000)\n'
    failing = candidate(tmp_path / "failing", {"test_flood.py": flood + HONEST_FAILING_TEST})
    verdict = run_gate(pipeline, failing)
    assert not verdict.ok and verdict.reason.startswith("FAILED test_flood.py::test_shouts")
    passing = candidate(tmp_path / "passing", {"test_flood.py": flood + HONEST_FAILING_TEST}, tool=RIGHT_TOOL)
    assert run_gate(pipeline, passing).ok


# Fakes refused before anything runs: they reach the test runner itself

STATIC_FAKES = {
    "module_level_skip": "import pytest\npytest.skip('not today', allow_module_level=True)\n" + HONEST_FAILING_TEST,
    "skip_mark": "import pytest\npytestmark = pytest.mark.skip\n" + HONEST_FAILING_TEST,
    "xfail_mark": "import pytest\n\n@pytest.mark.xfail\n" + HONEST_FAILING_TEST.lstrip(),
    "collection_hook_deselects_everything": HONEST_FAILING_TEST + '''

def pytest_collection_modifyitems(config, items):
    config.hook.pytest_deselected(items=list(items))
    items.clear()
''',
    "pytest_plugins": "pytest_plugins = ['evil']\n" + HONEST_FAILING_TEST,
    "monkeypatch_fixture_patches_reporting": '''
def test_shouts(monkeypatch):
    monkeypatch.setattr("_pytest.reports.BaseReport.passed", property(lambda self: True))
    from tool import shout

    assert shout("abc") == "ABC"
''',
    "request_fixture_reaches_the_session": '''
def test_shouts(request):
    request.session.shouldstop = False
    from tool import shout

    assert shout("abc") == "ABC"
''',
    "import_pytest_internals": "import _pytest.reports\n_pytest.reports.BaseReport.failed = False\n"
                               + HONEST_FAILING_TEST,
    "pytest_as_a_value": "import pytest\nrunner = pytest\n" + HONEST_FAILING_TEST,
    "pytest_monkeypatch_class": "from pytest import MonkeyPatch\nMonkeyPatch().setattr('os._exit', print)\n"
                                + HONEST_FAILING_TEST,
    "no_tests_at_all": "X = 1\n",
    "class_with_init": "class TestShout:\n    def __init__(self):\n        pass\n\n    def test_a(self):\n"
                       "        assert False\n",
    "reserved_edge_case_name": None,
    "unparsable": "def test_shouts(:\n",
}


@pytest.mark.parametrize("fake", sorted(STATIC_FAKES))
def test_a_test_file_reaching_the_runner_is_refused_before_it_runs(pipeline, tmp_path, fake):
    name = "test_evorag_edge_cases.py" if STATIC_FAKES[fake] is None else "test_fake.py"
    body = HONEST_FAILING_TEST if STATIC_FAKES[fake] is None else STATIC_FAKES[fake]
    path = candidate(tmp_path / "c", {name: body}, tool=RIGHT_TOOL)  # would pass if it ran honestly
    verdict = run_gate(pipeline, path)
    assert not verdict.ok and verdict.reason
    assert "exit_code" not in verdict.details  # refused statically: the sandbox never ran it


# The result parser: strict, and fails closed


def _frame(nonce: str, runs: list[dict]) -> str:
    payload = base64.b64encode(zlib.compress(json.dumps({"runs": runs}).encode())).decode()
    return f"output\n{nonce}-BEGIN\n{payload}\n{nonce}-END\n"


def _junit(*cases: str) -> str:
    return f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{"".join(cases)}</testsuite></testsuites>'


EXPECTED = [tests_gate.ExpectedTest("test_a", "test_x", 2), tests_gate.ExpectedTest("test_a.TestY", "test_z")]
PASSING = _junit('<testcase classname="test_a" name="test_x[1]"/>', '<testcase classname="test_a" name="test_x[2]"/>',
                 '<testcase classname="test_a.TestY" name="test_z"/>')


def test_a_complete_junit_result_passes():
    verdict = tests_gate.judge_run({"exit_code": 0, "finished": True, "junit": PASSING}, EXPECTED, "own tests")
    assert verdict.ok and verdict.passed == 3


@pytest.mark.parametrize(("run", "reason"), [
    ({"exit_code": 0, "finished": False, "junit": PASSING}, "did not reach its normal end"),
    ({"exit_code": 0, "finished": True, "junit": None}, "wrote no result"),
    ({"exit_code": 1, "finished": True, "junit": PASSING}, "exited with status 1"),
    ({"exit_code": 0, "finished": True, "junit": _junit('<testcase classname="test_a" name="test_x[1]"/>',
                                                         '<testcase classname="test_a.TestY" name="test_z"/>')},
     "test_a.py::test_x did not run (1 of 2"),
    ({"exit_code": 0, "finished": True, "junit": PASSING.replace(
        'name="test_z"/>', 'name="test_z"><skipped message="later"/></testcase>')}, "SKIPPED test_a.py::TestY::test_z"),
    ({"exit_code": 0, "finished": True, "junit": PASSING.replace(
        'name="test_z"/>', 'name="test_z"><error message="boom"/></testcase>')}, "FAILED test_a.py::TestY::test_z - boom"),
    ({"exit_code": 0, "finished": True, "junit": "<testsuites><testcase"}, "does not parse"),
    ({"exit_code": 0, "finished": True, "junit": '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">]>'
                                                 '<testsuites>&a;</testsuites>'}, "declares a DTD"),
    ({"exit_code": 0, "finished": True, "junit": "<html/>"}, "unexpected root"),
    ({"exit_code": 0, "finished": True, "junit": "<testsuites>" + " " * 2_000_001 + "</testsuites>"}, "too large"),
    ({"exit_code": 0, "finished": True, "junit_too_large": True}, "too large"),
    ("not a run", "no result"),
])
def test_an_incomplete_or_malformed_result_fails(run, reason):
    verdict = tests_gate.judge_run(run, EXPECTED, "own tests")
    assert not verdict.ok and reason in verdict.reason


def test_the_generated_edge_cases_must_all_run_exactly():
    edge = [tests_gate.ExpectedTest("test_evorag_edge_cases", "test_edge_case", 2, exact=True)]
    three = _junit(*(f'<testcase classname="test_evorag_edge_cases" name="test_edge_case[k{i}]"/>' for i in range(3)))
    assert not tests_gate.judge_run({"exit_code": 0, "finished": True, "junit": three}, edge, "edge").ok
    two = _junit(*(f'<testcase classname="test_evorag_edge_cases" name="test_edge_case[k{i}]"/>' for i in range(2)))
    assert tests_gate.judge_run({"exit_code": 0, "finished": True, "junit": two}, edge, "edge").ok


def test_only_one_frame_with_the_nonce_counts():
    nonce = "a" * 32
    good = _frame(nonce, [{"name": "own tests"}])
    results, output, problem = tests_gate.extract_frame(good, nonce)
    assert problem is None and results == {"runs": [{"name": "own tests"}]} and nonce not in output
    assert tests_gate.extract_frame(good + good, nonce)[2] == "the test runner's result appeared more than once"
    assert "left no result" in tests_gate.extract_frame(_frame("b" * 32, []), nonce)[2]
    assert "malformed" in tests_gate.extract_frame(f"{nonce}-BEGIN\n!!\n{nonce}-END", nonce)[2]
    bomb = base64.b64encode(zlib.compress(b"[" * 50_000_000)).decode()
    assert "malformed" in tests_gate.extract_frame(f"{nonce}-BEGIN\n{bomb}\n{nonce}-END", nonce)[2]


def test_expected_tests_are_read_from_the_source():
    source = textwrap.dedent('''
        import pytest

        @pytest.mark.parametrize("a", [1, 2, 3])
        @pytest.mark.parametrize("b", (4, 5))
        def test_product(a, b):
            pass

        @pytest.mark.parametrize("a", VALUES)
        def test_unknown_count(a):
            pass

        class TestGroup:
            def test_one(self):
                pass

            def helper(self):
                pass

        def test_product():
            pass
    ''')
    assert tests_gate.expected_tests("test_m.py", source) == [
        tests_gate.ExpectedTest("test_m", "test_product", 1),  # redefined: the last definition counts
        tests_gate.ExpectedTest("test_m", "test_unknown_count", 1),
        tests_gate.ExpectedTest("test_m.TestGroup", "test_one", 1),
    ]
    two = "import pytest\n\n@pytest.mark.parametrize('a', [1, 2, 3])\n@pytest.mark.parametrize('b', (4, 5))\n" \
          "def test_p(a, b):\n    pass\n"
    assert tests_gate.expected_tests("test_m.py", two) == [tests_gate.ExpectedTest("test_m", "test_p", 6)]


# HIGH risk: nothing of the candidate runs before a human approves


class RecordingSandbox:
    """The real sandbox, recording every run (which files it was given, what it printed)."""

    def __init__(self, factory) -> None:
        self.factory = factory
        self.runs: list[dict] = []

    def __call__(self):
        real = self.factory()
        recorder = self

        class Recorded:
            name = real.name

            def run(self, workdir, argv, **kwargs):
                result = real.run(workdir, argv, **kwargs)
                recorder.runs.append({"files": sorted(p.name for p in Path(workdir).iterdir()),
                                      "output": result.stdout + result.stderr})
                return result

        return Recorded()


HIGH_TOOL = '''"""Count lines with the system's wc."""

import subprocess


def line_count(text: str) -> int:
    """Count the lines of ``text`` with ``wc -l``."""
    if not text.strip():
        return 0
    done = subprocess.run(["wc", "-l"], input=text, capture_output=True, text=True, check=False)
    return int(done.stdout.split()[0]) if done.returncode == 0 else text.count("\\n")
'''
CANARY_TEST = '''
import pytest

from tool import line_count


def test_counts_lines():
    print("EVORAG-CANARY-TEST-RAN")
    assert line_count("a\\nb\\n") == 2
    pytest.fail("EVORAG-CANARY-TEST-RAN") if {fail} else None
'''


PERSON = Principal("alice", Role.APPROVER, via="ui", human=True)  # an approver logged in to the UI


@pytest.fixture
def recorded(tmp_path):
    with Evorag(home=tmp_path / "home", evolutions_per_hour=1000) as rag:
        recorder = RecordingSandbox(rag.evolution.sandbox_factory)
        rag.evolution.sandbox_factory = recorder
        yield rag, recorder


def test_a_high_risk_candidate_runs_nothing_before_a_human_approves(recorded, tmp_path):
    rag, sandbox = recorded
    path = candidate(tmp_path / "c", {"test_count.py": CANARY_TEST.format(fail=False)}, tool=HIGH_TOOL)
    outcome = rag.add_tool(path, approver=PolicyApprover(assume_yes=True))
    assert (outcome.status, outcome.risk) == ("pending", "HIGH")
    assert [v.gate for v in outcome.verdicts] == ["code", "dependencies", "compatibility"]
    assert sandbox.runs == []  # not a single sandbox run before the approval
    approval = rag.evolution.approvals.get(outcome.approval_id)
    assert "Tests not run yet" in approval.tests and "tests not run yet" in approval.summary
    assert "EVORAG-CANARY" not in json.dumps(approval.to_dict())

    deployed = rag.decide_approval(outcome.approval_id, approve=True, principal=PERSON)
    assert deployed.status == "deployed", deployed.reason
    # After the approval: its tests, then the call that records its example (tool.py alone).
    assert len(sandbox.runs) == 2 and "test_count.py" in sandbox.runs[0]["files"]
    assert "tool.py" in sandbox.runs[1]["files"] and "test_count.py" not in sandbox.runs[1]["files"]
    tests = next(v for v in deployed.verdicts if v.gate == "tests")
    assert tests.ok and tests.details["passed"] >= 2


def test_an_approved_high_risk_candidate_that_fails_its_tests_never_deploys(recorded, tmp_path):
    rag, sandbox = recorded
    path = candidate(tmp_path / "c", {"test_count.py": CANARY_TEST.format(fail=True)}, tool=HIGH_TOOL)
    outcome = rag.add_tool(path, approver=PolicyApprover(assume_yes=True))
    assert outcome.status == "pending" and sandbox.runs == []
    result = rag.decide_approval(outcome.approval_id, approve=True, principal=PERSON)
    assert (result.status, result.gate) == ("rejected", "tests")
    assert "EVORAG-CANARY-TEST-RAN" in result.reason and len(sandbox.runs) == 1
    assert "line_count" not in [m.name for m in rag.registry.tools()]
    assert not Path(rag.evolution.approvals.get(outcome.approval_id).payload["staged"]).exists()


def test_a_high_risk_test_file_makes_the_candidate_high(recorded, tmp_path):
    rag, sandbox = recorded
    sneaky = "import gc\n\nfor thing in gc.get_objects():\n    pass\n" + HONEST_FAILING_TEST
    path = candidate(tmp_path / "c", {"test_shout.py": sneaky})  # tool.py itself is pure (LOW)
    outcome = rag.add_tool(path, approver=PolicyApprover(assume_yes=True))
    assert (outcome.status, outcome.risk) == ("pending", "HIGH")
    assert any(r.startswith("test_shout.py:") for r in outcome.verdicts[0].details["risk_reasons"])
    assert sandbox.runs == []


def test_run_tests_defers_a_high_risk_candidate_for_every_caller(recorded, tmp_path):
    rag, sandbox = recorded
    path = candidate(tmp_path / "c", {"test_count.py": CANARY_TEST.format(fail=False)}, tool=HIGH_TOOL)
    signature = check_code(HIGH_TOOL).function
    verdict = rag.evolution.run_tests(path, signature.name, signature.json_schema)  # as the agents call it
    assert verdict.details["deferred"] and "not run yet" in verdict.reason
    assert sandbox.runs == []
