"""Network blocks shared by the families: MLPs, time/noise embeddings, EMA."""

from probgen.nn.ema import EMA
from probgen.nn.embeddings import SinusoidalEmbedding
from probgen.nn.mlp import MLP

__all__ = ["EMA", "MLP", "SinusoidalEmbedding"]
