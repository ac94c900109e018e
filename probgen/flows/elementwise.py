"""Monotone elementwise maps ``z_i = g(x_i; theta_i)`` whose parameters a conditioner predicts.

Each map takes ``x`` of shape ``(N, D)`` and raw parameters ``theta`` of shape
``(N, D, num_params)`` and returns ``z`` and the per-example ``log|det dz/dx|``, which for an
elementwise map is ``sum_i log g'(x_i)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


class Affine:
    """``z = x * exp(s) + t`` with ``s = c * tanh(s_raw / c)`` softly bounded for stability.

    ``log dz/dx = s``. References: Dinh et al. 2017, "Density estimation using Real NVP";
    Papamakarios et al. 2017, "Masked Autoregressive Flow for Density Estimation".
    """

    num_params = 2

    def __init__(self, max_log_scale: float = 3.0) -> None:
        self.max_log_scale = max_log_scale

    def _scale_shift(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        s = self.max_log_scale * torch.tanh(theta[..., 0] / self.max_log_scale)
        return s, theta[..., 1]

    def forward(self, x: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self._scale_shift(theta)
        return x * s.exp() + t, s.sum(-1)

    def inverse(self, z: Tensor, theta: Tensor) -> Tensor:
        s, t = self._scale_shift(theta)
        return (z - t) * torch.exp(-s)


class RationalQuadraticSpline:
    """Monotone rational-quadratic spline on ``[-B, B]``, identity outside (linear tails).

    ``K`` bins with widths ``w_k`` and heights ``h_k`` (softmax, at least ``min_bin``) and
    knot derivatives ``d_k > 0`` (softplus; 1 at the two ends so the tails join smoothly).
    In bin ``k`` with ``s_k = h_k / w_k`` and ``xi = (x - x_k) / w_k``,

        g(x) = y_k + h_k (s_k xi^2 + d_k xi (1 - xi)) / (s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi)),
        g'(x) = s_k^2 (d_{k+1} xi^2 + 2 s_k xi (1 - xi) + d_k (1 - xi)^2) / denominator^2,

    and ``g^{-1}`` is the root in ``[0, 1]`` of a quadratic in ``xi``. Raw parameters that
    are all zero give the identity map.

    References: Durkan et al. 2019, "Neural Spline Flows" (eqs. 4-8); Gregory & Delbourgo 1982.
    """

    def __init__(
        self, bins: int = 8, bound: float = 5.0, min_bin: float = 1e-3, min_derivative: float = 1e-3
    ) -> None:
        self.bins = bins
        self.bound = bound
        self.min_bin = min_bin
        self.min_derivative = min_derivative
        # softplus(raw + offset) + min_derivative == 1 at raw == 0
        self.offset = math.log(math.expm1(1.0 - min_derivative))

    @property
    def num_params(self) -> int:
        return 3 * self.bins - 1

    def _knots(self, theta: Tensor) -> Tensor:
        """Knot table of shape ``(K + 1, 3, N, D)``: rows x_k, y_k, d_k for k = 0..K."""
        k = self.bins
        # bins first: CPU softmax and cumsum over a short innermost axis are several times slower
        raw = theta.movedim(-1, 0)
        sizes = torch.softmax(raw[: 2 * k].unflatten(0, (2, k)), dim=1)
        sizes = self.min_bin + (1 - self.min_bin * k) * sizes
        knots = self.bound * (2 * torch.cumsum(sizes, dim=1) - 1)
        # the ends are exactly -B and B: the cumulative sum may miss B by rounding
        low = knots.new_full((2, 1, *knots.shape[2:]), -self.bound)
        knots = torch.cat([low, knots[:, :-1], -low], dim=1)
        derivs = F.softplus(raw[2 * k :] + self.offset) + self.min_derivative
        one = derivs.new_ones((1, *derivs.shape[1:]))
        derivs = torch.cat([one, derivs, one], dim=0)
        return torch.stack([knots[0], knots[1], derivs], dim=1)

    def _bin(self, table: Tensor, v: Tensor, row: int) -> tuple[Tensor, ...]:
        """Bin ends ``(x_k, x_k+1, y_k, y_k+1, d_k, d_k+1)`` of each ``v``, searched in ``row``."""
        k = (v >= table[1:-1, row]).sum(0, keepdim=True)
        index = torch.cat([k, k + 1], 0).unsqueeze(1).expand(2, 3, *v.shape)
        ends = torch.gather(table, 0, index)
        return ends[0, 0], ends[1, 0], ends[0, 1], ends[1, 1], ends[0, 2], ends[1, 2]

    def forward(self, x: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
        inside = x.abs() < self.bound
        x_in = torch.where(inside, x, torch.zeros_like(x))
        x0, x1, y0, y1, d0, d1 = self._bin(self._knots(theta), x_in, 0)
        w, h = x1 - x0, y1 - y0
        s = h / w
        xi = (x_in - x0) / w
        xi1 = xi * (1 - xi)
        denom = s + (d0 + d1 - 2 * s) * xi1
        z = y0 + h * (s * xi * xi + d0 * xi1) / denom
        grad = s * s * (d1 * xi * xi + 2 * s * xi1 + d0 * (1 - xi) ** 2) / (denom * denom)
        ladj = torch.where(inside, grad.log(), torch.zeros_like(grad))
        return torch.where(inside, z, x), ladj.sum(-1)

    def inverse(self, z: Tensor, theta: Tensor) -> Tensor:
        inside = z.abs() < self.bound
        z_in = torch.where(inside, z, torch.zeros_like(z))
        x0, x1, y0, y1, d0, d1 = self._bin(self._knots(theta), z_in, 1)
        w, h = x1 - x0, y1 - y0
        s = h / w
        dz = z_in - y0
        a = h * (s - d0) + dz * (d0 + d1 - 2 * s)
        b = h * d0 - dz * (d0 + d1 - 2 * s)
        c = -s * dz
        # the numerically stable root of a xi^2 + b xi + c = 0 that lies in [0, 1]
        xi = 2 * c / (-b - torch.sqrt((b * b - 4 * a * c).clamp_min(0)))
        return torch.where(inside, x0 + xi * w, z)


Elementwise = Affine | RationalQuadraticSpline
"""The elementwise maps ``g(x; theta)`` a coupling or autoregressive layer applies."""
