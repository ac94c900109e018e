"""The logit bijection that maps bounded data (image intensities) onto the real line."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from probgen.flows.core import Bijection


class Logit(Bijection):
    """``z = logit(a + (1 - 2a) (x - lo) / (hi - lo))`` elementwise, for data in ``[lo, hi]``.

    The margin ``a`` keeps the ends of the range finite. With ``p`` the squeezed value,

        log|det dz/dx| = sum_i [log((1 - 2a) / (hi - lo)) - log p_i - log(1 - p_i)],

    so a density over ``z`` is an exact density over ``x``. ``inverse`` is the sigmoid map
    back; its image is ``(lo - m, hi + m)`` with ``m = a (hi - lo) / (1 - 2a)``.

    References: Dinh et al. 2017, "Density estimation using Real NVP" (section 4.1).
    """

    def __init__(self, low: float, high: float, alpha: float = 0.05) -> None:
        super().__init__()
        if not 0 <= alpha < 0.5:
            raise ValueError("the logit margin alpha must lie in [0, 0.5)")
        self.low, self.high, self.alpha = float(low), float(high), float(alpha)
        self.log_slope = math.log((1 - 2 * self.alpha) / (self.high - self.low))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * (x - self.low) / (self.high - self.low)
        z = torch.log(p) - torch.log1p(-p)
        # -log p - log(1 - p) == softplus(z) + softplus(-z), which stays finite in float32
        ladj = self.log_slope + F.softplus(z) + F.softplus(-z)
        return z, ladj.flatten(1).sum(-1)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(z)
        return self.low + (p - self.alpha) / (1 - 2 * self.alpha) * (self.high - self.low)
