"""Coupling layers: the first half of the coordinates conditions an elementwise map of the rest.

With ``x = (x_a, x_b)``, ``z_a = x_a`` and ``z_b = g(x_b; theta(x_a))``; the Jacobian is block
triangular with identity on ``a``, so

    log|det dz/dx| = sum_{i in b} log g'(x_i; theta_i(x_a)),

and both directions take one network pass. Alternate which half is conditioned by putting a
permutation or an invertible linear map between layers.

References: Dinh et al. 2017, "Density estimation using Real NVP" (affine coupling);
Durkan et al. 2019, "Neural Spline Flows" (rational-quadratic coupling).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from probgen.flows.core import Bijection
from probgen.nn.mlp import MLP

if TYPE_CHECKING:
    from probgen.flows.elementwise import Elementwise


class Coupling(Bijection):
    """``z = (x_a, g(x_b; theta(x_a)))`` with ``x_a`` the first ``features // 2`` coordinates.

    The conditioner MLP's last layer starts at zero, so a fresh layer is the map the zero
    parameters define (the identity for :mod:`~probgen.flows.elementwise`).
    """

    def __init__(
        self, features: int, elementwise: Elementwise, hidden: Sequence[int], act: str = "relu"
    ) -> None:
        super().__init__()
        if features < 2:
            raise ValueError("a coupling layer needs at least two features")
        self.split = features // 2
        self.elementwise = elementwise
        self.transformed = features - self.split
        self.conditioner = MLP(self.split, hidden, self.transformed * elementwise.num_params, act)
        nn.init.zeros_(self.conditioner[-1].weight)
        nn.init.zeros_(self.conditioner[-1].bias)

    def _theta(self, xa: torch.Tensor) -> torch.Tensor:
        return self.conditioner(xa).unflatten(-1, (self.transformed, self.elementwise.num_params))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xa, xb = x[:, : self.split], x[:, self.split :]
        zb, ladj = self.elementwise.forward(xb, self._theta(xa))
        return torch.cat([xa, zb], -1), ladj

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        za, zb = z[:, : self.split], z[:, self.split :]
        return torch.cat([za, self.elementwise.inverse(zb, self._theta(za))], -1)
