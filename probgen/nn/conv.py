"""Small convolutional encoders and decoders for images of any size (8x8, 28x28, ...)."""

from __future__ import annotations

import math

import torch
from torch import nn

from probgen.nn.mlp import activation


class ConvEncoder(nn.Module):
    """``(N, C, H, W) -> (N, out_features)``: two stride-2 convolutions, then a linear layer."""

    def __init__(
        self, in_shape: tuple[int, int, int], out_features: int, width: int = 32, act: str = "silu"
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 3, stride=2, padding=1),
            activation(act),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            activation(act),
            nn.Flatten(),
        )
        flat = 2 * width * math.ceil(math.ceil(h / 2) / 2) * math.ceil(math.ceil(w / 2) / 2)
        self.head = nn.Linear(flat, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ConvDecoder(nn.Module):
    """``(..., in_features) -> (..., C, H, W)``: a linear layer then two 2x up-convolutions.

    The up-sampled map covers ``4 * ceil(H / 4)`` pixels per side and is cropped to ``H x W``,
    so any image size works. Leading batch dimensions are kept.
    """

    def __init__(
        self, in_features: int, out_shape: tuple[int, int, int], width: int = 32, act: str = "silu"
    ) -> None:
        super().__init__()
        self.out_shape = tuple(out_shape)
        c, h, w = out_shape
        self.h4, self.w4 = math.ceil(h / 4), math.ceil(w / 4)
        self.width = width
        self.head = nn.Sequential(
            nn.Linear(in_features, 2 * width * self.h4 * self.w4), activation(act)
        )
        self.body = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            activation(act),
            nn.ConvTranspose2d(width, c, 4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        h = self.head(z.reshape(-1, z.shape[-1])).reshape(-1, 2 * self.width, self.h4, self.w4)
        c, hh, ww = self.out_shape
        return self.body(h)[..., :hh, :ww].reshape(*lead, c, hh, ww)
