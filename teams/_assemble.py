"""Assembling a team from its resolved spec: each node's agent from the registry's builder, then a GraphFlow
(evolution and graph teams) with the spec's edges, conditions and activation groups."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from autogen_agentchat.base import ChatAgent, TerminationCondition
from autogen_agentchat.teams import DiGraphBuilder, GraphFlow
from evorag.agents import AgentContext
from evorag.teams._registry import PluginRegistry
from evorag.teams._team_spec import ResolvedTeam, edge_condition

from evorag.errors import ConfigError, UserError


def build_agents(team: ResolvedTeam, registry: PluginRegistry, context: Callable[[str], AgentContext], *,
                 stand_ins: Mapping[str, ChatAgent] | None = None) -> dict[str, ChatAgent]:
    """The agents of ``team`` by node name: a stand-in where given (e.g. a RemoteAgent), else the registry's
    builder for the team's flow called with ``context(name)``. A builder that fails or returns something
    else than an agent of that name is a ConfigError naming the agent and where it comes from."""
    agents: dict[str, ChatAgent] = {}
    for name in team.nodes:
        if stand_ins and name in stand_ins:
            agents[name] = stand_ins[name]
            continue
        plugin = registry.agent(name)
        builder = plugin.step if team.flow == "evolution" else plugin.chat
        origin = registry.origin("agent", name).label()
        try:
            agent = builder(context(name))
        except Exception as exc:  # a plugin's builder is someone else's code: any error is its
            raise ConfigError(f"agent {name} from {origin} could not be built for team {team.name}: "
                              f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(agent, ChatAgent) or agent.name != name:
            raise ConfigError(f"agent {name} from {origin} built {type(agent).__name__} "
                              f"{getattr(agent, 'name', '')!r}, not an AgentChat agent named {name}")
        agents[name] = agent
    return agents


def build_graph_flow(team: ResolvedTeam, agents: Mapping[str, ChatAgent], *, termination: TerminationCondition,
                     runtime=None) -> GraphFlow:
    builder = DiGraphBuilder()
    for name in team.nodes:
        builder.add_node(agents[name])
    builder.set_entry_point(agents[team.entry])
    for edge in team.edges:
        builder.add_edge(agents[edge.source], agents[edge.target],
                         condition=edge_condition(edge.when) if edge.when else None,
                         activation_group=edge.group, activation_condition=edge.activation)
    try:
        graph = builder.build()
    except ValueError as exc:  # resolve_team ran the same checks; kept for graphs assembled another way
        raise UserError(f"team {team.name}: {exc}") from None
    return GraphFlow(participants=builder.get_participants(), graph=graph, termination_condition=termination,
                     runtime=runtime)
