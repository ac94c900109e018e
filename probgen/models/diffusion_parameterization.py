"""What a diffusion denoiser's output means: ``x0_hat``, its regression target, its variance.

With ``x_t = s0 x_0 + s1 eps`` (``s0 = sqrt(abar_t)``, ``s1 = sqrt(1 - abar_t)``) the network
predicts ``eps``, ``x0`` or ``v = s0 eps - s1 x_0`` (Salimans & Ho 2022); each gives
``x0_hat``, the reverse chain's mean is the forward posterior's at ``x0_hat``, and the reverse
variance is ``beta_t``, ``betatilde_t`` or the learned log-space interpolation of the two
(Nichol & Dhariwal 2021, eq. 15).
"""

from __future__ import annotations

import torch

from probgen.infer.schedules import NoiseSchedule

Coefficient = float | torch.Tensor
"""A Python float (one step of a sampler) or per-example coefficients (training)."""


def combine(a: Coefficient, x: torch.Tensor, b: Coefficient, y: torch.Tensor) -> torch.Tensor:
    """``a x + b y``, fused when the coefficients are Python floats (one sampling step)."""
    if isinstance(a, float):
        return x.mul(a).add_(y, alpha=b)
    return a * x + b * y


def x0_estimate(
    parameterization: str, out: torch.Tensor, x: torch.Tensor, s0: Coefficient, s1: Coefficient
) -> torch.Tensor:
    """``x0_hat`` from the network output ``out`` at ``x = x_t = s0 x_0 + s1 eps``."""
    if parameterization == "eps":
        return combine(1 / s0, x, -s1 / s0, out)
    if parameterization == "x0":
        return out
    return combine(s0, x, -s1, out)  # v = s0 eps - s1 x_0


def simple_target(
    parameterization: str,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    noise: torch.Tensor,
    k: torch.Tensor,
) -> torch.Tensor:
    """What L_simple regresses the network on at ``x_t = s0 x_0 + s1 noise``: eps, x_0 or v."""
    if parameterization == "eps":
        return noise
    if parameterization == "x0":
        return x0
    nd = x0.dim()
    return (
        schedule.at("sqrt_alpha_bar", k, nd) * noise
        - schedule.at("sqrt_one_minus_alpha_bar", k, nd) * x0
    )


def reverse_log_variance(
    variance: str,
    schedule: NoiseSchedule,
    k: torch.Tensor,
    var_interp: torch.Tensor | None,
    ndim: int,
) -> torch.Tensor:
    """``log sigma_t^2`` of ``p_theta(x_{t-1} | x_t)`` at step indices ``k``.

    ``"learned"``: ``(1 + v)/2 log beta_t + (1 - v)/2 log betatilde_t`` with ``v = var_interp``.
    """
    if variance == "beta":
        return schedule.at("log_betas", k, ndim)
    log_post = schedule.at("posterior_log_variance", k, ndim)
    if variance == "posterior":
        return log_post
    frac = (var_interp + 1) / 2
    return frac * schedule.at("log_betas", k, ndim) + (1 - frac) * log_post
