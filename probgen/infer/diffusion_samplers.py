"""Samplers of a trained diffusion model: ancestral, DDIM, DPM-Solver++(2M), DDIM encoding.

Every sampler walks a decreasing list of step indices ``k`` (``k = t - 1``, see
:mod:`probgen.infer.schedules`) and asks a *predictor* ``predict(x, k) -> Prediction`` for the
model's estimate ``x0_hat`` of the clean data at ``x``; the predictor owns the network, its
parameterisation and any clipping. The noise estimate is implied,
``eps_hat = (x_t - sqrt(abar_t) x0_hat) / sqrt(1 - abar_t)``, so every update is a linear
combination of ``x_t`` and ``x0_hat``; its coefficients are Python floats computed in float64
before the loop, and a step costs the network call plus two to five element-wise operations.

References: Ho et al. 2020 (ancestral); Nichol & Dhariwal 2021 (respacing, learned variance);
Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models" (DDIM and its inversion);
Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic
Models" (2M).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from probgen.infer.noise import randn_like


class Prediction(NamedTuple):
    """The model's estimate of ``x_0`` at one step, and its learned variance if any.

    ``var_interp`` is the learned-variance output ``v`` (nominally in [-1, 1]) with
    ``log sigma^2 = (1 + v)/2 log beta_t + (1 - v)/2 log betatilde_t`` (Nichol & Dhariwal
    2021, eq. 15), or ``None`` for a fixed variance.
    """

    x0: torch.Tensor
    var_interp: torch.Tensor | None = None


Predictor = Callable[[torch.Tensor, int], Prediction]


def spaced_timesteps(num_steps: int, steps: int, start: int | None = None) -> list[int]:
    """``steps`` decreasing indices from ``start`` (default ``T - 1``) with an even stride.

    ``round(linspace(start + 1, 0, steps + 1))[:-1] - 1``: the first step is ``start`` itself
    and consecutive steps differ by the true stride ``(start + 1) / steps``, whatever
    ``steps`` divides ("trailing" spacing; Lin et al. 2024, "Common Diffusion Noise Schedules
    and Sample Steps are Flawed", table 2).
    """
    start = num_steps - 1 if start is None else start
    if not 1 <= steps <= start + 1:
        raise ValueError(f"steps must be in 1..{start + 1}, got {steps}")
    grid = torch.linspace(start + 1, 0, steps + 1, dtype=torch.float64).round().long()
    return (grid[:-1] - 1).tolist()


def log_snr_timesteps(
    alpha_bar: Sequence[float], steps: int, start: int, end: int = 0
) -> list[int]:
    """``steps`` decreasing indices from ``start`` to ``end``, evenly spaced in log-SNR.

    Each index is the one nearest to ``linspace(lambda_start, lambda_end, steps)`` in
    ``lambda = log(abar / (1 - abar))``, nudged where needed so the list strictly decreases:
    DPM-Solver's "logSNR" step selection, its choice for low-dimensional data (Lu et al. 2022,
    "DPM-Solver", sec. 3.3), under which every step has the same ``h`` in its own variable.
    """
    if not 0 <= end <= start < len(alpha_bar):
        raise ValueError(f"need 0 <= end <= start < {len(alpha_bar)}, got {start} and {end}")
    if not 1 <= steps <= start - end + 1:
        raise ValueError(f"steps must be in 1..{start - end + 1}, got {steps}")
    ab = torch.tensor(alpha_bar, dtype=torch.float64)
    log_snr = (ab / (1 - ab)).log()
    targets = torch.linspace(float(log_snr[start]), float(log_snr[end]), steps, dtype=torch.float64)
    ks = [int((log_snr - target).abs().argmin()) for target in targets]
    ks[0] = start
    for i in range(1, steps):  # strictly decreasing ...
        ks[i] = min(ks[i], ks[i - 1] - 1)
    ks[-1] = max(ks[-1], end)
    for i in range(steps - 2, -1, -1):  # ... and never below end
        ks[i] = max(ks[i], ks[i + 1] + 1)
    return ks


def _pairs(alpha_bar: Sequence[float], timesteps: Sequence[int]) -> list[tuple[float, float]]:
    """``(abar_t, abar_prev)`` per step, ``abar_prev = 1`` after the last step."""
    nxt = [alpha_bar[k] for k in timesteps[1:]] + [1.0]
    return [(alpha_bar[k], p) for k, p in zip(timesteps, nxt)]


@torch.no_grad()
def ancestral(
    predict: Predictor,
    x: torch.Tensor,
    alpha_bar: Sequence[float],
    timesteps: Sequence[int],
    variance: str = "posterior",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ancestral sampling of the reverse chain ``x_{t-1} ~ N(mu_theta(x_t), sigma_t^2 I)``.

    ``mu_theta = c0 x0_hat + ct x_t`` (the posterior mean with ``x0_hat`` for ``x_0``). On a
    subsequence of steps the chain is *respaced* with ``beta'_i = 1 - abar_{t_i}/abar_{t_{i-1}}``
    (Nichol & Dhariwal 2021, sec. 4); on all T steps this is Ho et al.'s Algorithm 2.
    ``variance`` is ``"beta"`` (sigma^2 = beta'), ``"posterior"`` (betatilde') or ``"learned"``
    (log-space interpolation by ``Prediction.var_interp``). The last step returns the mean.
    """
    steps = []
    for ab, ab_prev in _pairs(alpha_bar, timesteps):
        beta = 1.0 - ab / ab_prev
        post_var = beta * (1.0 - ab_prev) / (1.0 - ab)
        c0 = math.sqrt(ab_prev) * beta / (1.0 - ab)
        ct = math.sqrt(1.0 - beta) * (1.0 - ab_prev) / (1.0 - ab)
        sigma = math.sqrt(beta if variance == "beta" else post_var)
        # half log-variance of the learned interpolation: h0 + h1 v
        h0 = 0.25 * (math.log(beta) + math.log(post_var)) if post_var > 0 else 0.0
        h1 = 0.25 * (math.log(beta) - math.log(post_var)) if post_var > 0 else 0.0
        steps.append((c0, ct, sigma, h0, h1))
    last = len(steps) - 1
    for i, (k, (c0, ct, sigma, h0, h1)) in enumerate(zip(timesteps, steps)):
        p = predict(x, k)
        mean = p.x0.mul(c0).add_(x, alpha=ct)
        if i == last:
            return mean
        if variance == "learned":
            std = p.var_interp.mul(h1).add_(h0).exp_()
            x = mean.addcmul_(std, randn_like(x, generator))
        else:
            x = mean.add_(randn_like(x, generator), alpha=sigma)
    return x


@torch.no_grad()
def ddim(
    predict: Predictor,
    x: torch.Tensor,
    alpha_bar: Sequence[float],
    timesteps: Sequence[int],
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DDIM (Song et al. 2021, eq. 12) on the given steps.

    ``x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z`` with
    ``sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)``: ``eta = 0``
    is the deterministic implicit model, ``eta = 1`` the ancestral sampler with posterior
    variance.
    """
    steps = []
    for ab, ab_prev in _pairs(alpha_bar, timesteps):
        sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
        ce = math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) / math.sqrt(1 - ab)
        # eps_hat folded in: c0 x0_hat + ce (x - sqrt(abar_t) x0_hat)
        steps.append((math.sqrt(ab_prev) - ce * math.sqrt(ab), ce, sigma))
    for k, (c0, ce, sigma) in zip(timesteps, steps):
        x = predict(x, k).x0.mul(c0).add_(x, alpha=ce)
        if sigma > 0:
            x.add_(randn_like(x, generator), alpha=sigma)
    return x


@torch.no_grad()
def dpm_solver_2m(
    predict: Predictor,
    x: torch.Tensor,
    alpha_bar: Sequence[float],
    timesteps: Sequence[int],
) -> torch.Tensor:
    """DPM-Solver++(2M): a second-order multistep solver of the probability-flow ODE.

    In log-SNR ``lambda = log(alpha / sigma)`` (``alpha = sqrt(abar)``, ``sigma =
    sqrt(1 - abar)``) and with ``h = lambda_t - lambda_s`` the exact solution of the
    data-prediction ODE is approximated by (Lu et al. 2022, Algorithm 2)

        x_t = (sigma_t / sigma_s) x_s + alpha_t (1 - e^{-h}) D,
        D = (1 + 1 / (2r)) x0_hat_s - 1 / (2r) x0_hat_{s'},  r = h_{prev} / h,

    with ``D = x0_hat_s`` (first order, i.e. DDIM) on the first step. The last step goes to
    ``sigma = 0`` and returns ``x0_hat`` ("lower order final").
    """
    pairs = _pairs(alpha_bar, timesteps)
    steps = []
    h_prev = None
    for ab, ab_prev in pairs[:-1]:
        lam_s = 0.5 * math.log(ab / (1 - ab))
        lam_t = 0.5 * math.log(ab_prev / (1 - ab_prev))
        h = lam_t - lam_s
        a = math.sqrt((1 - ab_prev) / (1 - ab))
        b = math.sqrt(ab_prev) * -math.expm1(-h)
        w = None if h_prev is None else 0.5 * h / h_prev
        steps.append((a, b, w))
        h_prev = h
    x0_prev = None
    for k, (a, b, w) in zip(timesteps, steps):
        x0 = predict(x, k).x0
        d = x0 if w is None else x0.mul(1 + w).sub_(x0_prev, alpha=w)
        x = x.mul(a).add_(d, alpha=b)
        x0_prev = x0
    return predict(x, timesteps[-1]).x0


@torch.no_grad()
def ddim_encode(
    predict: Predictor,
    x: torch.Tensor,
    alpha_bar: Sequence[float],
    timesteps: Sequence[int],
) -> torch.Tensor:
    """Deterministic DDIM inversion ``x_0 -> x_T`` on the reverse of a sampling step list.

    Each step runs DDIM's eta = 0 update forward in time, from level ``abar_s`` to the next
    noisier ``abar_t`` (Song et al. 2021, sec. 4.3; Dhariwal & Nichol 2021, eq. 13):

        x_t = sqrt(abar_t / abar_s) (x_s - sqrt(1 - abar_s) eps_hat) + sqrt(1 - abar_t) eps_hat,

    with ``eps_hat = (x_s - sqrt(abar_t) x0_hat) / sqrt(1 - abar_t)`` evaluated at ``(x_s, t)``,
    the level the decoding step starts from, so decoding with the same ``timesteps``
    approximately inverts it (exactly as steps grow).
    """
    ab_s = 1.0
    for k in reversed(timesteps):
        ab_t = alpha_bar[k]
        ratio = math.sqrt(ab_t / ab_s)
        ce = (math.sqrt(1 - ab_t) - ratio * math.sqrt(1 - ab_s)) / math.sqrt(1 - ab_t)
        x = predict(x, k).x0.mul(-ce * math.sqrt(ab_t)).add_(x, alpha=ratio + ce)
        ab_s = ab_t
    return x
