"""Embedders behind one Protocol; ``create_embedder`` picks one from settings."""

from evorag.tools.embedding._base import Embedder, normalize
from evorag.tools.embedding._factory import create_embedder

__all__ = ["Embedder", "create_embedder", "normalize"]
