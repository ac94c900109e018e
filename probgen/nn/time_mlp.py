"""A time-conditioned MLP: the denoising network of diffusion models on vector data."""

from __future__ import annotations

import torch
from torch import nn

from probgen.nn.embeddings import SinusoidalEmbedding
from probgen.nn.mlp import MLP


class TimeConditionedMLP(nn.Module):
    """``f(x, t) = MLP([x, emb(x_1), ..., emb(x_D), emb(t)])`` for vectors ``x`` ``(N, D)``.

    ``emb(x_i)`` are sinusoidal features of each coordinate at frequencies from
    ``input_scale`` down (none when ``input_embedding_dim`` is 0): an MLP on raw coordinates
    learns high-frequency functions slowly (the spectral bias of Tancik et al. 2020,
    "Fourier features let networks learn high frequency functions in low dimensional domains").
    """

    def __init__(
        self,
        dim: int,
        hidden: tuple[int, ...],
        out_dim: int,
        embedding_dim: int,
        input_embedding_dim: int = 32,
        input_scale: float = 25.0,
    ) -> None:
        super().__init__()
        self.embedding = SinusoidalEmbedding(embedding_dim)
        self.input_embedding = (
            SinusoidalEmbedding(input_embedding_dim, scale=input_scale)
            if input_embedding_dim
            else None
        )
        self.mlp = MLP(dim * (1 + input_embedding_dim) + embedding_dim, hidden, out_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        features = [x, self.embedding(t)]
        if self.input_embedding is not None:
            features.append(self.input_embedding(x).reshape(x.shape[0], -1))
        return self.mlp(torch.cat(features, dim=-1))
