"""A cold command pays only for what it uses (issue 14): importing evorag, the service facade or the command
line loads no crawler, answerer, evolution pipeline, webhook client or agent framework; they load on first use.
The public names are still all there. Each check runs in a fresh interpreter, as a cold `evorag` start does."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Modules a search never needs; each costs tens to hundreds of milliseconds at every start.
LOADED_ON_FIRST_USE = (
    "evorag.tools.crawling", "evorag.tools.crawl_job", "evorag.tools.answering", "evorag.tools.evaluation",
    "evorag.tools.evolution", "evorag.tools.plugins", "evorag.tools.sandbox", "evorag.tools.webhooks",
    "evorag.service._quality", "evorag.service._admin", "evorag.service._sharing", "evorag.service._toolset",
    "evorag.service._teams", "evorag.teams", "evorag.agents", "httpx", "lxml", "autogen_agentchat", "mcp",
    "chainlit", "crawl4ai", "mem0", "torch", "pandas", "matplotlib",
)


def loaded_after(statement: str) -> list[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("statement", ["import evorag", "from evorag.service import Evorag", "import evorag.cli"])
def test_a_cold_start_loads_nothing_a_search_does_not_use(statement):
    loaded = loaded_after(statement)
    early = [name for name in LOADED_ON_FIRST_USE if name in loaded]
    assert early == [], f"{statement!r} loads {early}"


def test_import_evorag_loads_only_the_errors():
    assert [name for name in loaded_after("import evorag") if name.startswith("evorag")] == ["evorag", "evorag.errors"]


def test_every_public_name_is_still_importable_and_the_same_object():
    code = """
import evorag, evorag.service
from evorag.service._facade import Evorag
from evorag.tools.versions import display
names = {m: [getattr(m, n) for n in m.__all__] for m in (evorag, evorag.service)}
assert evorag.Evorag is evorag.service.Evorag is Evorag and evorag.service.display_version is display
from evorag import CrawlRequest, Settings, UserError, load_settings  # noqa: F401
print(sum(len(v) for v in names.values()))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) >= 55
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        import evorag.service

        evorag.service.Nope  # noqa: B018


def test_the_lazily_built_use_cases_are_built_once_and_wired(tmp_path):
    from evorag.service import Evorag

    with Evorag(home=tmp_path / "home") as rag:
        assert rag.approvals is rag.approvals and rag.quality is rag.quality
        # Deciding an approval tells the proposals service (it queues approved proposals).
        assert rag.approvals.on_decided == [rag.proposals.decided]
