"""evorag's agents (AutoGen AgentChat) and the model-client factory they share with the answerer.

The Evolution Orchestrator plans, the Tool Generator writes, the Dependency Validator and Code Debugger run the
static gates (and repair), the Integration Tester runs the sandbox and regression gates, the human proxy
approves, and the Deployer commits. Teams are assembled in ``teams``.
"""

from evorag.agents import _prompts as prompts
from evorag.agents._evolution_agents import (
    CodeDebugger,
    DependencyValidator,
    Deployer,
    EvolutionOrchestrator,
    IntegrationTester,
    ToolGenerator,
)
from evorag.agents._human import approval_proxy
from evorag.agents._parsing import extract_files
from evorag.agents._state import EvolutionState

__all__ = [
    "CodeDebugger",
    "DependencyValidator",
    "Deployer",
    "EvolutionOrchestrator",
    "EvolutionState",
    "IntegrationTester",
    "ToolGenerator",
    "approval_proxy",
    "extract_files",
    "prompts",
]
