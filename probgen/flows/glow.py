"""Glow-style steps for images: squeeze, then actnorm, invertible 1x1 convolution, coupling.

A step maps ``(N, C, H, W)`` to itself: :class:`~probgen.flows.linear.ActNorm` per channel,
:class:`~probgen.flows.linear.LULinear` applied per pixel (the invertible 1x1 convolution), and
a :class:`ConvCoupling` whose conditioner is a small convolutional network. :class:`Squeeze`
trades resolution for channels first so the coupling sees spatial neighbourhoods.

References: Kingma & Dhariwal 2018, "Glow: Generative Flow with Invertible 1x1 Convolutions";
Dinh et al. 2017, "Density estimation using Real NVP" (squeezing, section 3.6).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from probgen.flows.core import Bijection

if TYPE_CHECKING:
    from probgen.flows.elementwise import Elementwise


class Squeeze(Bijection):
    """``(N, C, H, W) -> (N, 4C, H/2, W/2)``: each 2x2 patch becomes 4 channels; ``ladj = 0``."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = x.shape
        z = x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return z.reshape(n, 4 * c, h // 2, w // 2), x.new_zeros(n)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        n, c4, h, w = z.shape
        x = z.reshape(n, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(n, c4 // 4, 2 * h, 2 * w)


class ConvCoupling(Bijection):
    """``z = (x_a, g(x_b; theta(x_a)))`` over channel halves, ``theta`` from a conv net.

    The conditioner is Glow's: a 3x3 convolution to ``hidden[0]`` channels, a 1x1 convolution
    to each further width in ``hidden``, ReLUs between, and a 3x3 convolution to ``g``'s
    parameters (zero-initialised, so a fresh step is the identity). ``g`` is any map from
    :mod:`~probgen.flows.elementwise` applied at every pixel of ``x_b``; ``log|det|`` sums
    ``log g'`` over those pixels.
    """

    def __init__(self, channels: int, elementwise: Elementwise, hidden: Sequence[int]) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError("a channel coupling needs at least two channels")
        if not hidden:
            raise ValueError("a channel coupling's conditioner needs at least one hidden width")
        self.split = channels // 2
        self.transformed = channels - self.split
        self.elementwise = elementwise
        layers: list[nn.Module] = [nn.Conv2d(self.split, hidden[0], 3, padding=1), nn.ReLU()]
        for width_in, width in zip(hidden, hidden[1:], strict=False):
            layers += [nn.Conv2d(width_in, width, 1), nn.ReLU()]
        out = nn.Conv2d(hidden[-1], self.transformed * elementwise.num_params, 3, padding=1)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.conditioner = nn.Sequential(*layers, out)

    def _theta(self, xa: torch.Tensor) -> torch.Tensor:
        # (N, C_b * P, H, W) -> (N, C_b * H * W, P), matching x_b flattened per example
        theta = self.conditioner(xa).unflatten(1, (self.transformed, -1))
        return theta.movedim(2, -1).flatten(1, -2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xa, xb = x[:, : self.split], x[:, self.split :]
        zb, ladj = self.elementwise.forward(xb.flatten(1), self._theta(xa))
        return torch.cat([xa, zb.reshape(xb.shape)], 1), ladj

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        za, zb = z[:, : self.split], z[:, self.split :]
        xb = self.elementwise.inverse(zb.flatten(1), self._theta(za))
        return torch.cat([za, xb.reshape(zb.shape)], 1)
