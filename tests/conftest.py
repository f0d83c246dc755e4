"""Every test gets its own EVORAG_HOME and no config file from the developer's machine."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def evorag_home(tmp_path, monkeypatch):
    home = tmp_path / "evorag-home"
    monkeypatch.setenv("EVORAG_HOME", str(home))
    monkeypatch.setenv("EVORAG_CONFIG", str(tmp_path / "no-config.toml"))
    for name in list(os.environ):
        if name.startswith("EVORAG_") and name not in ("EVORAG_HOME", "EVORAG_CONFIG"):
            monkeypatch.delenv(name)
    return home
