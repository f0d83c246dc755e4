"""Embedders behind one Protocol; ``create_embedder`` picks one from settings."""

from tools.embedding._base import Embedder, normalize
from tools.embedding._factory import create_embedder

__all__ = ["Embedder", "create_embedder", "normalize"]
