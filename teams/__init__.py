"""Team flows shared by the CLI, the MCP server and the UI.

* ``run_evolution``: request -> plan -> dependencies -> generate <-> debug <-> test -> approval -> deploy.
* ``run_healing``: health checks -> diagnosis -> fix through the same gates -> checks again.
* ``find_knowledge_gaps`` / ``fill_knowledge_gaps``: weak answers -> crawl proposals -> approval -> crawl.
* ``run_conversation``: an open SelectorGroupChat of the same agents for free-form requests.
"""

from evorag.teams._conversation import build_conversation_team, run_conversation
from evorag.teams._evolution import build_evolution_flow, run_evolution
from evorag.teams._gaps import GapProposal, GapReport, fill_knowledge_gaps, find_knowledge_gaps
from evorag.teams._healing import CheckResult, HealingReport, run_healing, run_health_checks
from evorag.teams._spec import load_spec, run_spec

__all__ = [
    "CheckResult",
    "GapProposal",
    "GapReport",
    "HealingReport",
    "build_conversation_team",
    "build_evolution_flow",
    "fill_knowledge_gaps",
    "find_knowledge_gaps",
    "load_spec",
    "run_conversation",
    "run_evolution",
    "run_healing",
    "run_health_checks",
    "run_spec",
]
