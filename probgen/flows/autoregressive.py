"""Masked autoregressive layers: ``z_i = g(x_i; theta_i(x_{<i}))`` in one network pass.

The conditioner is a MADE network (Germain et al. 2015): the weight masks let output ``i`` see
only inputs ``< i``, so the Jacobian ``dz/dx`` is triangular and

    log|det dz/dx| = sum_i log g'(x_i; theta_i(x_{<i})).

Scoring (``x -> z``) is one pass; inverting takes ``D`` passes, one coordinate at a time.

References: Papamakarios et al. 2017, "Masked Autoregressive Flow for Density Estimation";
Durkan et al. 2019, "Neural Spline Flows" (the autoregressive RQ-NSF).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probgen.flows.core import Bijection
from probgen.nn.mlp import activation

if TYPE_CHECKING:
    from probgen.flows.elementwise import Elementwise


class MaskedLinear(nn.Linear):
    """``y = x (W * M)^T + b`` with a fixed 0/1 connectivity mask ``M``."""

    def __init__(self, mask: Tensor) -> None:
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """An MLP from ``(N, D)`` to ``(N, D, P)`` whose output ``[:, i]`` depends on ``x_{<i}`` only.

    Degrees: input ``i`` has degree ``i``; hidden unit ``j`` has degree ``j mod (D - 1)`` and sees
    inputs of degree ``<=`` its own; output ``i`` sees hidden units of degree ``< i``. Output 0
    therefore depends on nothing but its bias. The last layer starts at zero so a fresh layer
    is the map the zero parameters define (the identity for :mod:`~probgen.flows.elementwise`).

    References: Germain et al. 2015, "MADE: Masked Autoencoder for Distribution Estimation".
    """

    def __init__(
        self, features: int, params: int, hidden: Sequence[int], act: str = "relu"
    ) -> None:
        super().__init__()
        self.features, self.params = features, params
        in_degree = torch.arange(features)
        degrees = [in_degree]
        layers: list[nn.Module] = []
        for width in hidden:
            out_degree = torch.arange(width) % max(features - 1, 1)
            layers += [MaskedLinear(out_degree[:, None] >= degrees[-1][None, :]), activation(act)]
            degrees.append(out_degree)
        out_degree = in_degree.repeat_interleave(params)
        last = MaskedLinear(out_degree[:, None] > degrees[-1][None, :])
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).unflatten(-1, (self.features, self.params))


class MaskedAutoregressive(Bijection):
    """``z_i = g(x_i; theta_i(x_{<i}))`` with ``g`` an elementwise map and ``theta`` from MADE."""

    def __init__(
        self, features: int, elementwise: Elementwise, hidden: Sequence[int], act: str = "relu"
    ) -> None:
        super().__init__()
        self.elementwise = elementwise
        self.conditioner = MADE(features, elementwise.num_params, hidden, act)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.elementwise.forward(x, self.conditioner(x))

    def inverse(self, z: Tensor) -> Tensor:
        # coordinate i of x is exact after pass i + 1 because theta_i only reads x_{<i}
        x = torch.zeros_like(z)
        for _ in range(z.shape[-1]):
            x = self.elementwise.inverse(z, self.conditioner(x))
        return x
