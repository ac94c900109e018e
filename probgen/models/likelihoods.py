"""Observation models p(x | z) for decoders: Bernoulli, Gaussian, discretised logistic."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pyro.distributions import Bernoulli, Normal, TorchDistribution, constraints


class DiscretizedLogistic(TorchDistribution):
    """A logistic density integrated over the bins of ``levels`` equally spaced values.

    Data are model-space intensities ``x = k / (levels - 1)`` in [0, 1]; bin ``k`` covers
    ``x +- 1 / (2 (levels - 1))`` and the end bins extend to infinity, so the probabilities
    of all levels sum to one:

        P(k) = sigmoid((x_k + h - mu) / s) - sigmoid((x_k - h - mu) / s).

    References: Salimans et al. 2017, PixelCNN++ (discretised logistic likelihood).
    """

    arg_constraints = {"loc": constraints.real, "log_scale": constraints.real}
    support = constraints.unit_interval
    has_rsample = False

    def __init__(
        self,
        loc: torch.Tensor,
        log_scale: torch.Tensor,
        levels: int,
        validate_args: bool | None = None,
    ) -> None:
        self.loc, self.log_scale = torch.broadcast_tensors(loc, log_scale)
        self.levels = int(levels)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(
        self,
        batch_shape: torch.Size | tuple[int, ...],
        _instance: DiscretizedLogistic | None = None,
    ) -> DiscretizedLogistic:
        return DiscretizedLogistic(
            self.loc.expand(batch_shape), self.log_scale.expand(batch_shape), self.levels
        )

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        k = torch.round(value * (self.levels - 1))
        half = 0.5 / (self.levels - 1)
        log_scale = self.log_scale.clamp_min(-7.0)
        inv_s = torch.exp(-log_scale)
        centred = k / (self.levels - 1) - self.loc
        upper, lower = (centred + half) * inv_s, (centred - half) * inv_s
        cdf_delta = torch.sigmoid(upper) - torch.sigmoid(lower)
        # where the bin's mass underflows, the density at its centre times its width (the
        # PixelCNN++ recipe) keeps the value and its gradient finite
        mid = centred * inv_s
        log_pdf_mid = mid - log_scale - 2.0 * F.softplus(mid) + math.log(2 * half)
        interior = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp_min(1e-12)), log_pdf_mid)
        first = F.logsigmoid(upper)
        last = F.logsigmoid(-lower)
        return torch.where(k <= 0, first, torch.where(k >= self.levels - 1, last, interior))

    @property
    def mean(self) -> torch.Tensor:
        return self.loc.clamp(0.0, 1.0)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        u = torch.rand(shape, device=self.loc.device, dtype=self.loc.dtype).clamp(1e-6, 1 - 1e-6)
        x = self.loc + torch.exp(self.log_scale) * (torch.log(u) - torch.log1p(-u))
        return torch.round(x.clamp(0.0, 1.0) * (self.levels - 1)) / (self.levels - 1)


def observation(
    kind: str,
    params: torch.Tensor,
    log_scale: torch.Tensor | None,
    levels: int | None,
    event_dims: int,
) -> TorchDistribution:
    """The decoder's distribution with the last ``event_dims`` dimensions as one example.

    ``bernoulli`` reads ``params`` as logits (on intensities in [0, 1], so ``validate_args`` is
    off, as in Kingma & Welling 2014); ``gaussian`` and ``discretized`` read it as the mean
    with a learned per-dimension log-scale.
    """
    if kind == "bernoulli":
        base = Bernoulli(logits=params, validate_args=False)
    elif kind == "gaussian":
        base = Normal(params, F.softplus(log_scale) + 1e-4)
    elif kind == "discretized":
        base = DiscretizedLogistic(params, log_scale.expand_as(params), levels)
    else:
        raise ValueError(f"unknown likelihood {kind!r}")
    return base.to_event(event_dims)


def observation_mean(kind: str, params: torch.Tensor) -> torch.Tensor:
    """The decoder's mean, E[x | z]."""
    if kind == "bernoulli":
        return torch.sigmoid(params)
    if kind == "discretized":
        return params.clamp(0.0, 1.0)
    return params
