"""Models: the embedding wrapper every layer above the backbone talks to."""
from .embedding import EmbeddingModel

__all__ = ["EmbeddingModel"]
