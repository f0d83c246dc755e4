"""evorag's own agents and teams, registered in the registry plugins use: the agents with their builders, the
teams as the spec files in teams/specs/ (the default evolution graph among them, so a plugin team can extend
it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path

from evorag.agents import (
    AgentPlugin,
    CodeDebugger,
    DependencyValidator,
    Deployer,
    EvolutionOrchestrator,
    IntegrationTester,
    ToolGenerator,
    approval_proxy,
)
from evorag.teams._conversation import chat_assistant, chat_deployer, human_participant
from evorag.teams._registry import PluginRegistry, installed_entry_points
from evorag.teams._team_spec import TeamSpec, load_team_spec

SPECS = Path(__file__).with_name("specs")
BUILTIN_TEAMS = ("evolution", "conversation", "healing", "gaps")


def builtin_agents() -> tuple[AgentPlugin, ...]:
    """The steps of the evolution flow and, for those that also chat, their conversation-team members."""
    def agent(name: str, description: str, *, step, chat_prompt: str | None = None) -> AgentPlugin:
        chat = chat_assistant(description, chat_prompt) if chat_prompt else None
        return AgentPlugin(name, description, step=step, chat=chat)

    return (
        agent("orchestrator", "Plans the new tool and coordinates the team; searches the documentation.",
              step=lambda c: EvolutionOrchestrator(state=c.state, model_client=c.model_client, memory=c.memory),
              chat_prompt="ORCHESTRATOR_CHAT"),
        agent("dependency_validator", "Checks the packages a change needs.",
              step=lambda c: DependencyValidator(state=c.state), chat_prompt="DEPENDENCY_VALIDATOR"),
        agent("tool_generator", "Writes the tool and its tests.",
              step=lambda c: ToolGenerator(state=c.state, model_client=c.model_client)),
        agent("code_debugger", "Checks and repairs code.",
              step=lambda c: CodeDebugger(state=c.state, model_client=c.model_client), chat_prompt="DEBUGGER"),
        agent("integration_tester", "Runs the tests in the sandbox.",
              step=lambda c: IntegrationTester(state=c.state, model_client=c.model_client),
              chat_prompt="INTEGRATION_TESTER"),
        AgentPlugin("human", "The person at the interface: approves changes, answers questions in chats.",
                    step=lambda c: approval_proxy(c.state), chat=human_participant, serve_remotely=False),
        AgentPlugin("deployer", "Deploys approved tools; in chats, submits the newest tool written there to the "
                    "gates and the approval.", step=lambda c: Deployer(state=c.state), chat=chat_deployer,
                    serve_remotely=False),
    )


def builtin_teams() -> tuple[TeamSpec, ...]:
    return tuple(load_team_spec(SPECS / f"{name}.yaml", builtin=True) for name in BUILTIN_TEAMS)


def default_registry(discover: Callable[[str], Iterable[metadata.EntryPoint]] = installed_entry_points
                     ) -> PluginRegistry:
    """A registry with evorag's agents and teams; installed plugins are read from ``discover`` on first need."""
    registry = PluginRegistry(discover)
    for item in (*builtin_agents(), *builtin_teams()):
        registry.register(item)
    return registry
