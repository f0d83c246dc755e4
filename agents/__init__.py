"""evorag's agents (AutoGen AgentChat) and the model-client factory they share with the answerer.

The Evolution Orchestrator plans, the Tool Generator writes, the Dependency Validator and Code Debugger run the
static gates (and repair), the Integration Tester runs the sandbox and regression gates, the human proxy
approves, and the Deployer commits. Teams are assembled in ``teams`` from team specs naming agents.

Plugins add agents through the ``evorag.agents`` entry point group: an ``AgentPlugin`` with a ``step``
builder (a node of an evolution graph; ``VerdictAgent`` for a step that judges the candidate) and/or a
``chat`` builder (a participant of a chat team). See docs/architecture.md.
"""

from evorag.agents import _prompts as prompts
from evorag.agents._base import StepAgent
from evorag.agents._conversation import ConversationDeployer, ConversationHuman
from evorag.agents._evolution_agents import (
    CodeDebugger,
    DependencyValidator,
    Deployer,
    EvolutionOrchestrator,
    IntegrationTester,
    ToolGenerator,
)
from evorag.agents._human import REQUIRED_GATES, approval_proxy, required_gates
from evorag.agents._parsing import extract_files
from evorag.agents._plugin import AgentBuilder, AgentContext, AgentPlugin, Review, VerdictAgent
from evorag.agents._state import EvolutionState
from evorag.agents._verdicts import verdict_line, verdict_of

__all__ = [
    "REQUIRED_GATES",
    "AgentBuilder",
    "AgentContext",
    "AgentPlugin",
    "CodeDebugger",
    "ConversationDeployer",
    "ConversationHuman",
    "DependencyValidator",
    "Deployer",
    "EvolutionOrchestrator",
    "EvolutionState",
    "IntegrationTester",
    "Review",
    "StepAgent",
    "ToolGenerator",
    "VerdictAgent",
    "approval_proxy",
    "extract_files",
    "prompts",
    "required_gates",
    "verdict_line",
    "verdict_of",
]
