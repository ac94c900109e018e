"""Score SDEs: noising processes, the predictor-corrector sampler, the probability-flow ODE.

A score SDE perturbs data by ``dx = f(x, t) dt + g(t) dW`` for ``t in [0, T]``, ``T = 1``; each
process here is linear, so ``x_t | x_0 ~ N(m(t) x_0, s(t)^2 I)`` in closed form. With the score
``s_theta(x, t) ~ grad_x log p_t(x)`` the process runs backwards in time by the reverse SDE

    dx = [f(x, t) - g(t)^2 s_theta(x, t)] dt + g(t) dW_bar,

or deterministically by the probability-flow ODE with the same marginals,

    dx/dt = v(x, t) = f(x, t) - g(t)^2 s_theta(x, t) / 2,

which also gives the exact log-likelihood by the instantaneous change of variables,
``log p_0(x_0) = log p_T(x_T) + int_0^T div v(x_t, t) dt``, the divergence estimated without
bias by Hutchinson's ``E[u^T (dv/dx) u]``.

References:
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole 2021, "Score-based generative modeling
    through stochastic differential equations"; Chen et al. 2018, "Neural ordinary differential
    equations"; Grathwohl et al. 2019, "FFJORD"; Hutchinson 1989.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _expand(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-example values ``(N,)`` shaped to broadcast against ``x`` ``(N, ...)``."""
    return v.reshape(-1, *([1] * (x.dim() - 1)))


def _flat_sum(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(1)


class ScoreSDE:
    """A linear SDE ``dx = f(t) x dt + g(t) dW`` with Gaussian transition ``N(m(t) x_0, s(t)^2)``.

    Subclasses give the drift coefficient ``f(t)``, ``g(t)^2``, the mean scale ``m(t)`` and the
    standard deviation ``s(t)``; ``t`` is a tensor of times in ``[0, 1]``.
    """

    T = 1.0
    #: smallest time used for sampling and likelihoods, where s(t) is small but not zero
    t_min = 1e-5

    def drift_coefficient(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def diffusion_squared(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mean_scale(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def std(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def prior_std(self) -> float:
        """Standard deviation of the prior ``p_T ~ N(0, prior_std^2 I)`` the samplers start from."""
        raise NotImplementedError

    def perturb(
        self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x_t = m(t) x_0 + s(t) noise`` and ``s(t)`` shaped like ``x_0``'s batch."""
        std = _expand(self.std(t), x0)
        return _expand(self.mean_scale(t), x0) * x0 + std * noise, std

    def prior_sample(
        self,
        shape: torch.Size | tuple[int, ...],
        like: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        noise = torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)
        return self.prior_std() * noise

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log N(z; 0, prior_std^2 I)`` per example."""
        d = z[0].numel()
        var = self.prior_std() ** 2
        return -0.5 * _flat_sum(z**2) / var - 0.5 * d * math.log(2 * math.pi * var)

    def ode_drift(self, x: torch.Tensor, t: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """``v(x, t) = f(t) x - g(t)^2 score / 2``, the probability-flow velocity."""
        return (
            _expand(self.drift_coefficient(t), x) * x
            - 0.5 * _expand(self.diffusion_squared(t), x) * score
        )


class VESDE(ScoreSDE):
    """Variance exploding: ``dx = sqrt(d sigma^2(t)/dt) dW``, ``sigma(t) = s_min (s_max/s_min)^t``.

    ``m(t) = 1``, ``s(t) = sigma(t)``, ``g(t)^2 = 2 sigma(t)^2 log(s_max/s_min)``: the continuous
    limit of NCSN's geometric noise ladder. As there, time 0 holds the data blurred by ``s_min``
    (``s(0) = s_min``), which keeps the score finite at every time. The prior is
    ``N(0, s_max^2 I)``.
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0) -> None:
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * torch.exp(t * self._log_ratio)

    def drift_coefficient(self, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(t)

    def diffusion_squared(self, t: torch.Tensor) -> torch.Tensor:
        return 2 * self.sigma(t) ** 2 * self._log_ratio

    def mean_scale(self, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(t)

    def std(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma(t)

    def prior_std(self) -> float:
        return self.sigma_max


class VPSDE(ScoreSDE):
    """Variance preserving: ``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dW``, ``beta`` linear in t.

    With ``B(t) = int_0^t beta = b_min t + (b_max - b_min) t^2 / 2``: ``m(t) = exp(-B/2)``,
    ``s(t)^2 = 1 - exp(-B)``; the continuous limit of DDPM. The prior is ``N(0, I)``.
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integrated_beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def drift_coefficient(self, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * self.beta(t)

    def diffusion_squared(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta(t)

    def mean_scale(self, t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * self.integrated_beta(t))

    def std(self, t: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(-torch.expm1(-self.integrated_beta(t)))

    def prior_std(self) -> float:
        return 1.0


class SubVPSDE(VPSDE):
    """Sub-VP: VP's drift with ``g(t)^2 = beta(t) (1 - exp(-2 B(t)))``.

    ``m(t) = exp(-B/2)`` as VP, ``s(t) = 1 - exp(-B)``, a variance below VP's at every t, which
    gives better likelihoods (Song et al. 2021, section 3.4).
    """

    def diffusion_squared(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta(t) * -torch.expm1(-2 * self.integrated_beta(t))

    def std(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.expm1(-self.integrated_beta(t))


def pc_sample(
    sde: ScoreSDE,
    score_fn: ScoreFn,
    x: torch.Tensor,
    n_steps: int,
    snr: float = 0.16,
    n_corrector: int = 1,
    denoise: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Predictor-corrector sampling of the reverse SDE from ``x ~ p_T`` to ``t_min``.

    Predictor (reverse diffusion, Euler-Maruyama backwards in time, ``h = (T - t_min)/n_steps``):
    ``x <- x - [f(t) x - g(t)^2 s(x, t)] h + g(t) sqrt(h) z``. Corrector (``n_corrector``
    Langevin steps at the new time): ``x <- x + e s + sqrt(2e) z`` with the step
    ``e = 2 m(t)^2 (snr ||z|| / ||s||)^2`` set by the target signal-to-noise ratio, the norms
    averaged over the batch (m(t) = 1 for VE, the VP scaling otherwise). ``denoise`` returns the
    last predictor's mean (no noise).

    Args:
        score_fn: ``(x, t) -> grad_x log p_t(x)`` with ``t`` of shape ``(N,)``.

    References:
        Song et al. 2021 (Algorithms 1-3 and the corrector rule of Appendix G).
    """
    times = torch.linspace(sde.T, sde.t_min, n_steps + 1, device=x.device, dtype=x.dtype)
    x = x.detach()
    mean = x
    for i in range(n_steps):
        t = times[i].expand(x.shape[0])
        dt = times[i + 1] - times[i]
        score = score_fn(x, t).detach()
        g2 = _expand(sde.diffusion_squared(t), x)
        drift = _expand(sde.drift_coefficient(t), x) * x - g2 * score
        mean = x + drift * dt  # dt < 0: backwards in time
        x = mean + torch.sqrt(g2 * -dt) * _randn(x, generator)
        t_next = times[i + 1].expand(x.shape[0])
        for _ in range(n_corrector):
            score = score_fn(x, t_next).detach()
            noise = _randn(x, generator)
            # one step for the whole batch: a step set by each particle's own score would
            # depend on the state and break the corrector's invariance
            ratio = snr * noise.flatten(1).norm(dim=1).mean() / score.flatten(1).norm(dim=1).mean()
            step = _expand(2 * sde.mean_scale(t_next) ** 2 * ratio**2, x)
            x = x + step * score + torch.sqrt(2 * step) * noise
    return mean if denoise else x


def _randn(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _rk4(
    velocity: Callable[[tuple[torch.Tensor, ...], float], tuple[torch.Tensor, ...]],
    y: tuple[torch.Tensor, ...],
    t0: float,
    t1: float,
    n_steps: int,
) -> tuple[torch.Tensor, ...]:
    """Classical fourth-order Runge-Kutta with ``n_steps`` equal steps from ``t0`` to ``t1``."""
    h = (t1 - t0) / n_steps
    for i in range(n_steps):
        t = t0 + i * h
        k1 = velocity(y, t)
        k2 = velocity(tuple(a + 0.5 * h * b for a, b in zip(y, k1)), t + 0.5 * h)
        k3 = velocity(tuple(a + 0.5 * h * b for a, b in zip(y, k2)), t + 0.5 * h)
        k4 = velocity(tuple(a + h * b for a, b in zip(y, k3)), t + h)
        y = tuple(
            a + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4) for a, b1, b2, b3, b4 in zip(y, k1, k2, k3, k4)
        )
    return y


def ode_sample(
    sde: ScoreSDE, score_fn: ScoreFn, x: torch.Tensor, n_steps: int = 100
) -> torch.Tensor:
    """Integrate the probability-flow ODE from ``x ~ p_T`` at ``T`` down to ``t_min`` (RK4).

    A deterministic map from prior noise to data with the same marginals as the reverse SDE.

    References:
        Song et al. 2021, section 4.3.
    """

    def velocity(y: tuple[torch.Tensor, ...], t: float) -> tuple[torch.Tensor, ...]:
        (x,) = y
        times = x.new_full((x.shape[0],), t)
        return (sde.ode_drift(x, times, score_fn(x, times).detach()),)

    (x,) = _rk4(velocity, (x.detach(),), sde.T, sde.t_min, n_steps)
    return x


def divergence_exact(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(div fn(x), fn(x))``, ``div fn = sum_i d fn_i / d x_i``, one backward pass per dimension.

    Exact; costs ``D`` backward passes, so use it in low dimension (2-D toys).
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = fn(x).flatten(1)
        flat = x.flatten(1)
        div = torch.zeros_like(out[:, 0])
        for i in range(flat.shape[1]):
            (grad,) = torch.autograd.grad(out[:, i].sum(), x, retain_graph=True)
            div = div + grad.flatten(1)[:, i]
    return div.detach(), out.detach().reshape(x.shape)


def divergence_hutchinson(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, probe: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u^T (d fn / dx) u, fn(x))``: Hutchinson's unbiased estimate of ``div fn(x)``.

    ``E[u u^T] = I`` (Rademacher or Gaussian ``u``) makes it unbiased; one vector-Jacobian
    product per call.

    References:
        Hutchinson 1989; Grathwohl et al. 2019 (FFJORD).
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = fn(x)
        (vjp,) = torch.autograd.grad((out * probe).sum(), x)
    return _flat_sum(vjp * probe).detach(), out.detach()


def ode_log_prob(
    sde: ScoreSDE,
    score_fn: ScoreFn,
    x: torch.Tensor,
    n_steps: int = 100,
    exact_trace: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``log p_0(x)`` per example through the probability-flow ODE.

    Integrates ``d/dt (x, delta) = (v(x, t), div v(x, t))`` from ``t_min`` to ``T`` with RK4 and
    returns ``log p_T(x_T) + delta(T)``, ``p_T`` the SDE's Gaussian prior. The divergence is
    Hutchinson's estimate with one Rademacher probe per example held fixed along the path (an
    unbiased estimate of the log-likelihood, up to ODE error), or exact with ``exact_trace``.

    References:
        Song et al. 2021 (Appendix D.2); Grathwohl et al. 2019 (FFJORD).
    """
    probe = None
    if not exact_trace:
        probe = torch.randint(0, 2, x.shape, generator=generator, device=x.device)
        probe = probe.to(x.dtype) * 2 - 1

    def velocity(y: tuple[torch.Tensor, ...], t: float) -> tuple[torch.Tensor, torch.Tensor]:
        z, _ = y
        times = z.new_full((z.shape[0],), t)

        def v(z: torch.Tensor) -> torch.Tensor:
            return sde.ode_drift(z, times, score_fn(z, times))

        if exact_trace:
            div, out = divergence_exact(v, z)
        else:
            div, out = divergence_hutchinson(v, z, probe)
        return out, div

    z, delta = _rk4(velocity, (x.detach(), x.new_zeros(x.shape[0])), sde.t_min, sde.T, n_steps)
    return sde.prior_log_prob(z) + delta
