"""The closed-form terms of the diffusion chain's negative ELBO (Ho et al. 2020, eq. 5).

    -ELBO(x_0) = L_T + sum_{t=2}^T L_{t-1} + L_0,
    L_T     = KL(q(x_T | x_0) || N(0, I)),
    L_{t-1} = E_q KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t)),
    L_0     = -E_q log p_theta(x_0 | x_1),

each per example, summed over the data's dimensions, in nats.
"""

from __future__ import annotations

import math

import torch

from probgen.infer.schedules import NoiseSchedule


def prior_term(x0: torch.Tensor, alpha_bar_last: float) -> torch.Tensor:
    """``L_T = KL(N(sqrt(abar_T) x_0, (1 - abar_T) I) || N(0, I))`` per example."""
    ab = alpha_bar_last
    kl = 0.5 * (ab * x0.square() - ab - math.log1p(-ab))
    return kl.reshape(x0.shape[0], -1).sum(1)


def chain_term(
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    x_t: torch.Tensor,
    k: torch.Tensor,
    mean: torch.Tensor,
    log_var: torch.Tensor,
) -> torch.Tensor:
    """``L_{t-1}`` (KL to the forward posterior) for ``k >= 1``, ``L_0`` for ``k = 0``.

    ``mean`` and ``log_var`` are those of ``p_theta(x_{t-1} | x_t)``, ``k = t - 1`` per example.
    KL(N(m_q, v_q) || N(m_p, v_p)) = 1/2 (log v_p - log v_q + (v_q + (m_q - m_p)^2)/v_p - 1)
    and ``L_0 = 1/2 (log 2 pi v_p + (x_0 - m_p)^2 / v_p)``, summed over dimensions.
    """
    nd = x0.dim()
    mean_q, var_q = schedule.q_posterior(x0, x_t, k)
    # the clipped log-variance is finite at k = 0, whose KL is then discarded
    log_var_q = schedule.at("posterior_log_variance", k, nd)
    inv_var = torch.exp(-log_var)
    kl = 0.5 * (log_var - log_var_q + (var_q + (mean_q - mean).square()) * inv_var - 1)
    nll = 0.5 * (math.log(2 * math.pi) + log_var + (x0 - mean).square() * inv_var)
    first = (k == 0).reshape(*k.shape, *([1] * (nd - k.dim())))
    return torch.where(first, nll, kl).reshape(x0.shape[0], -1).sum(1)
