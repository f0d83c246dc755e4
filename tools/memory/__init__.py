"""Long-term memory (mem0, offline): what the evolution team asked for, how it ended, and why it failed.

``EvolutionMemory`` is what the pipeline records outcomes in and the orchestrator consults;
``Mem0Memory`` is the same store as an AutoGen ``Memory`` for ``AssistantAgent(memory=[...])``.
Everything lives under ``EVORAG_HOME/memory`` (or the configured Qdrant server); see ``_backend`` for
why this store, and what is done so that mem0 stays offline and writes nothing elsewhere.
"""

from evorag.tools.memory._backend import COLLECTION, memory_dir
from evorag.tools.memory._evolution_memory import EvolutionMemory, describe_outcome

__all__ = ["COLLECTION", "EvolutionMemory", "Mem0Memory", "Mem0MemoryConfig", "describe_outcome", "memory_dir"]


def __getattr__(name: str):
    # The AutoGen adapter imports autogen_core: only when asked for.
    if name in ("Mem0Memory", "Mem0MemoryConfig"):
        from evorag.tools.memory import _autogen

        return getattr(_autogen, name)
    raise AttributeError(f"module 'evorag.tools.memory' has no attribute {name!r}")
