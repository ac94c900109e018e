"""Embeddings of a diffusion time or noise level."""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalEmbedding(nn.Module):
    """Transformer-style features of a scalar ``t`` (Vaswani et al. 2017; Ho et al. 2020).

    ``emb(t)_k = sin(t w_k)`` and ``cos(t w_k)`` with ``w_k = scale * max_period^(-k / (d/2))``,
    so a time ``t in [0, 1]`` (``scale=1000``) or a step index (``scale=1``) is embedded smoothly.
    """

    def __init__(self, dim: int, scale: float = 1.0, max_period: float = 10000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError("embedding dimension must be even")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half) / half) * scale
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.reshape(-1, 1).to(self.freqs.dtype) * self.freqs
        return torch.cat([args.sin(), args.cos()], dim=-1)
