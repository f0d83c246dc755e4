"""Tools that need packages: locked, installed into a shared tool environment, mounted into the real sandbox.

Everything is real except the package index: a wheel house built here with ``pip wheel`` from tiny projects
(``tinywords`` 0.5 and 0.6, ``tinyhelper`` 1.0 and 2.0, an sdist-only ``tinysrc`` whose setup.py would write a
canary file), served to pip with ``--no-index --find-links`` (PIP_NO_INDEX / PIP_FIND_LINKS, and no pip
config), so nothing reaches PyPI. The allowlist of new dependencies names the tiny packages. HIGH-risk
approvals are given with the human approval token (CLI) or by an approver logged in to the UI (Python API).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from evorag.tools.dependencies import check_dependencies, declared_requirements
from evorag.tools.environment_doctor import requirement_drift
from evorag.tools.sandbox import TOOL_ENV_MOUNT, BubblewrapSandbox, DockerSandbox, SandboxBase
from evorag.tools.tool_envs import ToolEnvironments, lock_key, parse_lock, union_of
from wheel_house import build_wheels, pip_env, pip_sees_only, tiny_project, write_candidate

from evorag.errors import UserError
from evorag.principals import Principal, Role
from evorag.service import Evorag, PolicyApprover

BACKENDS = {"bubblewrap": BubblewrapSandbox, "docker": DockerSandbox}
REQUIRED = {name.strip() for name in os.environ.get("EVORAG_REQUIRE_SANDBOXES", "").split(",") if name.strip()}
HUMAN_TOKEN = "deps-human-approval-token-5550123"
ALLOWLIST = ["tinywords", "tinyhelper", "tinysrc", "packaging"]
PACKAGING = importlib.metadata.version("packaging")
PERSON = Principal("ada", Role.APPROVER, via="ui", human=True)  # an approver logged in to the UI

TOOL = '''
"""Spell small numbers."""

import tinywords


def {name}(n: int) -> str:
    """Spell ``n`` (0 to 2) in English words."""
    if n < 0 or n > 2:
        raise ValueError("only 0 to 2")
    return tinywords.words(n)
'''
TEST = '''
from tool import {name}


def test_spells_two():
    assert {name}(2) == "two"
'''


# --- the wheel house -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def house(tmp_path_factory) -> Path:
    """Wheels of tinywords 0.5 (needs tinyhelper>=1) and 0.6 (needs packaging<20), tinyhelper 1.0, and an
    sdist-only tinysrc 1.0 whose setup.py writes a canary file."""
    root = tmp_path_factory.mktemp("projects")
    house = tmp_path_factory.mktemp("house")
    build_wheels([tiny_project(root, "tinywords", "0.5", ["tinyhelper>=1"]),
                  tiny_project(root, "tinyhelper", "1.0", [])], house)
    build_wheels([tiny_project(root, "tinywords", "0.6", ["packaging<20"])], house)
    canary = root / "setup-py-ran"
    sdist = root / "tinysrc-1.0"
    sdist.mkdir()
    (sdist / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: tinysrc\nVersion: 1.0\n")
    (sdist / "setup.py").write_text(f"open({str(canary)!r}, 'w').write('ran')\n"
                                    "from setuptools import setup\nsetup(name='tinysrc', version='1.0')\n")
    with tarfile.open(house / "tinysrc-1.0.tar.gz", "w:gz") as archive:
        archive.add(sdist, arcname="tinysrc-1.0")
    return house


@pytest.fixture
def index(house, monkeypatch) -> Path:
    """pip (run by the gates in this process) sees the wheel house only."""
    return pip_sees_only(house, monkeypatch)


def candidate(root: Path, name: str, requirements: str, *, tests: bool = True) -> Path:
    files = {"tool.py": TOOL.format(name=name), "requirements.txt": requirements}
    if tests:
        files["test_tool.py"] = TEST.format(name=name)
    return write_candidate(root, name, files)


def backend_or_skip(name: str):
    sandbox = BACKENDS[name]()
    problem = sandbox.why_unavailable()
    if problem:
        if name in REQUIRED:
            pytest.fail(f"{name} sandbox required (EVORAG_REQUIRE_SANDBOXES) but unavailable: {problem}")
        pytest.skip(f"{name} sandbox unavailable: {problem}")
    return sandbox


def evorag_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evorag.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


# --- deployed and called through the CLI, on every sandbox backend -------------------------------------------


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_tool_with_a_new_dependency_is_deployed_and_called(backend, house, tmp_path):
    backend_or_skip(backend)
    home = tmp_path / "home"
    env = pip_env(house)
    env.update(EVORAG_HOME=str(home), EVORAG_SANDBOX_BACKEND=backend,
               EVORAG_DEPENDENCY_ALLOWLIST=json.dumps(ALLOWLIST))
    tool = candidate(tmp_path, "spell_number", "tinywords>=0.5\n")

    added = evorag_cli(["tools", "add", str(tool), "--json"], env)
    outcome = json.loads(added.stdout)
    assert (outcome["status"], outcome["risk"]) == ("pending", "HIGH"), added.stderr
    dependencies = next(v for v in outcome["verdicts"] if v["gate"] == "dependencies")
    assert dependencies["ok"] and dependencies["details"]["new_requirements"] == ["tinywords>=0.5"]
    lock = dependencies["details"]["lock"]
    assert [item.pin() for item in parse_lock(lock)] == ["tinyhelper==1.0", "tinywords==0.5"]
    assert not (home / "envs").exists()  # nothing is installed before a person approves

    approved = evorag_cli(["approvals", "approve", outcome["approval_id"], "--json"],
                          {**env, "EVORAG_APPROVAL_TOKEN": HUMAN_TOKEN})
    assert approved.returncode == 0, approved.stdout + approved.stderr
    deployed = json.loads(approved.stdout)
    assert deployed["status"] == "deployed", deployed
    assert next(v for v in deployed["verdicts"] if v["gate"] == "tests")["ok"]  # its tests ran with the env

    called = evorag_cli(["tools", "call", "spell_number", '{"n": 2}'], env)
    assert called.returncode == 0, called.stderr
    assert json.loads(called.stdout) == "two"

    # The lock is committed with the tool; the environment is where its content address says.
    tool_dir = home / "plugins" / "tools" / "spell_number"
    assert (tool_dir / "requirements.lock").read_text() == lock
    site = home / "envs" / lock_key(lock) / "site"
    assert (site / "tinywords" / "__init__.py").is_file() and (site / "tinyhelper").is_dir()
    for path in [site, *site.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o222 == 0 and mode & 0o004, f"{path} has mode {mode:o}"  # read-only, world-readable
    union = (home / "plugins" / "requirements.lock").read_text()
    assert "tinywords==0.5" in union and "# used by: spell_number" in union
    assert "--require-hashes" in (home / "plugins" / "Dockerfile.tools").read_text()

    doctor = evorag_cli(["doctor", "--json"], env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    checks = {check["name"]: check for check in json.loads(doctor.stdout)["checks"]}
    assert checks["tool_environments"]["ok"] and "1 tool(s)" in checks["tool_environments"]["detail"]


# --- shared environments, the union lock, rollback, doctor and healing ---------------------------------------


def test_tools_with_the_same_lock_share_one_environment_and_rollback_restores_the_union(index, tmp_path):
    with Evorag(home=tmp_path / "home", dependency_allowlist=ALLOWLIST, evolutions_per_hour=100) as rag:
        plugins = rag.evolution.repository.root
        empty = rag.versions()[-1].id
        for name, requirement in (("spell_number", "tinywords>=0.5\n"), ("say_number", "tinywords\n")):
            pending = rag.add_tool(candidate(tmp_path, name, requirement), approver=PolicyApprover(assume_yes=True))
            assert pending.status == "pending", pending.reason
            deployed = rag.decide_approval(pending.approval_id, approve=True, principal=PERSON)
            assert deployed.status == "deployed", deployed.reason
        one_tool = rag.versions()[-2].id
        locks = [(plugins / "tools" / n / "requirements.lock").read_text() for n in ("spell_number", "say_number")]
        assert locks[0] == locks[1]  # the same resolution: the same lock ...
        assert rag.evolution.environments.installed_keys() == [lock_key(locks[0])]  # ... one environment
        assert rag.call_tool("say_number", {"n": 1}) == "one" and rag.call_tool("spell_number", {"n": 0}) == "zero"
        installs = [e for e in rag.evolution_log() if e["event"] == "tool_environment_installed"]
        assert len(installs) == 1  # the second tool found it installed

        union = (plugins / "requirements.lock").read_text()
        assert "# used by: say_number, spell_number" in union
        assert union_of({"a": locks[0]}).items == parse_lock(union)
        # The union installs as the image would (--no-deps --require-hashes, wheels only), here into a folder.
        target = tmp_path / "image-site"
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--require-hashes",
                               "--only-binary=:all:", "--quiet", "--target", str(target), "-r",
                               str(plugins / "requirements.lock")], check=False, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert (target / "tinywords").is_dir()

        rag.rollback(one_tool)
        union = (plugins / "requirements.lock").read_text()
        assert "# used by: spell_number\n" in union and "say_number" not in union
        rag.rollback(empty)
        assert "==" not in (plugins / "requirements.lock").read_text()
        assert "(none)" in (plugins / "Dockerfile.tools").read_text()
        rag.rollback(one_tool)  # the environment was kept: nothing to install again
        assert rag.call_tool("spell_number", {"n": 2}) == "two"
        assert len([e for e in rag.evolution_log() if e["event"] == "tool_environment_installed"]) == 1

        # A file of the environment changed after the install: the doctor and the healing check say so.
        assert rag.doctor().ok
        module = rag.evolution.environments.site(locks[0]) / "tinywords" / "__init__.py"
        module.chmod(0o644)
        module.write_text(module.read_text() + "\n# edited\n")
        module.chmod(0o444)
        report = rag.doctor()
        assert not report.ok
        assert any("tinywords/__init__.py" in p for p in report.problems), report.problems
        import asyncio

        checks = {c.name: c for c in asyncio.run(rag.ahealth_checks())}
        assert not checks["environment"].ok and "differ from the install" in checks["environment"].detail


# --- conflicts get proposals -----------------------------------------------------------------------------------


def test_a_conflict_with_evorags_environment_is_answered_with_a_proposal(index, tmp_path, capsys, monkeypatch):
    from evorag.cli import main

    monkeypatch.setenv("EVORAG_DEPENDENCY_ALLOWLIST", json.dumps(ALLOWLIST))
    tool = candidate(tmp_path, "old_packaging", "packaging<20\ntinywords\n", tests=False)
    with Evorag(home=tmp_path / "home", dependency_allowlist=ALLOWLIST) as rag:
        outcome = rag.add_tool(tool, approver=PolicyApprover(assume_yes=True))
    assert (outcome.status, outcome.gate) == ("rejected", "dependencies")
    assert f"'packaging<20' conflicts with installed packaging {PACKAGING}" in outcome.reason
    assert f"proposal: require packaging=={PACKAGING}" in outcome.reason  # names the version that works
    declared = next(str(r.specifier) for r in declared_requirements() if r.name == "packaging")
    assert f"evorag itself requires packaging{declared}" in outcome.reason
    verdict = next(v for v in outcome.verdicts if v.gate == "dependencies")
    assert verdict.details["proposal"].startswith(f"require packaging=={PACKAGING}")

    # Through a dependency of the dependency: tinywords 0.6 needs packaging<20. The nearest release that fits
    # evorag's environment is proposed, found by pip's resolver (dry runs, nothing installed).
    newer = candidate(tmp_path, "newer_words", "tinywords>=0.6\n", tests=False)
    code = main(["tools", "add", str(newer), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and (data["status"], data["gate"]) == ("rejected", "dependencies")
    assert "tinywords 0.6 depends on packaging<20" in data["reason"]
    assert "proposal: require tinywords==0.5, the nearest release to 'tinywords>=0.6'" in data["reason"]
    assert "tinyhelper 1.0, tinywords 0.5" in data["reason"]
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("tinywords")  # dry runs only


def test_a_conflict_with_another_tools_lock_is_answered_with_a_proposal(index, tmp_path, monkeypatch):
    house = tmp_path / "house"
    shutil.copytree(index, house)
    monkeypatch.setenv("PIP_FIND_LINKS", str(house))
    with Evorag(home=tmp_path / "home", dependency_allowlist=ALLOWLIST) as rag:
        first = rag.add_tool(candidate(tmp_path, "spell_number", "tinywords\ntinyhelper>=1\n"),
                             approver=PolicyApprover(assume_yes=True))
        assert rag.decide_approval(first.approval_id, approve=True, principal=PERSON).status == "deployed"
        # A newer tinyhelper is published after spell_number locked 1.0; a new tool wants it.
        build_wheels([tiny_project(tmp_path / "later", "tinyhelper", "2.0", [])], house)
        tool = candidate(tmp_path, "shout_number", "tinywords\ntinyhelper>=2\n", tests=False)
        outcome = rag.add_tool(tool, approver=PolicyApprover(assume_yes=True))
    assert (outcome.status, outcome.gate) == ("rejected", "dependencies")
    assert "'tinyhelper>=2' conflicts with tinyhelper 1.0 locked by tool spell_number" in outcome.reason
    assert "proposal: require tinyhelper==1.0, the version tool spell_number has locked" in outcome.reason
    assert "or move spell_number to tinyhelper 2.0, which satisfies both" in outcome.reason


# --- what pip never does -----------------------------------------------------------------------------------------


def test_an_sdist_only_dependency_is_refused_without_running_setup_py(index, tmp_path):
    canary = next((index.parent).glob("projects*/setup-py-ran"), None)
    assert canary is None
    tool = candidate(tmp_path, "from_source", "tinysrc\n", tests=False)
    (tool / "tool.py").write_text(TOOL.format(name="from_source").replace("import tinywords", "import tinysrc"))
    report = check_dependencies(tool, allowlist=ALLOWLIST)
    assert not report.ok and report.lock == ""
    assert "tinysrc has no binary wheel for this platform, only source distributions (1.0)" in report.reason
    assert "setup.py" in report.reason
    assert not list(index.parent.glob("projects*/setup-py-ran"))  # the sdist's setup.py never ran


def test_a_lock_is_strict_and_an_environment_is_installed_once(index, tmp_path):
    with pytest.raises(UserError, match="has no --hash"):
        parse_lock("tinywords==0.5\n")
    with pytest.raises(UserError, match="only --hash=sha256"):
        parse_lock("tinywords==0.5 --index-url=http://evil.invalid/\n")
    with pytest.raises(UserError, match="not name==version"):
        parse_lock("tinywords>=0.5 --hash=sha256:" + "0" * 64 + "\n")
    lock = check_dependencies(candidate(tmp_path, "spell_number", "tinywords\n"), allowlist=ALLOWLIST).lock
    environments = ToolEnvironments(tmp_path / "envs")
    started = time.monotonic()
    site = environments.ensure(lock)
    first = time.monotonic() - started
    assert environments.ensure(lock) == site and environments.installed_keys() == [lock_key(lock)]
    assert environments.check(lock_key(lock), sandbox_uid=65534).ok
    print(f"installed a 2-wheel tool environment in {first:.2f} s")
    # A wrong hash: pip refuses the file, nothing is left behind.
    wrong = lock.replace(parse_lock(lock)[0].sha256[0], "f" * 64)
    with pytest.raises(Exception, match="installing the locked dependencies failed"):
        environments.ensure(wrong)
    assert environments.installed_keys() == [lock_key(lock)]
    assert not list(environments.root.glob(".build-*"))


# --- evorag's own environment ---------------------------------------------------------------------------------


def test_doctor_reports_drift_created_in_a_throwaway_target(house, tmp_path):
    # A distribution named like one evorag requires, at a version outside its range, installed (by pip, as a
    # wheel) into a throwaway folder that goes first on PYTHONPATH: the shared environment stays untouched.
    declared = {r.name.lower(): r for r in declared_requirements()}
    assert "tenacity" in declared
    build_wheels([tiny_project(tmp_path / "drift", "tenacity", "1.0", [], package=False)], tmp_path / "drift-house")
    target = tmp_path / "throwaway"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
                    "tenacity==1.0"], check=True, env=pip_env(tmp_path / "drift-house"), timeout=120)
    env = {**pip_env(house), "EVORAG_HOME": str(tmp_path / "home"), "PYTHONPATH": str(target)}
    done = evorag_cli(["doctor", "--json"], env)
    assert done.returncode == 1, done.stdout + done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert not checks["drift"]["ok"]
    assert f"tenacity 1.0 is installed, outside the declared range {declared['tenacity']}" in checks["drift"]["problems"]
    assert not checks["pip_check"]["ok"]
    assert any("tenacity 1.0" in line for line in checks["pip_check"]["problems"])
    assert checks["tool_environments"]["ok"]
    human = evorag_cli(["doctor"], env)
    assert human.returncode == 1 and "✗ drift" in human.stdout and "tenacity 1.0" in human.stdout
    assert importlib.metadata.version("tenacity") != "1.0"  # this process's environment is as it was

    # Missing distributions count too (here: everything the throwaway folder lacks).
    missing = requirement_drift(declared_requirements(), path=[str(target)])
    assert f"pydantic is missing (evorag requires {declared['pydantic']})" in missing


# --- the sandbox mounts environments of EVORAG_HOME/envs, and nothing else ------------------------------------


def _environment(root: Path) -> Path:
    site = root / ("ab" * 32) / "site"
    (site / "tinymod").mkdir(parents=True)
    (site / "tinymod" / "__init__.py").write_text("ANSWER = 42\n")
    for path in [site / "tinymod" / "__init__.py"]:
        path.chmod(0o444)
    for path in [site / "tinymod", site, site.parent]:
        path.chmod(0o555)
    return site


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_the_sandbox_mounts_a_tool_environment_read_only(backend, tmp_path):
    sandbox = backend_or_skip(backend)
    home = tmp_path / "home"
    home.mkdir(mode=0o700)  # like EVORAG_HOME: the sandbox's uid cannot reach it, yet the mount works
    site = _environment(home / "envs")
    sandbox.environments_root = home / "envs"
    work = tmp_path / "work"
    work.mkdir()
    code = ("import json, os, tinymod\n"
            "try:\n    open(os.path.join(tinymod.__path__[0], 'x'), 'w')\n    wrote = True\n"
            "except OSError:\n    wrote = False\n"
            "print(json.dumps([tinymod.ANSWER, tinymod.__file__, os.environ['PYTHONPATH'], wrote, os.getuid()]))\n")
    result = sandbox.run(work, ["python", "-c", code], python_env=site, env={"PYTHONPATH": "/work"})
    assert result.exit_code == 0, result.stderr
    answer, path, pythonpath, wrote, uid = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer == 42 and path == f"{TOOL_ENV_MOUNT}/tinymod/__init__.py"
    assert pythonpath == f"{TOOL_ENV_MOUNT}:/work" and wrote is False
    assert uid != 0
    without = sandbox.run(work, ["python", "-c", "import tinymod"])
    assert without.exit_code != 0 and "ModuleNotFoundError" in without.stderr


class _Recording(SandboxBase):
    name = "recording"
    install_hint = "none"

    def __init__(self) -> None:
        self.requests = []

    def _why_unavailable(self):
        return None

    def _run(self, request):
        from evorag.tools.sandbox import SandboxResult

        self.requests.append(request)
        return SandboxResult(0, "", "", False, None, 0.0)


def test_the_sandbox_mounts_only_environments_under_its_root(tmp_path):
    root = tmp_path / "envs"
    site = _environment(root)
    work = tmp_path / "work"
    work.mkdir()
    backend = _Recording()
    with pytest.raises(UserError, match="no tool environments root"):
        backend.run(work, ["true"], python_env=site)
    backend.environments_root = root
    elsewhere = tmp_path / "other" / ("ab" * 32) / "site"
    elsewhere.mkdir(parents=True, mode=0o755)
    link = root / ("cd" * 32)
    link.symlink_to(site.parent)
    writable = _environment(tmp_path / "w")
    writable.chmod(0o777)
    bad = [Path("/etc"), Path.home(), elsewhere, root / ("ab" * 32), link / "site", root / ("ab" * 32) / "site" / "..",
           root / "not-a-hash" / "site", root / ("ef" * 32) / "site"]
    for path in bad:
        with pytest.raises(UserError):
            backend.run(work, ["true"], python_env=path)
    backend.environments_root = tmp_path / "w"
    with pytest.raises(UserError, match="writable by none"):
        backend.run(work, ["true"], python_env=writable)
    assert backend.requests == []
    backend.environments_root = root
    backend.run(work, ["true"], python_env=site, env={"PYTHONPATH": "/work/lib"})
    (request,) = backend.requests
    assert request.python_env == site.resolve()
    assert request.env["PYTHONPATH"] == f"{TOOL_ENV_MOUNT}:/work/lib"
