"""Linear and normalising bijections that mix or rescale coordinates between flow layers.

Each acts on dimension 1 of ``(N, C)`` vectors or ``(N, C, H, W)`` images (per pixel for
images, so the log-determinant of the per-pixel map is multiplied by ``H * W``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from probgen.flows.core import Bijection


def _pixels(x: Tensor) -> int:
    """Number of positions a per-channel map is applied at (1 for vectors)."""
    return math.prod(x.shape[2:])


def _channel_view(v: Tensor, x: Tensor) -> Tensor:
    """A per-channel vector shaped to broadcast against ``x``."""
    return v.reshape(1, -1, *([1] * (x.dim() - 2)))


class Permutation(Bijection):
    """``z = x[:, perm]``: a fixed reordering of coordinates, ``log|det| = 0``."""

    def __init__(self, perm: Tensor) -> None:
        super().__init__()
        self.register_buffer("perm", perm.long())
        self.register_buffer("inverse_perm", torch.argsort(perm).long())

    @classmethod
    def reverse(cls, features: int) -> Permutation:
        return cls(torch.arange(features - 1, -1, -1))

    @classmethod
    def random(cls, features: int, generator: torch.Generator | None = None) -> Permutation:
        return cls(torch.randperm(features, generator=generator))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z[:, self.inverse_perm]


class LULinear(Bijection):
    """``z = W x + b`` with ``W = P L U`` (P fixed permutation, L unit lower, U upper triangular).

    ``log|det W| = sum_i log|U_ii|``, with ``U_ii = sign_i exp(s_i)``, costs O(C) instead of the
    O(C^3) of a dense determinant. On images this is Glow's invertible 1x1 convolution.
    ``init="identity"`` starts at ``W = P``; ``init="orthogonal"`` at the LU factors of a random
    rotation (Glow).

    References: Kingma & Dhariwal 2018, "Glow: Generative Flow with Invertible 1x1
    Convolutions" (section 3.2); Durkan et al. 2019, "Neural Spline Flows" (LU-linear layers).
    """

    def __init__(
        self,
        features: int,
        perm: Tensor | None = None,
        init: str = "identity",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        eye = torch.eye(features)
        if init == "orthogonal":
            q, _ = torch.linalg.qr(torch.randn(features, features, generator=generator))
            p, lower, upper = torch.linalg.lu(q)
        elif init == "identity":
            p = eye[:, perm] if perm is not None else eye
            lower, upper = eye, eye
        else:
            raise ValueError(f"unknown LU initialisation {init!r}")
        diag = upper.diagonal()
        self.register_buffer("p", p)
        self.register_buffer("sign", diag.sign())
        self.register_buffer("lower_mask", torch.tril(torch.ones_like(eye), -1))
        self.lower = nn.Parameter(lower * self.lower_mask)
        self.upper = nn.Parameter(upper.triu(1))
        self.log_diag = nn.Parameter(diag.abs().log())
        self.bias = nn.Parameter(torch.zeros(features))

    def _factors(self) -> tuple[Tensor, Tensor]:
        eye = torch.eye(self.p.shape[0], dtype=self.p.dtype, device=self.p.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper.triu(1) + torch.diag(self.sign * self.log_diag.exp())
        return lower, upper

    def weight(self) -> Tensor:
        lower, upper = self._factors()
        return self.p @ lower @ upper

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        w = self.weight()
        if x.dim() == 2:
            z = F.linear(x, w, self.bias)
        else:
            z = F.conv2d(x, w[:, :, None, None]) + _channel_view(self.bias, x)
        ladj = self.log_diag.sum() * _pixels(x)
        return z, ladj.expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        lower, upper = self._factors()
        channels_last = z.movedim(1, -1) - self.bias
        # W^{-1} r = U^{-1} L^{-1} P^T r, by two triangular solves
        r = (channels_last @ self.p).unsqueeze(-1)
        r = torch.linalg.solve_triangular(lower, r, upper=False, unitriangular=True)
        r = torch.linalg.solve_triangular(upper, r, upper=True)
        return r.squeeze(-1).movedim(-1, 1)


class ActNorm(Bijection):
    """``z = (x - b) * exp(s)`` per channel, initialised from the first training batch.

    On the first call in training mode ``b`` and ``s`` are set so that batch's output has zero
    mean and unit variance per channel (data-dependent initialisation; averaged over processes
    under ``torch.distributed``); a buffer records that this happened so a reloaded model does
    not repeat it. ``log|det| = (positions) * sum s``.

    References: Kingma & Dhariwal 2018, "Glow" (section 3.1).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        per_channel = x.movedim(1, -1).reshape(-1, x.shape[1])
        self.shift.copy_(per_channel.mean(0))
        self.log_scale.copy_(-per_channel.std(0).clamp_min(1e-6).log())
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            # under DDP every rank must start from the same parameters: average their batches'
            for p in (self.shift, self.log_scale):
                torch.distributed.all_reduce(p)
                p.div_(torch.distributed.get_world_size())
        self.initialized.fill_(True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not self.initialized:
            self._initialize(x)
        z = (x - _channel_view(self.shift, x)) * _channel_view(self.log_scale.exp(), x)
        return z, (self.log_scale.sum() * _pixels(x)).expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z * _channel_view(torch.exp(-self.log_scale), z) + _channel_view(self.shift, z)


class BatchNorm(Bijection):
    """``z = (x - m) / sqrt(v + eps) * exp(g) + beta`` per channel, as in MAF.

    Training uses the batch's mean and variance (and updates running averages); evaluation and
    the inverse use the running averages, so call ``model.eval()`` before scoring held-out
    data. ``log|det| = (positions) * sum_i (g_i - log(v_i + eps) / 2)``.

    References: Dinh et al. 2017, "Real NVP" (section 3.7); Papamakarios et al. 2017, "MAF"
    (section 3.4).
    """

    def __init__(self, channels: int, momentum: float = 0.05, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.log_gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training:
            per_channel = x.movedim(1, -1).reshape(-1, x.shape[1])
            mean, var = per_channel.mean(0), per_channel.var(0, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        log_scale = self.log_gamma - 0.5 * torch.log(var + self.eps)
        z = (x - _channel_view(mean, x)) * _channel_view(log_scale.exp(), x)
        z = z + _channel_view(self.beta, x)
        return z, (log_scale.sum() * _pixels(x)).expand(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        log_scale = self.log_gamma - 0.5 * torch.log(self.running_var + self.eps)
        x = (z - _channel_view(self.beta, z)) * _channel_view(torch.exp(-log_scale), z)
        return x + _channel_view(self.running_mean, z)
