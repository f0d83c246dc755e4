"""Every test gets its own EVORAG_HOME and no config file from the developer's machine."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def anyio_backend():
    """Every async test runs on asyncio: the service, the MCP server and AutoGen are asyncio code, and the
    anyio plugin would otherwise also run them on trio wherever trio happens to be installed."""
    return "asyncio"


@pytest.fixture(autouse=True)
def evorag_home(tmp_path, monkeypatch):
    home = tmp_path / "evorag-home"
    monkeypatch.setenv("EVORAG_HOME", str(home))
    monkeypatch.setenv("EVORAG_CONFIG", str(tmp_path / "no-config.toml"))
    for name in list(os.environ):
        if name.startswith("EVORAG_") and name not in ("EVORAG_HOME", "EVORAG_CONFIG"):
            monkeypatch.delenv(name)
    return home


@pytest.fixture(autouse=True)
def no_real_model(request, monkeypatch, evorag_home):
    """Any language model request fails loudly (ForbiddenModelRequest, naming the test) unless the test hands in
    its own client (``Evorag(model_client=...)``, ``model_client=`` of a team run, or a replay provider in the
    settings or environment it sets). A test of the real local model opts in with ``@pytest.mark.real_model``.
    Subprocesses inherit the setting."""
    if request.node.get_closest_marker("real_model") is None:
        monkeypatch.setenv("EVORAG_LLM_PROVIDER", "forbidden")


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory):
    """An EVORAG_HOME holding the bundled demo site, crawled once per test session (real model, real store)."""
    from evorag.demo import DEMO_SOURCE, serve_demo_site
    from evorag.service import CrawlRequest, Evorag

    home = tmp_path_factory.mktemp("demo-home")
    with serve_demo_site(0) as base_url, Evorag(home=home) as rag:
        report = rag.crawl(CrawlRequest(url=base_url + "index.html", source=DEMO_SOURCE, allow_private=True))
    assert report.pages_indexed >= 5
    return home


@pytest.fixture
def demo_rag(demo_home):
    from evorag.service import Evorag

    with Evorag(home=demo_home) as rag:
        yield rag
