"""Team flows shared by the CLI, the MCP server and the UI (through the service, which hands them their ports).

* ``run_evolution``: request -> plan -> dependencies -> generate <-> debug <-> test -> approval -> deploy.
* ``run_healing``: health checks -> diagnosis -> fix through the same gates -> checks again.
* ``find_knowledge_gaps`` / ``fill_knowledge_gaps``: weak answers -> crawl proposals -> approval -> crawl.
* ``run_conversation``: an open SelectorGroupChat of the same agents for free-form requests.

Every flow receives ``TeamPorts`` (settings, the ``Knowledge`` and ``IndexHealth`` ports, the evolution pipeline,
the rate limit and the model client), never the service itself.
"""

from evorag.teams._conversation import (
    ROLES,
    build_conversation_team,
    run_conversation,
    serve_conversation_agents,
)
from evorag.teams._distributed import serve_host
from evorag.teams._evolution import build_evolution_flow, run_evolution
from evorag.teams._gaps import GapProposal, GapReport, fill_knowledge_gaps, find_knowledge_gaps
from evorag.teams._healing import CheckResult, HealingReport, run_healing, run_health_checks
from evorag.teams._ports import IndexHealth, Knowledge, RateLimit, TeamPorts
from evorag.teams._spec import TEAMS, load_spec

__all__ = [
    "ROLES",
    "TEAMS",
    "CheckResult",
    "GapProposal",
    "GapReport",
    "HealingReport",
    "IndexHealth",
    "Knowledge",
    "RateLimit",
    "TeamPorts",
    "build_conversation_team",
    "build_evolution_flow",
    "fill_knowledge_gaps",
    "find_knowledge_gaps",
    "load_spec",
    "run_conversation",
    "run_evolution",
    "run_healing",
    "run_health_checks",
    "serve_conversation_agents",
    "serve_host",
]
