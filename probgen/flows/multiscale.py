"""Multi-scale image flows: squeeze, flow steps, factor half the channels out, repeat.

At each scale the image is squeezed (``(C, H, W) -> (4C, H/2, W/2)``), passed through Glow
steps, and half of its channels leave the flow as base-space coordinates
(:class:`FactorOut`); only the other half is squeezed and transformed again. Early coordinates
model local detail cheaply, later ones global structure at a quarter of the cost per scale.
Every factored-out coordinate has the standard-normal base like the rest, so

    log p(x) = log N(f(x); 0, I) + sum over scales of log|det df_s/dx_s|

is still exact.

References: Dinh et al. 2017, "Density estimation using Real NVP" (section 3.6, multi-scale
architecture); Kingma & Dhariwal 2018, "Glow: Generative Flow with Invertible 1x1
Convolutions"; Dinh et al. 2015, "NICE: Non-linear Independent Components Estimation" (dense
couplings over whole images, the optional top).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from probgen.flows.core import Bijection, Compose, Flatten
from probgen.flows.elementwise import Affine
from probgen.flows.glow import ConvCoupling, Squeeze
from probgen.flows.linear import ActNorm, LULinear


class FactorOut(Bijection):
    """``(N, C, H, W) -> (N, D)``: ``inner`` on the first ``keep`` channels, the rest unchanged.

    ``inner`` maps ``(N, keep, H, W)`` to flat ``(N, D_inner)``; the output is
    ``[inner(x_a), flatten(x_b)]``, so ``log|det| = log|det d inner/dx_a|`` (the factored-out
    ``x_b`` is passed through, a block-triangular Jacobian with an identity block).
    """

    def __init__(self, inner: Bijection, keep: int, event_shape: tuple[int, int, int]) -> None:
        super().__init__()
        channels, height, width = event_shape
        if not 0 < keep < channels:
            raise ValueError(f"keep must be in 1..{channels - 1}, got {keep}")
        self.inner = inner
        self.keep = keep
        self.kept_dim = keep * height * width
        self.out_shape = (channels - keep, height, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        za, ladj = self.inner(x[:, : self.keep])
        return torch.cat([za, x[:, self.keep :].flatten(1)], 1), ladj

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        xa = self.inner.inverse(z[:, : self.kept_dim])
        xb = z[:, self.kept_dim :].reshape(z.shape[0], *self.out_shape)
        return torch.cat([xa, xb], 1)


def glow_steps(channels: int, steps: int, hidden: Sequence[int]) -> list[Bijection]:
    """``steps`` Glow steps on ``channels``: actnorm, invertible 1x1 convolution, coupling
    (conditioner widths ``hidden``)."""
    layers: list[Bijection] = []
    for _ in range(steps):
        layers += [
            ActNorm(channels),
            LULinear(channels, init="orthogonal"),
            ConvCoupling(channels, Affine(), hidden),
        ]
    return layers


def possible_scales(height: int, width: int, most: int = 3) -> int:
    """How many times (at most ``most``) the sides halve evenly: the scales a flow can have."""
    scales = 0
    while scales < most and height % 2 == 0 and width % 2 == 0:
        height, width, scales = height // 2, width // 2, scales + 1
    return scales


def multiscale_flow(
    event_shape: tuple[int, int, int],
    scales: int,
    steps: int,
    hidden: Sequence[int],
    top: Callable[[int], Bijection] | None = None,
) -> Bijection:
    """A ``scales``-level flow from images ``(C, H, W)`` to flat base vectors ``(N, C*H*W)``.

    Each level: squeeze, ``steps`` Glow steps; all but the last then factor half their
    channels out (:class:`FactorOut`) and recurse on the rest. ``top(D)``, if given, is a
    bijection of the last level's ``D`` coordinates flattened: a dense flow there relates
    every position of the coarsest level to every other, which convolutions only reach
    through depth.
    """
    channels, height, width = event_shape
    if scales < 1 or possible_scales(height, width, scales) < scales:
        raise ValueError(f"{height}x{width} images do not halve {scales} times")
    squeezed = (4 * channels, height // 2, width // 2)
    layers = [Squeeze(), *glow_steps(squeezed[0], steps, hidden)]
    if scales == 1:
        flat = [Flatten(squeezed)] + ([top(math.prod(squeezed))] if top is not None else [])
        return Compose(*layers, *flat)
    keep = squeezed[0] // 2
    inner = multiscale_flow((keep, *squeezed[1:]), scales - 1, steps, hidden, top)
    return Compose(*layers, FactorOut(inner, keep, squeezed))
