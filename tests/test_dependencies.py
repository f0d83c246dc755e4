"""The dependency gate: candidate tools get the right verdict; requirements are parsed, vetted and resolved.

Only two tests call pip (a real dry-run resolution against the configured package index); the rest use
``resolve=False``.
"""

from __future__ import annotations

import importlib.metadata
import json
import textwrap
from pathlib import Path

import pytest
from evorag.tools.dependencies import DEFAULT_ALLOWLIST, check_dependencies, damerau_levenshtein, typo_target

CANDIDATES = Path(__file__).parent / "candidates"
PYDANTIC_VERSION = importlib.metadata.version("pydantic")


def make_tool(
    root: Path, source: str, requirements: str | None = None, tests: dict[str, str] | None = None
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tool.py").write_text(textwrap.dedent(source), encoding="utf-8")
    if requirements is not None:
        (root / "requirements.txt").write_text(textwrap.dedent(requirements), encoding="utf-8")
    for name, text in (tests or {}).items():
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def is_installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# --- the candidate battery (no pip) -------------------------------------------------------------------

# candidate, ok, reason fragment (None: no reason), risk
BATTERY = [
    ("good_word_count", True, None, "LOW"),
    ("syntax_error", False, "cannot read the imports of tool.py: syntax error at line 6", "LOW"),
    ("missing_docstring", True, None, "LOW"),
    ("missing_types", True, None, "LOW"),
    ("two_public_functions", True, None, "LOW"),
    ("uses_network", True, None, "LOW"),
    ("uses_subprocess", True, None, "LOW"),
    ("writes_outside", True, None, "LOW"),
    ("reads_secret_env", True, None, "LOW"),
    ("uses_eval", True, None, "LOW"),
    ("infinite_loop", True, None, "LOW"),
    ("memory_bomb", True, None, "LOW"),
    ("failing_test", True, None, "LOW"),
    # Without pip the only thing wrong with it is that it is not on the allowlist.
    ("unknown_package", False, "'evorag-nonexistent-pkg-zz9' is not on the allowlist", "HIGH"),
    ("typosquat", False, "requirement 'reqeusts' looks like a typo of 'requests'", "LOW"),
    (
        "dependency_conflict",
        False,
        f"requirement 'pydantic<2' conflicts with installed pydantic {PYDANTIC_VERSION}",
        "LOW",
    ),
    ("new_dependency", True, None, "HIGH"),
]


def test_battery_covers_every_candidate():
    on_disk = {path.name for path in CANDIDATES.iterdir() if path.is_dir() and not path.name.startswith("_")}
    assert on_disk == {row[0] for row in BATTERY}


@pytest.mark.parametrize(("name", "ok", "reason", "risk"), BATTERY, ids=[row[0] for row in BATTERY])
def test_candidate_verdicts_without_pip(name, ok, reason, risk):
    if name == "new_dependency" and is_installed("tabulate"):
        pytest.skip("tabulate is installed here, so the candidate adds nothing new")
    report = check_dependencies(CANDIDATES / name, resolve=False)

    assert report.gate == "dependencies"
    assert report.ok is ok, report.reason
    if reason is None:
        assert report.reason is None and report.problems == []
    else:
        assert reason in report.reason
        assert "\n" not in report.reason
    assert report.risk == risk, report.risk_reasons
    json.dumps(report.to_dict())


def test_good_candidate_imports_are_classified():
    report = check_dependencies(CANDIDATES / "good_word_count", resolve=False)
    assert report.imports == ["re", "tool", "typing"]  # 'tool' comes from its test file
    assert report.stdlib == ["re", "typing"]
    assert report.installed == [] and report.new_requirements == [] and report.docker_lines == []


def test_installed_imports_are_reported_with_versions():
    report = check_dependencies(CANDIDATES / "typosquat", resolve=False)
    assert {"name": "requests", "version": importlib.metadata.version("requests")} in report.installed


def test_new_dependency_without_pip_records_the_requirement():
    if is_installed("tabulate"):
        pytest.skip("tabulate is installed here")
    report = check_dependencies(CANDIDATES / "new_dependency", resolve=False)
    assert report.new_requirements == ["tabulate>=0.9"]
    assert report.risk_reasons == ["adds new dependency tabulate>=0.9"]
    assert report.docker_lines == ["RUN pip install --no-cache-dir 'tabulate>=0.9'"]
    assert report.resolved == []


# --- resolution with pip (the only two pip invocations) -----------------------------------------------


def test_unknown_package_is_found_by_pip():
    # Allowlisted for this test: a name off the allowlist never reaches pip (see the test below).
    allowlist = [*DEFAULT_ALLOWLIST, "evorag-nonexistent-pkg-zz9"]
    report = check_dependencies(CANDIDATES / "unknown_package", resolve=True, index_timeout=120, allowlist=allowlist)

    assert not report.ok
    assert report.reason.startswith("unknown package evorag-nonexistent-pkg-zz9")
    assert report.docker_lines == []


@pytest.fixture
def recording_index():
    """A package index on 127.0.0.1 that answers 404 to everything and records what was asked."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/", requests
    finally:
        server.shutdown()
        server.server_close()


def test_a_name_off_the_allowlist_is_refused_before_the_index_is_asked(tmp_path, recording_index):
    """`evorag tools add` with a requirement off the allowlist: the dependency gate refuses it, and the package
    index never hears of the name (asking already tells whoever watches, or squats, the name)."""
    import os
    import subprocess
    import sys

    index_url, requests = recording_index
    tool = make_tool(tmp_path / "cand", '''
        def shout(text: str) -> str:
            """Upper-case ``text``."""
            return text.upper()
        ''', "zqxv-evorag-unlisted-probe==1.0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVORAG_", "PIP_"))}
    env.update(EVORAG_HOME=str(tmp_path / "home"), EVORAG_CONFIG=str(tmp_path / "none.toml"),
               EVORAG_RESOLVE_DEPENDENCIES="true", PIP_INDEX_URL=index_url, PIP_NO_CACHE_DIR="1",
               PIP_RETRIES="0")
    result = subprocess.run([sys.executable, "-m", "evorag.cli", "tools", "add", str(tool), "--yes", "--json"],
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1, result.stderr  # a rejected candidate
    outcome = json.loads(result.stdout)
    assert outcome["gate"] == "dependencies"
    assert "'zqxv-evorag-unlisted-probe' is not on the allowlist" in outcome["reason"]
    assert requests == []

    # The control: with the name allowlisted, the gate does ask this index (so the recorder would have seen it).
    env["EVORAG_DEPENDENCY_ALLOWLIST"] = '["zqxv-evorag-unlisted-probe"]'
    result = subprocess.run([sys.executable, "-m", "evorag.cli", "tools", "add", str(tool), "--yes", "--json"],
                            env=env, capture_output=True, text=True, timeout=300, check=False)
    assert json.loads(result.stdout)["gate"] == "dependencies", result.stderr
    assert any("zqxv-evorag-unlisted-probe" in path for path in requests), requests


def test_new_dependency_is_resolved_and_pinned():
    if is_installed("tabulate"):
        pytest.skip("tabulate is installed here, so the candidate adds nothing new")
    report = check_dependencies(CANDIDATES / "new_dependency", resolve=True, index_timeout=120)

    assert report.ok, report.reason
    assert report.risk == "HIGH"
    assert report.new_requirements == ["tabulate>=0.9"]
    [tabulate] = [item for item in report.resolved if item["name"].lower() == "tabulate"]
    assert tabulate["requested"] is True
    assert tuple(int(part) for part in tabulate["version"].split(".")[:2]) >= (0, 9)
    assert report.docker_lines == [f"RUN pip install --no-cache-dir tabulate=={tabulate['version']}"]
    assert not is_installed("tabulate")  # a dry run installs nothing


# --- requirements.txt ---------------------------------------------------------------------------------

TOOL_IMPORTING_NOTHING = '''
def echo(text: str) -> str:
    """Echo."""
    return text
'''


@pytest.mark.parametrize(
    ("requirements", "fragment"),
    [
        (
            "pydantic>=2\nrequests>>=2.0\n",
            "requirements.txt line 2 is not a valid requirement ('requests>>=2.0')",
        ),
        ("tabulate ==\n", "requirements.txt line 1 is not a valid requirement"),
        ("-r other.txt\n", "requirements.txt line 1: pip options and line continuations are not allowed"),
        ("--index-url https://example.invalid/simple\n", "pip options"),
        ("tabulate @ https://example.invalid/tabulate.whl\n", "direct URL requirements are not allowed"),
        ("# comment\n\nnumpyy\n", "requirement 'numpyy' looks like a typo of 'numpy'"),
        ("python-requests\n", "looks like a typo of 'requests'"),
        ("py-yaml\n", "looks like a typo of 'pyyaml'"),
        ("pydantic>=99\n", "conflicts with installed pydantic"),
    ],
)
def test_bad_requirements_are_refused(tmp_path, requirements, fragment):
    report = check_dependencies(
        make_tool(tmp_path / "t", TOOL_IMPORTING_NOTHING, requirements), resolve=False
    )
    assert not report.ok
    assert fragment in report.reason, report.reason


def test_requirements_satisfied_by_the_environment_add_nothing(tmp_path):
    tool = make_tool(
        tmp_path / "t",
        "from pydantic import BaseModel\n",
        "Pydantic>=2  # normalised names match\nPyYAML ; python_version >= '3'\nnothing-at-all ; python_version < '3'\n",
    )
    report = check_dependencies(tool, resolve=False)
    assert report.ok, report.reason
    assert report.risk == "LOW"
    assert report.new_requirements == []
    assert {entry["name"] for entry in report.installed} == {"pydantic", "PyYAML"}


def test_allowlist_decides_which_new_packages_may_be_added(tmp_path):
    tool = make_tool(tmp_path / "t", "import natsort\n", "natsort>=8\n")
    assert "natsort" in DEFAULT_ALLOWLIST
    if is_installed("natsort"):
        pytest.skip("natsort is installed here")

    allowed = check_dependencies(tool, resolve=False)
    assert allowed.ok and allowed.risk == "HIGH"

    refused = check_dependencies(tool, resolve=False, allowlist=["tabulate"])
    assert not refused.ok
    assert "'natsort' is not on the allowlist" in refused.reason
    assert refused.risk == "HIGH"


def test_import_names_that_differ_from_the_distribution(tmp_path):
    if is_installed("python-frontmatter"):
        pytest.skip("python-frontmatter is installed here")
    tool = make_tool(tmp_path / "t", "import frontmatter\n", "python-frontmatter\n")
    report = check_dependencies(tool, resolve=False)
    assert report.ok, report.reason
    assert report.new_requirements == ["python-frontmatter"]


# --- imports ------------------------------------------------------------------------------------------


def test_import_that_is_neither_installed_nor_declared(tmp_path):
    tool = make_tool(tmp_path / "t", "import json\nimport evorag_missing_module.sub\n")
    report = check_dependencies(tool, resolve=False)
    assert not report.ok
    assert report.reason == "imports evorag_missing_module which is not installed and not in requirements.txt"
    assert report.imports == ["evorag_missing_module", "json"]


def test_imports_of_test_files_and_dynamic_imports_count(tmp_path):
    tool = make_tool(
        tmp_path / "t",
        "import importlib\nhelper = importlib.import_module('evorag_dynamic_missing.x')\n",
        tests={"test_tool.py": "import pytest\nfrom evorag_test_only_missing import thing\n"},
    )
    report = check_dependencies(tool, resolve=False)
    assert report.problems == [
        "imports evorag_dynamic_missing which is not installed and not in requirements.txt",
        "imports evorag_test_only_missing which is not installed and not in requirements.txt",
    ]
    assert any(entry["name"] == "pytest" for entry in report.installed)


def test_local_modules_and_relative_imports_are_fine(tmp_path):
    tool = make_tool(
        tmp_path / "t",
        "from _helpers import clean\nfrom . import sibling\n",
        tests={"_helpers.py": "def clean(): pass\n"},
    )
    report = check_dependencies(tool, resolve=False)
    assert report.ok, report.reason


def test_missing_tool_file(tmp_path):
    report = check_dependencies(tmp_path, resolve=False)
    assert not report.ok
    assert report.reason == f"no tool.py in {tmp_path}"


def test_the_tool_is_never_executed(tmp_path):
    marker = tmp_path / "executed"
    tool = make_tool(
        tmp_path / "t",
        f"open({str(marker)!r}, 'w').write('ran')\nraise SystemExit(3)\n",
        tests={"test_tool.py": f"open({str(marker)!r}, 'w').write('ran')\n"},
    )
    report = check_dependencies(tool, resolve=False)
    assert report.ok
    assert not marker.exists()


# --- typo-squatting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("requests", "requests", 0),
        ("reqeusts", "requests", 1),
        ("numpyy", "numpy", 1),
        ("requets", "requests", 1),
        ("rqeuests", "requests", 1),
        ("djnago", "django", 1),
        ("pandsa", "pandas", 1),
        ("abc", "xyz", 3),
        ("", "abc", 3),
    ],
)
def test_damerau_levenshtein(a, b, distance):
    assert damerau_levenshtein(a, b) == distance
    assert damerau_levenshtein(b, a) == distance


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("reqeusts", "requests"),
        ("numpyy", "numpy"),
        ("Requests", None),
        ("tabulate", None),
        ("tabulatee", "tabulate"),
        ("python_dateutil", None),
        ("dateutil", "python-dateutil"),
        ("evorag-nonexistent-pkg-zz9", None),
        ("six", None),
        ("sx", "six"),
        ("urllib4", "urllib3"),
        ("scikitlearn", "scikit-learn"),
    ],
)
def test_typo_target(name, target):
    known = ["requests", "numpy", "tabulate", "python-dateutil", "six", "urllib3", "scikit-learn"]
    assert typo_target(name, known) == target
