"""Energy-based models: ``p(x) = exp(-E(x)) / Z`` as a Pyro program, trained by contrastive
divergence.

The Pyro program puts a flat base on the box ``B`` the model lives on and weighs it by the energy,

    x ~ Uniform(B),        pyro.factor("energy", -E(x)),

so its (unnormalised) density is ``exp(-E(x))`` on ``B``; Pyro's HMC/NUTS run on it directly and
the batched Langevin samplers of :mod:`probgen.infer.langevin_particles` follow the score
``-grad_x E``.
For vectors ``B`` is the data's bounding box widened by ``box_margin`` (standardised units),
fixed from the first training batch; for images it is the known intensity range. The model is
defined on ``B`` only: training clamps the Langevin negatives to it, so nothing pins the energy
down outside, and ``log_prob`` is ``-inf`` there.

Training is contrastive divergence (:mod:`probgen.infer.contrastive`): persistent chains from a
replay buffer (or CD-k from data, or short-run chains from noise), an L2 energy penalty,
gradient clipping, optional spectral normalisation of every layer, and a divergence guard.

For 1-D and 2-D data the likelihood is exact: ``log p(x) = -E(x) - log Z`` with
``log Z = log integral_B exp(-E)`` by quadrature on a grid over ``B``
(:mod:`probgen.infer.quadrature`). ``log Z`` is held in the ``log_z`` buffer: every training
step marks it stale (NaN), ``on_fit_end`` recomputes it, and ``log_prob`` recomputes it when it
finds it stale, so a saved run carries it and a mid-training checkpoint still evaluates exactly.

References:
    LeCun et al. 2006, "A tutorial on energy-based learning"; Hinton 2002 (contrastive
    divergence); Du & Mordatch 2019, "Implicit generation and modeling with energy-based models";
    Nijkamp et al. 2019 (short-run MCMC); Grathwohl et al. 2020, "Your classifier is secretly
    an energy based model and you should treat it like one" (the image regime: SGLD step 1,
    noise 0.01); Miyato et al. 2018 (spectral normalisation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import biject_to
from pyro.infer import HMC, MCMC, NUTS
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel
from torch import nn

from probgen.config import check_choice, choice
from probgen.errors import ConfigError, TrainingDiverged
from probgen.infer.contrastive import (
    CHAIN_STARTS,
    ContrastiveSampler,
    contrastive_divergence_loss,
    uniform_in_box,
)
from probgen.infer.langevin import MALA, ULA
from probgen.infer.langevin_particles import langevin_dynamics, mala, score_of
from probgen.infer.quadrature import data_box, log_partition
from probgen.models.base import Batch, DataInfo, GenerativeModel, Labels
from probgen.models.energy_nets import energy_network
from probgen.models.image_networks import resolve_patch_size

MCMC_KERNELS = {"hmc": HMC, "nuts": NUTS, "ula": ULA, "mala": MALA}
CHAIN_INITS = ("noise", "buffer")  # where generate's Langevin / MALA chains start

# quadrature grows as points^d; beyond 2-D the grid is too coarse to be called exact
MAX_QUADRATURE_DIM = 2


@dataclass
class EBMConfig:
    """Hyperparameters of :class:`EBM`.

    The fields left at ``None`` or ``auto`` take the value for the data's shape
    (:func:`with_image_defaults`): vectors and small images train with exact Langevin steps of
    ``h = 0.001``, large images (:attr:`~probgen.models.base.DataInfo.large_image`) in the
    reduced-noise regime that image EBMs are trained in (Du & Mordatch 2019; Grathwohl et al.
    2020: a step of 1 on ``-grad E`` with noise 0.01) and sample by continuing their persistent
    chains.

    Attributes:
        hidden: widths of the energy MLP (vectors).
        channels: channels of the energy CNN's convolutions (images); each after the first
            halves the resolution.
        patch_size: side of the square patches the energy CNN folds the image into first
            (:class:`~probgen.models.energy_nets.ConvEnergy`); ``None`` picks 2 for large
            images with even sides, 1 otherwise.
        activation: a smooth one (``silu``, ``softplus``, ``elu``) keeps ``grad_x E``
            continuous, which Langevin dynamics needs.
        spectral_norm: spectral-normalise every layer (bounds the energy's Lipschitz constant).
        chains: where the negatives' chains start: ``persistent``, ``cd`` or ``short-run``.
        langevin_steps: Langevin steps per training step (the k of CD-k).
        step_size: Langevin step ``h`` on ``-grad E`` in training; ``None``: 0.001, or 1.0
            for large images.
        noise_std: Langevin noise in training; ``None`` is the exact ``sqrt(2 h)``, except
            0.01 for large images.
        buffer_size: replay-buffer capacity (persistent chains).
        reinit_fraction: share of the drawn chains restarted from noise each step.
        data_jumps: give every chain one Metropolis-Hastings jump proposed from a kernel
            density of the data batch before its Langevin steps
            (:func:`probgen.infer.contrastive.data_jump`), so that chains move between modes
            and the modes' weights are learned; ``None`` turns it on for vectors of at most
            two dimensions, where the kernel density covers the model.
        energy_l2: weight ``alpha`` of the L2 penalty on energies; ``None``: 0.01, or 0.1 for
            large images.
        grad_clip: maximum gradient norm, or ``None`` for no clipping.
        box_margin: how far the box extends beyond the first batch (vectors, model units).
        max_abs_energy: the divergence guard's bound on the mean ``|E|``.
        max_energy_gap: the divergence guard's bound on ``|mean E(x+) - mean E(x-)|``.
        quadrature_points: grid points per dimension for ``log Z`` (1-D and 2-D).
        sample_steps: default number of steps of ``generate``'s Langevin / MALA chains;
            ``None``: 500, or 50 for large images (continuing chains already near the model).
        sample_init: where ``generate``'s chains start by default: ``noise`` (uniform in the
            box) or ``buffer`` (the persistent chains); ``auto`` is ``buffer`` for large
            images trained with persistent chains, ``noise`` otherwise. On 28x28 digits after
            800 steps 50 steps from the buffer gave FID 57.4 (confidence 0.877, every digit)
            where 300 steps from noise gave 328.9 with one digit nearly missing.
        sample_step_size: step of ``generate``'s chains; ``None`` reuses ``step_size``.
        mcmc_chains: particles run side by side by ``generate``'s HMC/NUTS.
        mcmc_warmup: default HMC/NUTS warm-up (adaptation) iterations.
    """

    hidden: tuple[int, ...] = (128, 128, 128)
    channels: tuple[int, ...] = (32, 64)
    patch_size: int | None = None
    activation: str = "silu"
    spectral_norm: bool = False
    chains: str = choice("persistent", CHAIN_STARTS)
    langevin_steps: int = 20
    step_size: float | None = None
    noise_std: float | None = None
    buffer_size: int = 10000
    reinit_fraction: float = 0.05
    data_jumps: bool | None = None
    energy_l2: float | None = None
    grad_clip: float | None = 10.0
    box_margin: float = 1.0
    max_abs_energy: float = 1e4
    max_energy_gap: float = 1e4
    quadrature_points: int = 256
    sample_steps: int | None = None
    sample_step_size: float | None = None
    sample_init: str = choice("auto", ("auto", *CHAIN_INITS))
    mcmc_chains: int = 8
    mcmc_warmup: int = 100


# what the None / auto fields of EBMConfig become, for small data and for large images
SMALL_DATA_DEFAULTS = {"step_size": 0.001, "energy_l2": 0.01, "sample_steps": 500}
LARGE_IMAGE_DEFAULTS = {"step_size": 1.0, "noise_std": 0.01, "energy_l2": 0.1, "sample_steps": 50}


def with_image_defaults(config: EBMConfig, data_info: DataInfo) -> EBMConfig:
    """``config`` with its ``None`` / ``auto`` fields resolved for ``data_info``."""
    large = data_info.large_image
    defaults = LARGE_IMAGE_DEFAULTS if large else SMALL_DATA_DEFAULTS
    resolved = {name: value for name, value in defaults.items() if getattr(config, name) is None}
    if config.sample_init == "auto":
        persistent = config.chains == "persistent"
        resolved["sample_init"] = "buffer" if large and persistent else "noise"
    resolved["patch_size"] = resolve_patch_size(config.patch_size, data_info)
    return replace(config, **resolved)


class EBM(GenerativeModel):
    """An energy-based model ``p(x) = exp(-E(x)) / Z`` on a box (module docstring).

    Samplers: ``langevin`` (unadjusted, from uniform noise or the replay buffer), ``mala``
    (Metropolis-adjusted), ``hmc`` and ``nuts`` (Pyro's, on :meth:`model`).
    """

    Config = EBMConfig
    default_steps = 4000
    # 28x28 digits (2x2 patches, 20 Langevin steps of 128 chains a step): 0.37 s a step in
    # fp32, 0.24 s under bf16 autocast on AMX CPUs (precision=auto) on 2 cores. On 4,000 MNIST
    # digits 800 steps gave FID 57.4 (218 s); a 3,400-step run stayed balanced (energy gap
    # within 0.1) until about step 2,900, then its negatives fell behind the data (gap -9) and
    # the chains left the digits (FID 862.6), so the budget stays well before that
    default_large_image_steps = 800
    bf16_large_image_steps = 800
    samplers = ("langevin", "mala", "hmc", "nuts")
    dequantize = True

    def __init__(self, config: EBMConfig, data_info: DataInfo) -> None:
        config = with_image_defaults(config, data_info)
        super().__init__(config, data_info)
        if data_info.large_image:
            self.default_steps = self.default_large_image_steps
            self.bf16_default_steps = self.bf16_large_image_steps
        if data_info.kind == "image" and len(data_info.event_shape) != 3:
            raise ConfigError("the EBM's image energy expects (C, H, W) images")
        try:
            self.energy_net = energy_network(config, data_info)
            self.negatives = ContrastiveSampler(
                config.chains,
                config.langevin_steps,
                config.step_size,
                config.noise_std,
                data_info.event_shape,
                config.buffer_size,
                config.reinit_fraction,
                # jumps pay off where quadrature works: there a kernel density covers the model
                data_jumps=(
                    self.has_exact_likelihood if config.data_jumps is None else config.data_jumps
                ),
            )
        except ValueError as exc:  # an unknown activation, a bad buffer size
            raise ConfigError(str(exc)) from exc
        shape = data_info.event_shape
        self.register_buffer("box_low", torch.zeros(shape))
        self.register_buffer("box_high", torch.ones(shape))
        self.register_buffer("box_ready", torch.zeros((), dtype=torch.bool))
        self.register_buffer("log_z", torch.full((), math.nan))
        if data_info.value_range is not None:
            self.box_low.fill_(data_info.value_range[0])
            self.box_high.fill_(data_info.value_range[1])
            self.box_ready.fill_(True)

    # -- the energy and the Pyro program -----------------------------------------------------
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``E(x)``, one value per example ``(N,)``."""
        return self.energy_net(x).reshape(x.shape[0])

    def _base(self) -> dist.Distribution:
        return dist.Uniform(self.box_low, self.box_high).to_event(len(self.data_info.event_shape))

    def model(
        self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, num_particles: int = 1
    ) -> torch.Tensor:
        """``x ~ Uniform(box)`` weighted by ``exp(-E(x))``; ``num_particles`` i.i.d. copies.

        The site's values are the data when ``x`` is given; HMC/NUTS sample it otherwise.
        """
        n = num_particles if x is None else x.shape[0]
        with pyro.plate("particles", n):
            x = pyro.sample("x", self._base(), obs=x)
            pyro.factor("energy", -self.energy(x))
        return x

    # -- training ---------------------------------------------------------------------------
    def setup(self, batch: Batch, num_train: int) -> None:
        """The data hook: the sampling box from the first global batch (same on every rank)."""
        self.fit_box(batch.x)

    def fit_box(self, x: torch.Tensor) -> None:
        """Fix the box to ``x``'s bounding box widened by ``box_margin``, unless already fixed."""
        if not self.box_ready:
            low, high = data_box(x, self.config.box_margin)
            self.box_low.copy_(low.reshape(self.box_low.shape))
            self.box_high.copy_(high.reshape(self.box_high.shape))
            self.box_ready.fill_(True)

    def _energies(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        self.fit_box(batch.x)
        x_neg = self.negatives(self.energy, batch.x, self.box_low, self.box_high)
        return self.energy(batch.x), self.energy(x_neg)

    def loss(self, batch: Batch) -> torch.Tensor:
        """The contrastive-divergence loss with its L2 energy penalty, on fresh negatives."""
        energy_pos, energy_neg = self._energies(batch)
        return contrastive_divergence_loss(energy_pos, energy_neg, self.config.energy_l2)

    def _check_divergence(self, gap: torch.Tensor, energy_abs: torch.Tensor, step: int) -> None:
        cfg = self.config
        if not (torch.isfinite(gap) and torch.isfinite(energy_abs)):
            problem = "the energies became NaN or infinite"
        elif energy_abs > cfg.max_abs_energy:
            problem = f"mean |E| = {energy_abs:.3g} exceeds max_abs_energy = {cfg.max_abs_energy:g}"
        elif gap.abs() > cfg.max_energy_gap:
            problem = f"energy gap = {gap:.3g} exceeds max_energy_gap = {cfg.max_energy_gap:g}"
        else:
            return
        raise TrainingDiverged(
            f"EBM training diverged at step {step}: {problem}; try a lower learning rate or "
            "step_size, a larger energy_l2, or spectral_norm=true"
        )

    def train_step(
        self, batch: Batch, optimizers: list[torch.optim.Optimizer], step: int
    ) -> dict[str, torch.Tensor]:
        """One CD update; logs the energies and stops a diverging run before it updates.

        Returned: ``loss``, ``energy_pos`` / ``energy_neg`` (mean energies of data and
        negatives), ``energy_gap`` (their difference), ``energy_abs`` (mean ``|E|`` of both)
        and, with data jumps, ``jump_acceptance`` (the share of chains that jumped).
        """
        (optimizer,) = optimizers
        optimizer.zero_grad(set_to_none=True)
        energy_pos, energy_neg = self._energies(batch)
        loss = contrastive_divergence_loss(energy_pos, energy_neg, self.config.energy_l2)
        gap = (energy_pos.mean() - energy_neg.mean()).detach()
        energy_abs = torch.cat([energy_pos, energy_neg]).detach().abs().mean()
        self._check_divergence(gap, energy_abs, step)
        loss.backward()
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.parameters(), self.config.grad_clip)
        optimizer.step()
        self.log_z.fill_(math.nan)
        logged = {
            "loss": loss.detach(),
            "energy_pos": energy_pos.detach().mean(),
            "energy_neg": energy_neg.detach().mean(),
            "energy_gap": gap,
            "energy_abs": energy_abs,
        }
        if self.negatives.data_jumps:
            logged["jump_acceptance"] = torch.tensor(self.negatives.acceptance)
        return logged

    def on_fit_end(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Compute ``log Z`` by quadrature (1-D and 2-D vectors) for the saved run."""
        if self.has_exact_likelihood:
            self.refresh_log_partition()

    # -- likelihood -------------------------------------------------------------------------
    @property
    def has_exact_likelihood(self) -> bool:
        """Whether ``log Z`` can be computed by quadrature (vectors of dimension <= 2)."""
        return self.data_info.kind == "vector" and self.data_info.dim <= MAX_QUADRATURE_DIM

    def capabilities(self) -> frozenset[str]:
        """``log_prob`` only where quadrature gives log Z (2-D data); the rest as any model."""
        caps = super().capabilities()
        return caps if self.has_exact_likelihood else caps - {"log_prob"}

    @torch.no_grad()
    def refresh_log_partition(self) -> torch.Tensor:
        """Recompute and store ``log Z = log integral_box exp(-E)`` by quadrature."""
        was_training = self.training
        self.eval()
        log_z = log_partition(
            self.energy,
            self.box_low.reshape(-1),
            self.box_high.reshape(-1),
            self.config.quadrature_points,
        )
        self.train(was_training)
        self.log_z.copy_(log_z)
        return self.log_z

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``log p(x) = -E(x) - log Z`` on the box, ``-inf`` outside (1-D and 2-D vectors)."""
        if not self.has_exact_likelihood:
            raise NotImplementedError(
                "the EBM's exact log-likelihood needs quadrature of Z: vectors of dimension <= 2"
            )
        if torch.isnan(self.log_z):
            self.refresh_log_partition()
        flat = x.reshape(x.shape[0], -1)
        inside = ((flat >= self.box_low.reshape(-1)) & (flat <= self.box_high.reshape(-1))).all(1)
        log_p = -self.energy(x) - self.log_z
        return torch.where(inside, log_p, torch.full_like(log_p, -math.inf))

    # -- sampling ---------------------------------------------------------------------------
    def _chain_starts(self, n: int, init: str) -> torch.Tensor:
        check_choice("init", init, CHAIN_INITS)
        if init == "noise":
            return uniform_in_box(n, self.box_low, self.box_high)
        buffer = self.negatives.buffer
        if buffer is None or not buffer.filled:
            raise ConfigError("init='buffer' needs a model trained with persistent chains")
        device = buffer.states.device
        # distinct chains while there are enough of them
        if n <= buffer.capacity:
            index = torch.randperm(buffer.capacity, device=device)[:n]
        else:
            index = torch.randint(buffer.capacity, (n,), device=device)
        return buffer.states[index].clone()

    def mcmc_kernel(self, name: str | None = None, **options: Any) -> MCMCKernel:
        """An MCMC kernel on :meth:`model`: one of :data:`MCMC_KERNELS` (default ``nuts``).

        Pyro's ``hmc`` / ``nuts`` or probgen's ``ula`` / ``mala``, built as
        ``Kernel(self.model, **options)``; they move ``x`` in the unconstrained space of the box
        (a logit per coordinate), so a draw never leaves it.
        """
        name = name or "nuts"
        check_choice("MCMC kernel", name, MCMC_KERNELS)
        return MCMC_KERNELS[name](self.model, **options)

    def mcmc_initial_params(self, num_chains: int) -> dict[str, torch.Tensor]:
        """Starts for ``pyro.infer.MCMC(..., num_chains=num_chains)``: uniform in the box.

        In the kernels' unconstrained space, shape ``(num_chains, 1, *event_shape)`` (one
        particle per chain, the default of :meth:`model`).
        """
        x = uniform_in_box(num_chains, self.box_low, self.box_high)[:, None]
        return {"x": biject_to(self._base().support).inv(x)}

    def generate(
        self, n: int, y: Labels = None, sampler: str | None = None, **options: Any
    ) -> torch.Tensor:
        """``n`` draws from ``exp(-E)`` on the box, in model space.

        - ``langevin`` / ``mala``: ``n`` chains of ``steps`` (default ``sample_steps``) steps of
          size ``step_size`` (default ``sample_step_size`` or the training ``step_size``),
          started from ``init`` (default ``sample_init``): ``"noise"`` (uniform in the box) or
          ``"buffer"`` (distinct persistent chains, continued); Langevin's noise is
          ``noise_std`` (default: the training value).
        - ``hmc`` / ``nuts``: Pyro's kernel on :meth:`model` with ``min(n, mcmc_chains)``
          particles moved together, ``steps`` warm-up iterations (default ``mcmc_warmup``), then
          enough draws per particle for ``n``.
        """
        sampler = self.choose_sampler(sampler)
        steps = options.pop("steps", None)
        was_training = self.training
        self.eval()
        try:
            if sampler in ("hmc", "nuts"):
                return self._mcmc_draws(n, sampler, steps, options)
            return self._langevin_draws(n, sampler, steps, options)
        finally:
            self.train(was_training)

    def _mcmc_draws(self, n: int, sampler: str, steps: int | None, options: dict) -> torch.Tensor:
        if options:
            raise ConfigError(f"{sampler} takes no options, got {sorted(options)}")
        chains = min(n, self.config.mcmc_chains)
        runner = MCMC(
            self.mcmc_kernel(sampler),
            num_samples=math.ceil(n / chains),
            warmup_steps=self.config.mcmc_warmup if steps is None else steps,
            disable_progbar=True,
        )
        # the particles are independent copies of x in one plate: one chain each;
        # sample() runs under no_grad, and HMC needs the potential's gradient
        with torch.enable_grad():
            runner.run(num_particles=chains)
        x = runner.get_samples()["x"].reshape(-1, *self.data_info.event_shape)[:n]
        return x.detach()

    def _langevin_draws(
        self, n: int, sampler: str, steps: int | None, options: dict
    ) -> torch.Tensor:
        step_size = options.pop("step_size", None) or (
            self.config.sample_step_size or self.config.step_size
        )
        x0 = self._chain_starts(n, options.pop("init", self.config.sample_init))
        noise_std = options.pop("noise_std", self.config.noise_std)
        if options:
            raise ConfigError(f"unknown {sampler} options {sorted(options)}")
        n_steps = self.config.sample_steps if steps is None else steps
        box = (self.box_low, self.box_high)
        if sampler == "mala":
            return mala(x0, lambda v: -self.energy(v), n_steps, step_size, clamp=box)[0]
        score = score_of(lambda v: -self.energy(v))
        return langevin_dynamics(x0, score, n_steps, step_size, noise_std=noise_std, clamp=box)
