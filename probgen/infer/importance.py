"""Per-example importance weights of a model/guide pair, and the bounds built from them.

For a model p(x, z) and guide q(z | x), draw z_k ~ q(z | x) and weigh it by

    log w_k = log p(x, z_k) - log q(z_k | x).

The mean of log w over k is the ELBO; ``logsumexp_k log w_k - log K`` is the importance-weighted
bound (IWAE, Burda et al. 2016), which tightens to log p(x) as K grows.

References: Burda, Grosse & Salakhutdinov 2016, Importance Weighted Autoencoders.
"""

from __future__ import annotations

import math

import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample


def particle_traces(model, guide, x, y=None, num_particles: int = 1):
    """Guide and replayed model traces with the data repeated ``num_particles`` times.

    Repeating along the batch (rather than an extra particle plate) lets any model whose
    observations sit in one data plate over ``x``'s first dimension work unchanged (MLPs,
    convolutions, conditional flows); site values and log-probabilities come out with
    ``num_particles * len(x)`` rows, particle-major.
    """
    k = num_particles
    xr = x.repeat(k, *([1] * (x.dim() - 1)))
    yr = y.repeat(k) if y is not None else None
    guide_trace = poutine.trace(guide).get_trace(xr, yr)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(xr, yr)
    return model_trace, guide_trace


def latent_sites(trace) -> list[str]:
    """Names of the sampled (not observed, not plate) sites of a trace."""
    return [
        name
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site) and not site["is_observed"]
    ]


def log_importance_weights(model, guide, x, y=None, num_particles: int = 1) -> torch.Tensor:
    """``log p(x, z_k) - log q(z_k | x)`` with shape ``(num_particles, len(x))``.

    Site scales (such as a beta-VAE's KL weight) are ignored: these are the weights of the
    unscaled model.
    """
    k, n = num_particles, x.shape[0]
    model_trace, guide_trace = particle_traces(model, guide, x, y, k)
    log_w = x.new_zeros(k * n)
    for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        trace.compute_log_prob()
        for site in trace.nodes.values():
            if site["type"] == "sample":
                lp = site["log_prob"]
                log_w = log_w + sign * (lp.reshape(k * n) if lp.dim() else lp / (k * n))
    return log_w.reshape(k, n)


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """``logsumexp_k log w_k - log K`` per example, from weights shaped ``(K, N)``."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def log_marginal_estimate(
    model, guide, x, y=None, num_particles: int = 1000, chunk: int = 100
) -> torch.Tensor:
    """Importance-sampled log p(x) per example with ``num_particles`` draws from the guide.

    Particles are drawn ``chunk`` at a time so memory stays bounded; the chunks combine
    exactly through ``logsumexp``.
    """
    parts = []
    remaining = num_particles
    while remaining > 0:
        k = min(chunk, remaining)
        parts.append(log_importance_weights(model, guide, x, y, k))
        remaining -= k
    return iwae_bound(torch.cat(parts, dim=0))
