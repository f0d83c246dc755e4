"""A local package index for tests of tools with dependencies: tiny projects built into a wheel house with
``pip wheel`` and served to pip with ``--no-index --find-links`` (PIP_NO_INDEX / PIP_FIND_LINKS, no pip config),
so nothing reaches PyPI; and tool candidates written into a directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest


def tiny_project(root: Path, name: str, version: str, dependencies: list[str], *, package: bool = True) -> Path:
    """The source of project ``name`` ``version`` under ``root``; its package (if any) has ``VERSION`` and
    ``words(n)`` (0 to 2 in English words)."""
    source = root / f"{name}-{version}"
    source.mkdir(parents=True)
    if package:
        (source / name).mkdir()
        (source / name / "__init__.py").write_text(
            f"VERSION = {version!r}\n\ndef words(n):\n    return ['zero', 'one', 'two'][n]\n")
    (source / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{name}"
        version = "{version}"
        dependencies = {json.dumps(dependencies)}
        [tool.setuptools]
        packages = {json.dumps([name] if package else [])}
        """))
    return source


def build_wheels(projects: Iterable[Path], house: Path) -> None:
    """Build a wheel of each project into ``house``."""
    # --no-build-isolation: setuptools from this environment, nothing from an index.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--quiet",
                    "--wheel-dir", str(house), *map(str, projects)], check=True, env=pip_env(house),
                   capture_output=True, timeout=300)


def pip_env(house: Path) -> dict[str, str]:
    """This process's environment with every PIP_ setting replaced by: the wheel house only, no pip config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(house), PIP_CONFIG_FILE=os.devnull,
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def pip_sees_only(house: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make pip run by this process (the gates) see the wheel house only, for one test."""
    for name in [n for n in os.environ if n.startswith("PIP_")]:
        monkeypatch.delenv(name)
    for name, value in pip_env(house).items():
        if name.startswith("PIP_"):
            monkeypatch.setenv(name, value)
    return house


def write_candidate(root: Path, name: str, files: dict[str, str]) -> Path:
    """A tool candidate directory ``root/name`` holding ``files`` ({file name: text})."""
    path = root / name
    path.mkdir(parents=True)
    for file, text in files.items():
        (path / file).write_text(text)
    return path
