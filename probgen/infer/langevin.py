"""Langevin samplers as Pyro MCMC kernels: ULA, MALA with step-size adaptation, and annealed
Langevin.

:class:`ULA`, :class:`MALA` and :class:`AnnealedLangevin` are
:class:`pyro.infer.mcmc.MCMCKernel` subclasses for ``pyro.infer.MCMC``: several chains,
diagnostics, and ``arviz.from_pyro``. Each moves the latent sites of a Pyro model (in
unconstrained space, as HMC does), or the dict of tensors of a potential or score function, by
the Langevin step of :mod:`probgen.infer.langevin_particles` (the maths and the batched fast
path that sampling from a score or energy model uses, re-exported here so that
``probgen.infer.langevin`` offers every Langevin sampler).

References:
    Roberts & Tweedie 1996, "Exponential convergence of Langevin distributions and their
    discrete approximations"; Song & Ermon 2019, "Generative modeling by estimating gradients
    of the data distribution" (NCSN); Hoffman & Gelman 2014, "The No-U-Turn sampler" (dual
    averaging).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from pyro.infer.autoguide.initialization import init_to_uniform
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel
from pyro.infer.mcmc.util import initialize_model
from pyro.ops.dual_averaging import DualAveraging
from pyro.ops.integrator import potential_grad

from probgen.infer.langevin_particles import (
    annealed_langevin_dynamics,
    langevin_dynamics,
    langevin_log_q,
    langevin_move,
    mala,
    score_of,
)
from probgen.infer.noise import randn_like

__all__ = [
    "MALA",
    "ULA",
    "AnnealedLangevin",
    "annealed_langevin_dynamics",
    "langevin_dynamics",
    "mala",
    "score_of",
]

Params = dict[str, torch.Tensor]


class _LangevinKernel(MCMCKernel):
    """What the Langevin kernels share: the target, initial values, state and diagnostics.

    The target is given by exactly one of a Pyro ``model`` (its latent sites are moved in
    unconstrained space, as HMC does), a ``potential_fn`` ``U(z) = -log p(z)`` of a dict of
    tensors, or (where the subclass allows) a ``score_fn`` returning ``grad_z log p(z)`` as a
    dict. With ``potential_fn`` or ``score_fn`` pass ``initial_params`` to ``pyro.infer.MCMC``.

    A transition whose result is not finite is a divergence: the chain stays where it was and
    the (post-warm-up) draw index is recorded in ``diagnostics()["divergences"]``.
    """

    def __init__(
        self,
        model: Callable | None = None,
        potential_fn: Callable[[Params], torch.Tensor] | None = None,
        score_fn: Callable | None = None,
        step_size: float = 0.1,
        transforms: dict | None = None,
        max_plate_nesting: int | None = None,
        init_strategy: Callable = init_to_uniform,
    ) -> None:
        given = [a is not None for a in (model, potential_fn, score_fn)]
        if sum(given) != 1:
            raise ValueError("give exactly one of model, potential_fn or score_fn")
        self.model = model
        self.potential_fn = potential_fn
        self.score_fn = score_fn
        self.transforms = transforms
        self._max_plate_nesting = max_plate_nesting
        self._init_strategy = init_strategy
        self._initial_step_size = float(step_size)
        self._initial_params = None
        self._reset()

    def _reset(self) -> None:
        self.step_size = self._initial_step_size
        self._t = 0
        self._warmup_steps = 0
        self._divergences: list[int] = []
        self._accept_sum = 0.0
        self._num_draws = 0

    @property
    def initial_params(self) -> Params | None:
        return self._initial_params

    @initial_params.setter
    def initial_params(self, params: Params | None) -> None:
        self._initial_params = params

    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:
        self._reset()
        self._warmup_steps = warmup_steps
        if self.model is not None:
            # keeps initial values that MCMC set for this chain; draws them otherwise
            params, self.potential_fn, self.transforms, _ = initialize_model(
                self.model,
                args,
                kwargs,
                transforms=self.transforms,
                max_plate_nesting=self._max_plate_nesting,
                init_strategy=self._init_strategy,
                initial_params=self._initial_params,
            )
            self._initial_params = params
        elif self._initial_params is None:
            raise ValueError("without a model, pass initial_params to pyro.infer.MCMC")

    def cleanup(self) -> None:
        # the next chain draws (or is given) its own initial values
        self._initial_params = None

    @property
    def warming_up(self) -> bool:
        return self._t < self._warmup_steps

    def _score(self, params: Params) -> tuple[Params, torch.Tensor | None]:
        """``grad log p`` at ``params`` and the potential there (``None`` for a score)."""
        if self.score_fn is not None:
            return {k: v.detach() for k, v in self.score_fn(params).items()}, None
        grads, potential = potential_grad(self.potential_fn, params)
        return {k: -g.detach() for k, g in grads.items()}, potential

    def _record(self, accept_prob: float, diverged: bool) -> None:
        if not self.warming_up:
            self._num_draws += 1
            self._accept_sum += accept_prob
            if diverged:
                self._divergences.append(self._t - self._warmup_steps)
        self._t += 1

    def logging(self) -> dict:
        rate = self._accept_sum / self._num_draws if self._num_draws else float("nan")
        return {"step size": f"{self.step_size:.2e}", "acc. prob": f"{rate:.3f}"}

    def diagnostics(self) -> dict:
        rate = self._accept_sum / self._num_draws if self._num_draws else float("nan")
        return {
            "divergences": list(self._divergences),
            "acceptance rate": rate,
            "step size": self.step_size,
        }


def _finite(params: Params) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in params.values())


class ULA(_LangevinKernel):
    """Unadjusted Langevin algorithm as a Pyro MCMC kernel.

    ``z <- z + h grad log p(z) + sqrt(2h) eps`` with a fixed step ``h``: every move is kept
    (acceptance rate 1), and the chain's law is biased by O(h) (for a Gaussian target of variance
    s^2 the stationary variance is s^2 / (1 - h / (2 s^2))). Takes a model, a potential or a
    score function.

    References:
        Roberts & Tweedie 1996; Durmus & Moulines 2017, "Nonasymptotic convergence analysis for
        the unadjusted Langevin algorithm".
    """

    def sample(self, params: Params) -> Params:
        score, _ = self._score(params)
        noise = math.sqrt(2 * self.step_size)
        new = {
            k: langevin_move(v, score[k], self.step_size, noise, randn_like(v))
            for k, v in params.items()
        }
        diverged = not _finite(new)
        self._record(1.0, diverged)
        return params if diverged else new


class MALA(_LangevinKernel):
    """Metropolis-adjusted Langevin algorithm as a Pyro MCMC kernel, with step-size adaptation.

    Proposes ``z' = z + h grad log p(z) + sqrt(2h) eps`` and accepts with probability
    ``min(1, p(z') q(z|z') / (p(z) q(z'|z)))``, ``q(z'|z) = N(z'; z + h grad log p(z), 2h I)``.
    During warm-up ``log h`` follows Nesterov dual averaging towards the acceptance rate
    ``target_accept_prob`` (0.574 is optimal in high dimension, Roberts & Rosenthal 1998); the
    averaged step is frozen at the end of warm-up (this kernel counts its own steps: MCMC does
    not announce the end of warm-up). A proposal whose potential is not finite or rises by more
    than ``max_energy_increase`` counts as a divergence. Needs a model or a potential.

    References:
        Roberts & Tweedie 1996; Roberts & Rosenthal 1998, "Optimal scaling of discrete
        approximations to Langevin diffusions"; Hoffman & Gelman 2014 (dual averaging).
    """

    def __init__(
        self,
        model: Callable | None = None,
        potential_fn: Callable[[Params], torch.Tensor] | None = None,
        step_size: float = 0.1,
        adapt_step_size: bool = True,
        target_accept_prob: float = 0.574,
        max_energy_increase: float = 1000.0,
        transforms: dict | None = None,
        max_plate_nesting: int | None = None,
        init_strategy: Callable = init_to_uniform,
    ) -> None:
        self.adapt_step_size = adapt_step_size
        self.target_accept_prob = target_accept_prob
        self.max_energy_increase = max_energy_increase
        super().__init__(
            model=model,
            potential_fn=potential_fn,
            step_size=step_size,
            transforms=transforms,
            max_plate_nesting=max_plate_nesting,
            init_strategy=init_strategy,
        )

    def _reset(self) -> None:
        super()._reset()
        self._dual_averaging = DualAveraging(prox_center=math.log(10 * self._initial_step_size))
        self._cache = None

    def _log_proposal(self, to: Params, frm: Params, score_frm: Params) -> torch.Tensor:
        return sum(langevin_log_q(to[k], frm[k], score_frm[k], self.step_size).sum() for k in to)

    def _cached_score(self, params: Params) -> tuple[Params, torch.Tensor]:
        """Score and potential at ``params``, reused when the last transition ended there."""
        if self._cache is not None and self._cache[0] is params:
            return self._cache[1], self._cache[2]
        return self._score(params)

    def sample(self, params: Params) -> Params:
        score, potential = self._cached_score(params)
        h = self.step_size
        proposal = {
            k: langevin_move(v, score[k], h, math.sqrt(2 * h), randn_like(v))
            for k, v in params.items()
        }
        score_new, potential_new = self._score(proposal)
        log_ratio = (
            potential
            - potential_new
            + self._log_proposal(params, proposal, score_new)
            - self._log_proposal(proposal, params, score)
        )
        diverged = not (
            bool(torch.isfinite(potential_new))
            and _finite(score_new)
            and float(potential_new - potential) < self.max_energy_increase
        )
        accept_prob = 0.0 if diverged else min(1.0, math.exp(min(float(log_ratio), 0.0)))
        if self.warming_up and self.adapt_step_size:
            self._dual_averaging.step(self.target_accept_prob - accept_prob)
            log_step, log_step_avg = self._dual_averaging.get_state()
            last_warmup_step = self._t == self._warmup_steps - 1
            self.step_size = math.exp(log_step_avg if last_warmup_step else log_step)
        self._record(accept_prob, diverged)
        if not diverged and torch.rand(()) < accept_prob:
            self._cache = (proposal, score_new, potential_new)
            return proposal
        self._cache = (params, score, potential)
        return params


class AnnealedLangevin(_LangevinKernel):
    """Annealed Langevin dynamics as a Pyro MCMC kernel: one transition is one sweep of a ladder.

    Each transition starts from the current state and runs ``n_steps_each`` Langevin steps at
    each level ``sigma_1 > ... > sigma_L`` with NCSN's step rule
    ``alpha_i = eps sigma_i^2 / sigma_L^2``. With a noise-conditional ``score_fn(params, sigma)``
    level ``i`` targets the perturbed density ``p * N(0, sigma_i^2 I)`` (Song & Ermon 2019). A
    model or potential has no perturbed score, so level ``i`` targets the tempered density
    ``p(z)^(1/T_i)`` with ``T_i = sigma_i^2 / sigma_L^2`` instead (as wide as ``p`` blurred by
    ``sigma_i`` when ``p`` has scale ``sigma_L``; the same alpha_i / T_i for every level). The
    large early levels let each sweep leave a mode, so the chain visits modes in proportion to
    their weights, which a single-level Langevin chain does not. ``eps`` defaults to
    ``0.1 sigma_L^2``, a last-level step a tenth of that level's variance.

    References:
        Song & Ermon 2019 (Algorithm 1); Neal 1996, "Sampling from multimodal distributions
        using tempered transitions".
    """

    def __init__(
        self,
        model: Callable | None = None,
        potential_fn: Callable[[Params], torch.Tensor] | None = None,
        score_fn: Callable | None = None,
        sigmas: Sequence[float] = (),
        n_steps_each: int = 100,
        eps: float | None = None,
        transforms: dict | None = None,
        max_plate_nesting: int | None = None,
        init_strategy: Callable = init_to_uniform,
    ) -> None:
        self.sigmas = [float(s) for s in sigmas]
        if not self.sigmas:
            raise ValueError("give the noise ladder sigmas")
        if any(a <= b for a, b in zip(self.sigmas[:-1], self.sigmas[1:])):
            raise ValueError("sigmas must be strictly decreasing")
        self.n_steps_each = int(n_steps_each)
        super().__init__(
            model=model,
            potential_fn=potential_fn,
            score_fn=score_fn,
            step_size=0.1 * self.sigmas[-1] ** 2 if eps is None else eps,
            transforms=transforms,
            max_plate_nesting=max_plate_nesting,
            init_strategy=init_strategy,
        )

    def _level_score(self, params: Params, sigma: float) -> Params:
        if self.score_fn is not None:
            return {k: v.detach() for k, v in self.score_fn(params, sigma).items()}
        score, _ = self._score(params)
        inverse_temperature = self.sigmas[-1] ** 2 / sigma**2
        return {k: inverse_temperature * v for k, v in score.items()}

    def sample(self, params: Params) -> Params:
        z = params
        for sigma in self.sigmas:
            alpha = self.step_size * sigma**2 / self.sigmas[-1] ** 2
            for _ in range(self.n_steps_each):
                score = self._level_score(z, sigma)
                z = {
                    k: langevin_move(v, score[k], 0.5 * alpha, math.sqrt(alpha), randn_like(v))
                    for k, v in z.items()
                }
        diverged = not _finite(z)
        self._record(1.0, diverged)
        return params if diverged else z
