"""Noise schedules of the discrete-time diffusion chain and their precomputed coefficients.

The forward chain is ``q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)`` for
``t = 1..T``. With ``alpha_t = 1 - beta_t`` and ``abar_t = prod_{s<=t} alpha_s`` its marginals
and posteriors are Gaussian in closed form (Ho et al. 2020, eqs. 4, 6, 7):

    q(x_t | x_0)          = N(sqrt(abar_t) x_0, (1 - abar_t) I)
    q(x_{t-1} | x_t, x_0) = N(c0_t x_0 + ct_t x_t, betatilde_t I),
        c0_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t),
        ct_t = sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t),
        betatilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t).

Arrays are indexed by ``k = t - 1`` in ``0..T-1``; ``abar_0 = 1`` (clean data) is implicit.

References: Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models";
Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models" (cosine schedule).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from probgen.config import check_choice
from probgen.errors import ConfigError

SCHEDULES = ("linear", "cosine", "given")


def linear_betas(
    num_steps: int, start: float = 1e-4, end: float = 0.02, max_beta: float = 0.999
) -> torch.Tensor:
    """``beta_t`` evenly spaced from ``start`` to ``end``, rescaled by ``1000 / T``.

    The rescaling (Nichol & Dhariwal 2021, sec. 4) keeps the chain's total noise, and so
    ``abar_T``, about the same for any ``T``; at ``T = 1000`` it is Ho et al.'s schedule. Below
    ``T = 50`` the rescaled betas would pass 1, so they are capped at ``max_beta``.
    """
    scale = 1000.0 / num_steps
    betas = torch.linspace(scale * start, scale * end, num_steps, dtype=torch.float64)
    return betas.clamp(max=max_beta)


def cosine_betas(num_steps: int, offset: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Betas of ``abar_t = f(t) / f(0)``, ``f(t) = cos^2(pi/2 (t/T + s) / (1 + s))``.

    ``beta_t = min(1 - abar_t / abar_{t-1}, max_beta)``; the cap avoids the singularity at
    ``t = T`` (Nichol & Dhariwal 2021, eq. 17).
    """
    t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
    abar = f / f[0]
    return (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)


def make_betas(schedule: str, num_steps: int, betas: Sequence[float] = ()) -> torch.Tensor:
    """The float64 betas of a named schedule, or the user's own (``schedule="given"``)."""
    if num_steps < 1:
        raise ConfigError(f"timesteps must be positive, got {num_steps}")
    check_choice("schedule", schedule, SCHEDULES)
    if schedule == "linear":
        return linear_betas(num_steps)
    if schedule == "cosine":
        return cosine_betas(num_steps)
    given = torch.as_tensor(tuple(betas), dtype=torch.float64)
    if given.numel() != num_steps:
        raise ConfigError(f"betas has {given.numel()} entries but timesteps={num_steps}")
    if not bool(((given > 0) & (given < 1)).all()):
        raise ConfigError("every beta must lie in (0, 1)")
    return given


class NoiseSchedule(nn.Module):
    """The coefficients of one beta schedule, computed once in float64.

    Per-example lookups for training (``at``) read float32 buffers that follow the model to its
    device; samplers read the float64 ``betas64`` and ``alpha_bar64`` as Python floats, so a
    sampling step costs no device lookups and keeps ``1 - abar_t`` accurate near ``t = 0``.

    Buffers (index ``k = t - 1``): ``betas``, ``alpha_bar``, ``alpha_bar_prev``,
    ``sqrt_alpha_bar``, ``sqrt_one_minus_alpha_bar``, ``posterior_variance`` (betatilde),
    ``posterior_log_variance`` (with ``betatilde_1 = 0`` replaced by ``betatilde_2``, as in
    Ho et al.'s code, so the t = 1 decoder variance is finite), ``log_betas``,
    ``posterior_coef_x0`` (c0) and ``posterior_coef_xt`` (ct).
    """

    def __init__(self, betas: torch.Tensor) -> None:
        super().__init__()
        b = torch.as_tensor(betas, dtype=torch.float64)
        abar = torch.cumprod(1 - b, 0)
        abar_prev = torch.cat([b.new_ones(1), abar[:-1]])
        post_var = b * (1 - abar_prev) / (1 - abar)
        clipped = torch.cat([post_var[1:2], post_var[1:]]) if len(b) > 1 else b.clone()
        self.betas64 = b
        self.alpha_bar64 = abar
        tables = {
            "betas": b,
            "log_betas": b.log(),
            "alpha_bar": abar,
            "alpha_bar_prev": abar_prev,
            "sqrt_alpha_bar": abar.sqrt(),
            "sqrt_one_minus_alpha_bar": (1 - abar).sqrt(),
            "posterior_variance": post_var,
            "posterior_log_variance": clipped.log(),
            "posterior_coef_x0": abar_prev.sqrt() * b / (1 - abar),
            "posterior_coef_xt": (1 - b).sqrt() * (1 - abar_prev) / (1 - abar),
        }
        for name, value in tables.items():
            self.register_buffer(name, value.float(), persistent=False)

    @property
    def num_steps(self) -> int:
        """T, the length of the chain."""
        return len(self.alpha_bar64)

    def last_index_above(self, min_log_snr: float) -> int:
        """The largest ``k`` whose log-SNR ``log(abar / (1 - abar))`` is at least ``min_log_snr``.

        Deterministic samplers start there: near zero SNR an eps-predicting network gives
        ``x0_hat = (x_t - sqrt(1 - abar) eps_hat) / sqrt(abar)`` with ``sqrt(abar_T) ~ 1e-4``
        (cosine), an error amplifier, while ``q(x_t)`` is already ``N(0, I)`` to that precision.
        """
        log_snr = (self.alpha_bar64 / (1 - self.alpha_bar64)).log()
        return int((log_snr >= min_log_snr).nonzero().max()) if log_snr[0] >= min_log_snr else 0

    def at(self, name: str, k: torch.Tensor, ndim: int) -> torch.Tensor:
        """Table ``name`` at per-example indices ``k``, shaped to broadcast over ``ndim`` dims."""
        values = getattr(self, name)[k]
        return values.reshape(*k.shape, *([1] * (ndim - k.dim())))

    def q_sample(self, x0: torch.Tensor, k: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``, a draw of ``q(x_t | x_0)``."""
        return (
            self.at("sqrt_alpha_bar", k, x0.dim()) * x0
            + self.at("sqrt_one_minus_alpha_bar", k, x0.dim()) * noise
        )

    def q_posterior(
        self, x0: torch.Tensor, xt: torch.Tensor, k: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``c0_t x_0 + ct_t x_t`` and variance ``betatilde_t`` of ``q(x_{t-1}|x_t,x_0)``."""
        mean = (
            self.at("posterior_coef_x0", k, x0.dim()) * x0
            + self.at("posterior_coef_xt", k, x0.dim()) * xt
        )
        return mean, self.at("posterior_variance", k, x0.dim())
