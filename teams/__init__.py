"""Team flows shared by the CLI, the MCP server and the UI (through the service, which hands them their ports).

* ``run_evolution``: request -> plan -> dependencies -> generate <-> debug <-> test -> approval -> deploy, as the
  GraphFlow of an evolution team spec (evorag's own, teams/specs/evolution.yaml, or a plugin's extending it).
* ``run_conversation``: a chat team: the conversation SelectorGroupChat of the same agents and the person, or a
  chat graph from a plugin; turn after turn while the person goes on.
* ``run_healing``: health checks -> diagnosis -> fix through the same gates -> checks again.
* ``find_knowledge_gaps`` / ``fill_knowledge_gaps``: weak answers -> crawl proposals -> approval -> crawl.

Agents and teams come from one ``PluginRegistry`` (``default_registry``): evorag's own and those of installed
packages (entry point groups ``evorag.agents`` and ``evorag.teams``; docs/architecture.md, "Plugins").
Every flow receives ``TeamPorts`` (settings, the ``Knowledge`` and ``IndexHealth`` ports, the evolution
pipeline, the rate limit, the model client and the registry), never the service itself.
"""

from evorag.teams._builtins import BUILTIN_TEAMS, builtin_agents, builtin_teams, default_registry
from evorag.teams._conversation import chat_team, run_conversation, serve_conversation_agents
from evorag.teams._distributed import serve_host
from evorag.teams._evolution import build_evolution_flow, evolution_team, run_evolution
from evorag.teams._gaps import GapProposal, GapReport, fill_knowledge_gaps, find_knowledge_gaps
from evorag.teams._healing import CheckResult, HealingReport, run_healing, run_health_checks
from evorag.teams._ports import IndexHealth, Knowledge, RateLimit, TeamPorts
from evorag.teams._registry import GROUPS, Origin, PluginInfo, PluginRegistry
from evorag.teams._spec import load_spec
from evorag.teams._team_spec import EdgeSpec, InsertSpec, ResolvedTeam, TeamSpec, load_team_spec

__all__ = [
    "BUILTIN_TEAMS",
    "GROUPS",
    "CheckResult",
    "EdgeSpec",
    "GapProposal",
    "GapReport",
    "HealingReport",
    "IndexHealth",
    "InsertSpec",
    "Knowledge",
    "Origin",
    "PluginInfo",
    "PluginRegistry",
    "RateLimit",
    "ResolvedTeam",
    "TeamPorts",
    "TeamSpec",
    "build_evolution_flow",
    "builtin_agents",
    "builtin_teams",
    "chat_team",
    "default_registry",
    "evolution_team",
    "fill_knowledge_gaps",
    "find_knowledge_gaps",
    "load_spec",
    "load_team_spec",
    "run_conversation",
    "run_evolution",
    "run_healing",
    "run_health_checks",
    "serve_conversation_agents",
    "serve_host",
]
