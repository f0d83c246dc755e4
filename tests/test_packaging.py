"""One import name: everything installs under ``evorag``, nothing else lands in site-packages.

The repository keeps ``agents/``, ``teams/`` and ``tools/`` at its root, mapped to ``evorag.agents`` etc. by
setuptools' ``package-dir``. These tests build the real wheel, install it next to a package that owns the
top-level name ``agents`` (as openai-agents does), and import evorag from a directory holding folders named
``tools``, ``agents`` and ``teams`` that would shadow generic top-level packages.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"evorag": "evorag", "tools": "evorag.tools", "agents": "evorag.agents", "teams": "evorag.teams"}


def _declared() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_the_explicit_package_list_covers_every_package_folder():
    on_disk = set()
    for folder, name in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            on_disk.add(".".join([name, *relative.parts]))
    declared = _declared()
    assert set(declared["packages"]) == on_disk
    assert declared["package-dir"] == {name: folder for folder, name in MAPPED.items()}


def test_no_module_imports_a_top_level_tools_agents_or_teams():
    pattern = re.compile(r"^\s*(from|import)\s+(tools|agents|teams)(\.|\s|$)", re.MULTILINE)
    offenders = []
    for folder in ("evorag", "tools", "agents", "teams", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if {"hostile", "candidates"} & set(path.relative_to(ROOT).parts):
                continue  # tool candidates: their own `tool` module, not evorag's
            if pattern.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    offenders += [name for name in ("app.py",) if pattern.search((ROOT / name).read_text())]
    assert offenders == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )
    (built,) = out.glob("evorag-*.whl")
    return built


def _top_level(wheel_path: Path) -> set[str]:
    with zipfile.ZipFile(wheel_path) as archive:
        return {name.split("/")[0] for name in archive.namelist()}


def test_the_wheel_holds_no_other_top_level_package(wheel):
    top = _top_level(wheel)
    assert {name for name in top if not name.startswith("evorag-")} == {"evorag"}
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    # The mapped folders are inside, with their data: evorag.tools.search, the gate runner, the golden set.
    for expected in ("evorag/tools/search.py", "evorag/tools/gate_runner.py", "evorag/agents/model_clients/__init__.py",
                     "evorag/teams/__init__.py", "evorag/golden/demo.jsonl", "evorag/demo_site/index.html"):
        assert expected in names
    # Every data file of the package folders ships (a team spec left out breaks `evorag evolve` after a
    # plain `pip install`, while an editable install hides it).
    folders = {"evorag": ROOT / "evorag", "evorag/tools": ROOT / "tools", "evorag/agents": ROOT / "agents",
               "evorag/teams": ROOT / "teams"}
    for prefix, folder in folders.items():
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts:
                if prefix == "evorag" and path.relative_to(folder).parts[0] in ("tools", "agents", "teams"):
                    continue
                assert f"{prefix}/{path.relative_to(folder).as_posix()}" in names, path


def _fake_agents_wheel(folder: Path) -> Path:
    """A wheel owning the top-level package ``agents``, laid out like openai-agents' own."""
    files = {
        "agents/__init__.py": b"OWNER = 'openai-agents'\n",
        "fake_openai_agents-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: fake-openai-agents\nVersion: 1.0\n",
        "fake_openai_agents-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("fake_openai_agents-1.0.dist-info/RECORD,,")
    path = folder / "fake_openai_agents-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("fake_openai_agents-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def test_a_package_owning_top_level_agents_installs_beside_evorag(wheel, tmp_path):
    other = _fake_agents_wheel(tmp_path)
    target = tmp_path / "site"
    for package in (wheel, other):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(package)],
                       check=True, capture_output=True, timeout=300)
    # Neither wheel writes a file of the other: installing or uninstalling one leaves the other whole.
    records = {}
    for record in target.glob("*.dist-info/RECORD"):
        records[record.parent.name] = {line.split(",")[0] for line in record.read_text().splitlines() if line}
    evorag_files, other_files = (files for name, files in sorted(records.items()))
    assert not evorag_files & other_files
    script = ("import agents, evorag.agents, evorag.tools.search, evorag.teams\n"
              "print(agents.OWNER, evorag.agents.__file__, evorag.tools.search.__file__)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    shown = subprocess.run([sys.executable, "-c", script], check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    owner, ours, search = shown.stdout.split()
    assert owner == "openai-agents"
    assert ours.startswith(str(target)) and search.startswith(str(target))


def test_folders_named_tools_agents_teams_in_the_working_directory_do_not_shadow_evorag(tmp_path):
    for name in ("tools", "agents", "teams"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name} package')\n")
    # A script next to them puts their folder first on sys.path, as a notebook or pytest rootdir does.
    (tmp_path / "use_evorag.py").write_text(
        "import evorag.tools.search, evorag.tools.sandbox, evorag.agents.model_clients, evorag.teams\n"
        "from evorag import Evorag, Settings\n"
        "print(Evorag.__module__)\n"
    )
    ran = subprocess.run([sys.executable, "use_evorag.py"], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().startswith("evorag.")


def test_serialized_component_configs_load_by_the_evorag_names(tmp_path):
    """AutoGen component configs name their provider's import path; gRPC workers import it by that name."""
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "__init__.py").write_text("raise ImportError('shadow')\n")
    script = (
        "import json\n"
        "from autogen_core import ComponentLoader\n"
        "from evorag.agents.model_clients import LocalChatCompletionClient\n"
        "config = LocalChatCompletionClient(model_path='unused.gguf').dump_component()\n"
        "loaded = ComponentLoader.load_component(json.loads(config.model_dump_json()))\n"
        "print(config.provider, type(loaded).__module__)\n"
    )
    ran = subprocess.run([sys.executable, "-c", script], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    provider, module = ran.stdout.split()
    assert provider == "evorag.agents.model_clients.LocalChatCompletionClient"
    assert module.startswith("evorag.agents.model_clients")
