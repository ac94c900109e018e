"""Langevin samplers on a batch of independent particles, with no Pyro tracing.

Langevin dynamics moves a point along the score of the target and adds Gaussian noise,

    x <- x + h * grad log p(x) + sqrt(2 h) * eps,      eps ~ N(0, I),

the Euler-Maruyama step of the diffusion dX = grad log p(X) dt + sqrt(2) dW whose stationary law
is p (with ``h = sigma^2 / 2`` this is the outline's ``x + (sigma^2/2) grad log p + sigma eps``).
The unadjusted chain (ULA, :func:`langevin_dynamics`) is biased by O(h); a Metropolis-Hastings
correction of each step (MALA, :func:`mala`) removes the bias; annealing over a decreasing noise
ladder (NCSN, :func:`annealed_langevin_dynamics`) lets the chain cross between modes and recover
their weights, which plain Langevin cannot.

This is the fast path that sampling from a score or energy model uses: a whole batch moves at
once. :func:`langevin_move` (the step) and :func:`langevin_log_q` (the density of the step as a
proposal, which the Metropolis-Hastings test of MALA needs) are the one implementation of the
step that the Pyro kernels of :mod:`probgen.infer.langevin` share.

References:
    Roberts & Tweedie 1996, "Exponential convergence of Langevin distributions and their
    discrete approximations"; Welling & Teh 2011, "Bayesian learning via stochastic gradient
    Langevin dynamics"; Song & Ermon 2019, "Generative modeling by estimating gradients of the
    data distribution" (NCSN).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from probgen.infer.noise import randn_like

Clamp = tuple[float | torch.Tensor, float | torch.Tensor] | None


def _clamp(x: torch.Tensor, clamp: Clamp) -> torch.Tensor:
    if clamp is None:
        return x
    low, high = (torch.as_tensor(b, dtype=x.dtype, device=x.device) for b in clamp)
    return torch.clamp(x, min=low, max=high)


def _per_particle(value: float | torch.Tensor, x: torch.Tensor) -> float | torch.Tensor:
    """A scalar stays a scalar; a tensor of one value per particle is shaped to broadcast."""
    if torch.is_tensor(value) and value.dim() == 1 and len(value) == len(x):
        return value.reshape(-1, *([1] * (x.dim() - 1)))
    return value


def _sqrt_2h(step_size: float | torch.Tensor) -> float | torch.Tensor:
    return torch.sqrt(2 * step_size) if torch.is_tensor(step_size) else math.sqrt(2 * step_size)


def langevin_move(
    x: torch.Tensor,
    score: torch.Tensor,
    step_size: float | torch.Tensor,
    noise_std: float | torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """One Langevin step ``x + h s + noise_std eps`` from ``x`` with score ``s`` and ``eps``
    ``= noise`` (``noise_std = sqrt(2h)`` is the exact discretisation)."""
    return x + step_size * score + noise_std * noise


def langevin_log_q(
    to: torch.Tensor,
    frm: torch.Tensor,
    score_frm: torch.Tensor,
    step_size: float | torch.Tensor,
) -> torch.Tensor:
    """``log q(to | frm)`` elementwise, up to a constant, for the Langevin proposal
    ``q = N(frm + h grad log p(frm), 2h I)``; summed over a state's coordinates it enters
    MALA's acceptance ratio ``p(y) q(x|y) / (p(x) q(y|x))``."""
    return -((to - frm - step_size * score_frm) ** 2 / (4 * step_size))


def score_of(log_prob_fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """The score ``grad_x log p(x)`` of a per-particle log-density, by autograd.

    Works inside ``torch.no_grad()`` (sampling code usually is), and keeps no graph: the
    returned tensor is detached. For an energy model pass ``lambda x: -energy(x)``.
    """

    def score_fn(x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(log_prob_fn(x).sum(), x)
        return grad.detach()

    return score_fn


def langevin_dynamics(
    x: torch.Tensor,
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    n_steps: int,
    step_size: float | torch.Tensor,
    noise_std: float | torch.Tensor | None = None,
    clamp: Clamp = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Unadjusted Langevin dynamics on a batch of particles.

    ``x <- x + step_size * score_fn(x) + noise_std * eps`` for ``n_steps`` steps, with
    ``noise_std = sqrt(2 step_size)`` by default (the exact Langevin discretisation; a smaller
    value is the "reduced noise" variant used to train EBMs), and each step optionally projected
    onto the box ``clamp = (low, high)``. ``step_size`` and ``noise_std`` may be tensors of one
    value per particle. No autograd graph is kept between steps.

    Args:
        x: initial particles ``(N, ...)``.
        score_fn: ``x -> grad_x log p(x)``, same shape as ``x`` (see :func:`score_of`).

    References:
        Roberts & Tweedie 1996; Welling & Teh 2011.
    """
    if noise_std is None:
        noise_std = _sqrt_2h(step_size)
    step_size = _per_particle(step_size, x)
    noise_std = _per_particle(noise_std, x)
    x = x.detach()
    for _ in range(n_steps):
        score = score_fn(x).detach()
        x = _clamp(langevin_move(x, score, step_size, noise_std, randn_like(x, generator)), clamp)
    return x


def _log_prob_and_grad(
    log_prob_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        log_prob = log_prob_fn(x)
        (grad,) = torch.autograd.grad(log_prob.sum(), x)
    return log_prob.detach(), grad.detach()


def mala(
    x: torch.Tensor,
    log_prob_fn: Callable[[torch.Tensor], torch.Tensor],
    n_steps: int,
    step_size: float | torch.Tensor,
    clamp: Clamp = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Metropolis-adjusted Langevin on a batch of independent particles.

    Each particle proposes ``y = x + h grad log p(x) + sqrt(2h) eps`` and accepts it with
    probability ``min(1, p(y) q(x|y) / (p(x) q(y|x)))``, where
    ``q(y|x) = N(y; x + h grad log p(x), 2h I)``, so ``p`` is exactly invariant. With ``clamp``
    the proposal is projected onto the box before the test (then the chain targets ``p``
    restricted to the box only approximately).

    Args:
        log_prob_fn: ``x -> log p(x)`` up to a constant, one value per particle ``(N,)``.
        step_size: ``h``, a float or one value per particle.

    Returns:
        ``(samples, acceptance_rate)``; the rate is per particle, shape ``(N,)``.

    References:
        Roberts & Tweedie 1996; Besag 1994 (comment on Grenander & Miller).
    """
    step_size = _per_particle(step_size, x)
    noise_std = _sqrt_2h(step_size)
    x = x.detach()
    log_p, grad = _log_prob_and_grad(log_prob_fn, x)
    accepted = x.new_zeros(x.shape[0])
    for _ in range(n_steps):
        y = _clamp(langevin_move(x, grad, step_size, noise_std, randn_like(x, generator)), clamp)
        log_p_y, grad_y = _log_prob_and_grad(log_prob_fn, y)
        log_ratio = (
            log_p_y
            - log_p
            + langevin_log_q(x, y, grad_y, step_size).flatten(1).sum(1)
            - langevin_log_q(y, x, grad, step_size).flatten(1).sum(1)
        )
        u = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
        accept = torch.log(u) < torch.nan_to_num(log_ratio, nan=-math.inf)
        mask = accept.reshape(-1, *([1] * (x.dim() - 1)))
        x = torch.where(mask, y, x)
        grad = torch.where(mask, grad_y, grad)
        log_p = torch.where(accept, log_p_y, log_p)
        accepted += accept.to(x.dtype)
    return x, accepted / max(n_steps, 1)


def annealed_langevin_dynamics(
    x: torch.Tensor,
    score_fn: Callable[[torch.Tensor, float], torch.Tensor],
    sigmas: Sequence[float] | torch.Tensor,
    n_steps_each: int,
    eps: float,
    final_denoise: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Annealed Langevin dynamics over a decreasing noise ladder (NCSN's sampler).

    For each ``sigma_i`` (largest first), ``n_steps_each`` Langevin steps on the perturbed
    density ``p_{sigma_i} = p * N(0, sigma_i^2 I)``:

        x <- x + (alpha_i / 2) s(x, sigma_i) + sqrt(alpha_i) eps,
        alpha_i = eps sigma_i^2 / sigma_L^2,

    which keeps the signal-to-noise ratio of every step the same across levels. The optional
    final denoising step is Tweedie's formula at the last level,
    ``x <- x + sigma_L^2 s(x, sigma_L)`` (the posterior mean E[x_0 | x]), which removes the
    residual sigma_L noise.

    Args:
        score_fn: ``(x, sigma) -> grad_x log p_sigma(x)`` with ``sigma`` a Python float.
        sigmas: the ladder ``sigma_1 > ... > sigma_L``.

    References:
        Song & Ermon 2019 (Algorithm 1); Jolicoeur-Martineau et al. 2021 and Song & Ermon 2020
        (final denoising); Efron 2011 (Tweedie's formula).
    """
    sigmas = [float(s) for s in sigmas]
    last = sigmas[-1]
    x = x.detach()
    for sigma in sigmas:
        alpha = eps * sigma**2 / last**2
        for _ in range(n_steps_each):
            score = score_fn(x, sigma).detach()
            x = langevin_move(x, score, 0.5 * alpha, math.sqrt(alpha), randn_like(x, generator))
    if final_denoise:
        x = x + last**2 * score_fn(x, last).detach()
    return x
