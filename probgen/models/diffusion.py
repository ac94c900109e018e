"""Denoising diffusion as a Pyro hierarchical latent chain (DDPM), trained by its ELBO.

The generative ``model`` is the reverse chain and the ``guide`` the forward (noising) process:

    p_theta:  x_T ~ N(0, I),  x_{t-1} ~ N(mu_theta(x_t, t), sigma_t^2 I),  t = T..1  (x_0 observed)
    q:        x_t ~ N(sqrt(1 - beta_t) x_{t-1}, beta_t I),                 t = 1..T

with ``mu_theta(x_t, t) = c0_t x0_hat(x_t, t) + ct_t x_t``, the mean of the forward posterior
``q(x_{t-1} | x_t, x_0)`` at the network's estimate of ``x_0``. The network predicts ``eps``,
``x0`` or ``v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0``; the variance is ``beta_t``, the
posterior variance ``betatilde_t``, or learned as ``log sigma^2 = (1+v)/2 log beta_t +
(1-v)/2 log betatilde_t`` with ``v = tanh(network output)`` in [-1, 1]. The chain's negative
ELBO splits into closed-form terms (Ho et al. 2020, eq. 5):

    -ELBO(x_0) = L_T + sum_{t=2}^T L_{t-1} + L_0,
    L_T     = KL(q(x_T | x_0) || N(0, I)),
    L_{t-1} = E_q KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t)),
    L_0     = -E_q log p_theta(x_0 | x_1),

and ``loss`` estimates the sum without bias from one uniformly drawn ``t`` per example
(``T * L_{t-1}``). ``objective="simple"`` is Ho et al.'s L_simple, the mean squared error of the
network's own target (``eps``, ``x0`` or ``v``); ``"hybrid"`` is L_simple + lambda L_vlb with
the mean held fixed inside L_vlb, which trains a learned variance (Nichol & Dhariwal 2021).

The default, eps-prediction with a cosine schedule, learned variance and the hybrid objective,
is chosen for sample quality: L_simple's eps weighting gives the best samples (Ho et al. 2020,
table 2) and trained fastest in our runs (8gaussians after 1500 steps: 80% of ancestral draws
within 3 std of a mode with eps, 52-57% with x0, 13% with v-prediction); the cosine schedule
spends more steps at low noise (80% against 48% with the linear one); the small lambda L_vlb
term trains only the variance, which makes the ELBO (bits/dim) tight and respaced ancestral
sampling good (Nichol & Dhariwal 2021, tables 1-2). Near zero SNR an eps-predictor's
``x0_hat = (x_t - sqrt(1 - abar) eps_hat) / sqrt(abar)`` amplifies its error by
``1/sqrt(abar_T) ~ 2e4`` (cosine), so the deterministic samplers start at log-SNR -10.2 (where
``q(x_t)`` is N(0, I) to 1e-2) rather than at t = T. DPM-Solver++ steps evenly in log-SNR down
to +6.3 (sigma ~ 0.04) and returns ``x0_hat`` there: ending at sigma 0.09-0.17, as an even grid in
t did for 10-20 steps, averaged neighbouring modes of sharp data even with the exact denoiser.

References: Sohl-Dickstein et al. 2015; Ho, Jain & Abbeel 2020, "Denoising Diffusion
Probabilistic Models"; Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic
Models"; Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models"; Salimans & Ho 2022,
"Progressive Distillation for Fast Sampling of Diffusion Models" (v-prediction).
"""

from __future__ import annotations

import math
from typing import ClassVar

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from probgen.errors import ConfigError
from probgen.infer.diffusion_samplers import (
    Prediction,
    Predictor,
    ancestral,
    ddim,
    ddim_encode,
    dpm_solver_2m,
    log_snr_timesteps,
    spaced_timesteps,
)
from probgen.infer.schedules import NoiseSchedule, make_betas
from probgen.models.base import Batch, DataInfo, GenerativeModel, Labels
from probgen.models.diffusion_bound import chain_term, prior_term
from probgen.models.diffusion_config import DiffusionConfig, denoiser_network, with_image_defaults
from probgen.models.diffusion_parameterization import (
    reverse_log_variance,
    simple_target,
    x0_estimate,
)
from probgen.nn.ema import EMA


class Diffusion(GenerativeModel):
    """DDPM/DDIM diffusion model; see the module docstring for the chain and its ELBO.

    Samplers: ``"ancestral"`` (all T steps, or a respaced subsequence with ``steps``),
    ``"ddim"`` (``steps`` default 50, ``eta`` default 0) and ``"dpm++2m"`` (DPM-Solver++ 2M,
    ``steps`` default 20); the first is the default. Large images
    (:attr:`~probgen.models.base.DataInfo.large_image`) sample ancestrally in 50 respaced
    steps by default, fold 2x2 patches into the U-Net's channels (``patch_size``) and train
    without dropout. ``encode``/``decode`` are deterministic DDIM maps x_0 <-> x_T.
    Samples, bounds and codes use the EMA-averaged network; ``loss`` trains the raw one.
    """

    Config = DiffusionConfig
    default_steps = 10000  # small images; large ones and vectors get their own below
    # 28x28 digits, 2x2 patches, no dropout: 1,800 steps fitted in 686 s on 2 CPU cores
    # (0.38 s a step; benchmarks/results/mnist.md), so 2,200 fit in about 14 minutes; on 2
    # AMD EPYC cores 2,200 steps took 326 s and scored FID 53.7, confidence 0.903
    default_large_image_steps = 2200
    # the same under bf16 autocast on AMX CPUs (precision=auto): 3,200 steps fitted in 887 s
    # (0.28 s a step) and reached FID 35.7, confidence 0.918; 3,000 leave a minute to spare
    bf16_large_image_steps = 3000
    # a sharp 2-D mixture needs its small-t denoiser resolved: on 25gaussians 10,000 steps left
    # 4% of ancestral and 5-9% of 50-step DDIM draws off the modes, 20,000 about 2% and 3%
    default_vector_steps = 20000
    samplers = ("ancestral", "ddim", "dpm++2m")
    # default steps per sampler; ancestral's default is every step, except for large images
    default_sampler_steps: ClassVar[dict[str, int]] = {"ddim": 50, "dpm++2m": 20}
    # on 28x28 digits after 1,800 steps, 1,000 draws: ancestral respaced to 50 steps FID 56.3,
    # confidence 0.897; 50 DDIM steps with eta = 1 57.2, 0.897; with eta = 0 127.6, 0.856;
    # 20 DPM-Solver++ steps 114.4, 0.860 (the deterministic samplers keep the network's errors)
    large_image_ancestral_steps = 50
    coding_steps = 100
    # log(abar / (1 - abar)) where DDIM, DPM-Solver++ and encoding start: lambda_min = -5.1 of
    # diffusers' DPM-Solver for cosine schedules, in log-SNR = 2 lambda
    min_log_snr = -10.2
    # log-SNR where DPM-Solver++ takes its last step, sigma ~ 0.04 (k = 19 of the cosine
    # schedule at T = 1000, where 50-step DDIM ends too): see ``max_log_snr`` in docs/diffusion.md
    max_log_snr = 6.3
    image_range = (-1.0, 1.0)
    dequantize = True

    def __init__(self, config: DiffusionConfig, data_info: DataInfo) -> None:
        config = with_image_defaults(config, data_info)
        super().__init__(config, data_info)
        if config.variance == "learned" and config.objective == "simple":
            raise ConfigError("variance='learned' needs objective='hybrid' or 'elbo' to train it")
        self.schedule = NoiseSchedule(make_betas(config.schedule, config.timesteps, config.betas))
        # Python floats: a sampling step reads its coefficients without touching the device
        self._alpha_bar = self.schedule.alpha_bar64.tolist()
        self._betas = self.schedule.betas64.tolist()
        self._learned = config.variance == "learned"
        self.network = denoiser_network(config, data_info)
        self.ema = EMA(self.network, config.ema_decay)
        if data_info.kind != "image":
            self.default_steps = self.default_vector_steps
        elif data_info.large_image:
            # 1,000 ancestral steps of a U-Net are minutes per 1,000 draws on a CPU; 50
            # respaced ones are twenty times fewer, with the learned variance of each
            self.default_steps = self.default_large_image_steps
            self.bf16_default_steps = self.bf16_large_image_steps
            self.default_sampler_steps = {
                **self.default_sampler_steps,
                "ancestral": self.large_image_ancestral_steps,
            }

    # -- the denoiser ----------------------------------------------------------------------
    def _network_output(
        self, net: nn.Module, x: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The network's prediction and learned-variance output for ``x`` of any batch shape.

        ``t`` holds one step index per example or a single one for all.
        """
        info = self.data_info
        net_event = info.event_shape if info.kind == "image" else (info.dim,)
        flat = x if x.shape[1:] == net_event else x.reshape(-1, *net_event)
        out = net(flat, t.expand(flat.shape[0]))
        var_interp = None
        if self._learned:
            out, raw = out.chunk(2, dim=1)
            # tanh keeps log sigma^2 between log betatilde and log beta: an unbounded v
            # extrapolated the variance to overflow in a 40k-step run; on the strided chunk
            # tanh costs twice a copy plus tanh, a fifth of a sampling step's own cost
            var_interp = raw.contiguous().tanh()
        if flat is not x:
            out = out.reshape(x.shape)
            var_interp = None if var_interp is None else var_interp.reshape(x.shape)
        return out, var_interp

    def _predictor(self, clip: bool) -> Predictor:
        net = self.ema.module
        alpha_bar = self._alpha_bar
        value_range = self.data_info.value_range if clip else None
        parameterization = self.config.parameterization

        def predict(x: torch.Tensor, k: int) -> Prediction:
            out, var_interp = self._network_output(net, x, x.new_full((1,), float(k)))
            s0, s1 = math.sqrt(alpha_bar[k]), math.sqrt(1.0 - alpha_bar[k])
            x0 = x0_estimate(parameterization, out, x, s0, s1)
            if value_range is not None:
                x0 = x0.clamp(*value_range)
            return Prediction(x0, var_interp)

        return predict

    def _reverse_step(
        self, net: nn.Module, x_t: torch.Tensor, k: torch.Tensor, clip: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``p_theta(x_{t-1} | x_t)`` (``k = t - 1`` per example).

        ``clip`` clamps ``x0_hat`` to the data's known range (images) as the samplers do, so
        that the chain is the one sampling draws from. Also returns the raw network output,
        which L_simple compares with its target.
        """
        out, var_interp = self._network_output(net, x_t, k.to(x_t.dtype))
        nd = x_t.dim()
        x0 = x0_estimate(
            self.config.parameterization,
            out,
            x_t,
            self.schedule.at("sqrt_alpha_bar", k, nd),
            self.schedule.at("sqrt_one_minus_alpha_bar", k, nd),
        )
        if clip and self.data_info.value_range is not None:
            x0 = x0.clamp(*self.data_info.value_range)
        mean = (
            self.schedule.at("posterior_coef_x0", k, nd) * x0
            + self.schedule.at("posterior_coef_xt", k, nd) * x_t
        )
        log_var = reverse_log_variance(self.config.variance, self.schedule, k, var_interp, nd)
        return mean, log_var, out

    # -- the Pyro programs -----------------------------------------------------------------
    def model(
        self, x: torch.Tensor | None = None, y: Labels = None, num_samples: int = 1
    ) -> torch.Tensor:
        """The reverse chain ``x_T ~ N(0, I), x_{t-1} ~ N(mu_theta(x_t, t), sigma_t^2 I)``.

        ``x_0`` is observed when ``x`` is given; ``model()`` draws ``num_samples`` examples.
        """
        net = self.ema.module
        event = self.data_info.event_shape
        n = x.shape[0] if x is not None else num_samples
        zeros = torch.zeros((n, *event), device=self.device)
        steps = self.schedule.num_steps
        with pyro.plate("data", n, dim=-1):
            x_t = pyro.sample(f"x_{steps}", dist.Normal(zeros, 1.0).to_event(len(event)))
            for t in pyro.markov(range(steps, 0, -1)):
                k = torch.full((1,), t - 1, dtype=torch.long, device=zeros.device)
                mean, log_var, _ = self._reverse_step(net, x_t, k, clip=True)
                x_t = pyro.sample(
                    f"x_{t - 1}",
                    dist.Normal(mean, (0.5 * log_var).exp()).to_event(len(event)),
                    obs=x if t == 1 else None,
                )
        return x_t

    def guide(self, x: torch.Tensor, y: Labels = None) -> None:
        """The forward process ``q(x_{1:T} | x_0)``: ``x_t ~ N(sqrt(1-beta_t) x_{t-1}, beta_t I)``.

        It has no parameters.
        """
        event = self.data_info.event_shape
        with pyro.plate("data", x.shape[0], dim=-1):
            x_t = x
            for t in pyro.markov(range(1, self.schedule.num_steps + 1)):
                beta = self._betas[t - 1]
                x_t = pyro.sample(
                    f"x_{t}",
                    dist.Normal(math.sqrt(1 - beta) * x_t, math.sqrt(beta)).to_event(len(event)),
                )

    # -- the bound -------------------------------------------------------------------------
    def _terms(
        self,
        net: nn.Module,
        x0: torch.Tensor,
        k: torch.Tensor,
        detach_mean: bool = False,
        clip: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One draw ``x_t ~ q(x_t | x_0)`` per example: noise, network output and ``L_{t-1}``."""
        noise = torch.randn_like(x0)
        x_t = self.schedule.q_sample(x0, k, noise)
        mean, log_var, out = self._reverse_step(net, x_t, k, clip=clip)
        if detach_mean:
            mean = mean.detach()
        return noise, out, chain_term(self.schedule, x0, x_t, k, mean, log_var)

    def losses(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The training objective and its parts for one batch (``t`` drawn per example).

        ``vlb`` is the unbiased estimate ``(L_T + T L_{t-1}) / D`` of the negative ELBO in
        nats per dimension; ``mse`` is L_simple on the network's target.
        """
        x0 = batch.x
        steps = self.schedule.num_steps
        k = torch.randint(steps, (x0.shape[0],), device=x0.device)
        objective = self.config.objective
        noise, out_net, chain = self._terms(self.network, x0, k, detach_mean=objective == "hybrid")
        vlb = ((prior_term(x0, self._alpha_bar[-1]) + steps * chain) / self.data_info.dim).mean()
        out = {"vlb": vlb}
        if objective != "elbo":
            target = simple_target(self.config.parameterization, self.schedule, x0, noise, k)
            out["mse"] = (out_net - target).square().mean()
        if objective == "elbo":
            out["loss"] = vlb
        elif objective == "simple":
            out["loss"] = out["mse"]
        else:
            out["loss"] = out["mse"] + self.config.vlb_weight * vlb
        return out

    def loss(self, batch: Batch) -> torch.Tensor:
        return self.losses(batch)["loss"]

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.network.parameters(), lr=lr)]

    def train_step(
        self, batch: Batch, optimizers: list[torch.optim.Optimizer], step: int
    ) -> dict[str, torch.Tensor]:
        """One Adam step on :meth:`losses` (gradient norm clipped to ``grad_clip``), then the
        weight average; returns the detached losses."""
        (optimizer,) = optimizers
        optimizer.zero_grad(set_to_none=True)
        logs = self.losses(batch)
        logs["loss"].backward()
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.network.parameters(), self.config.grad_clip)
        optimizer.step()
        self.ema.update(self.network, step)
        return {name: value.detach() for name, value in logs.items()}

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, y: Labels = None, t_samples: int | None = None) -> torch.Tensor:
        """The chain's ELBO per example in nats (model space), with the EMA network.

        ``t_samples=None`` sums every term ``L_T + sum_t L_{t-1}`` (T network calls, one draw of
        ``x_t`` per term); an integer ``m`` averages ``m`` unbiased one-``t`` estimates
        ``L_T + T L_{t-1}`` per example (``m`` network calls). Both are unbiased for the bound.
        For images ``x0_hat`` is clipped to the data range, as in sampling and :meth:`model`
        (and in Nichol & Dhariwal's evaluation), so this bounds the likelihood of the chain the
        samplers draw from; training leaves it unclipped.
        """
        net = self.ema.module
        steps = self.schedule.num_steps
        total = prior_term(x, self._alpha_bar[-1])
        if t_samples is None:
            for k in range(steps):
                kk = torch.full((x.shape[0],), k, dtype=torch.long, device=x.device)
                total = total + self._terms(net, x, kk, clip=True)[2]
            return -total
        estimate = torch.zeros_like(total)
        for _ in range(t_samples):
            kk = torch.randint(steps, (x.shape[0],), device=x.device)
            estimate = estimate + steps * self._terms(net, x, kk, clip=True)[2]
        return -(total + estimate / t_samples)

    # -- sampling and coding ---------------------------------------------------------------
    def _sampler_steps(self, sampler: str, steps: int | None) -> list[int]:
        """The step indices of a sampler.

        Ancestral: from T, evenly in t. DDIM: from log-SNR ``min_log_snr``, evenly in t.
        DPM-Solver++: from ``min_log_snr`` to ``max_log_snr``, evenly in log-SNR.
        """
        if sampler == "ancestral":
            start = self.schedule.num_steps - 1
        else:
            start = self.schedule.last_index_above(self.min_log_snr)
        end = self.schedule.last_index_above(self.max_log_snr) if sampler == "dpm++2m" else 0
        end = min(end, start)
        available = start - end + 1
        if steps is None:
            steps = min(self.default_sampler_steps.get(sampler, available), available)
        if not 1 <= steps <= available:
            raise ConfigError(f"steps must be in 1..{available} for {sampler}, got {steps}")
        if sampler == "dpm++2m":
            return log_snr_timesteps(self._alpha_bar, steps, start, end)
        return spaced_timesteps(self.schedule.num_steps, steps, start)

    @torch.no_grad()
    def generate(
        self,
        n: int,
        y: Labels = None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` draws in model space: x_T ~ N(0, I), then the chosen sampler to x_0.

        ``steps`` is the number of network calls (ancestral: T unless given, then respaced);
        ``eta`` is DDIM's noise level. Image samples have ``x0_hat`` clipped to
        ``data_info.value_range``; vectors are never clipped.
        """
        if y is not None:
            raise ConfigError("the diffusion model is unconditional; labels are not supported")
        sampler = self.choose_sampler(sampler)
        if not 0.0 <= eta <= 1.0:
            raise ConfigError(f"eta must be in [0, 1], got {eta}")
        timesteps = self._sampler_steps(sampler, steps)
        x = torch.randn((n, *self.data_info.event_shape), generator=generator, device=self.device)
        predict = self._predictor(clip=True)
        if sampler == "ancestral":
            return ancestral(
                predict, x, self._alpha_bar, timesteps, self.config.variance, generator
            )
        if sampler == "ddim":
            return ddim(predict, x, self._alpha_bar, timesteps, eta, generator)
        return dpm_solver_2m(predict, x, self._alpha_bar, timesteps)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: Labels = None, steps: int | None = None) -> torch.Tensor:
        """Deterministic DDIM inversion x_0 -> x_T in ``steps`` (default 100) network calls."""
        timesteps = self._sampler_steps("ddim", steps or self.coding_steps)
        return ddim_encode(self._predictor(clip=False), x, self._alpha_bar, timesteps)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: Labels = None, steps: int | None = None) -> torch.Tensor:
        """Deterministic DDIM (eta = 0) x_T -> x_0 in ``steps`` (default 100) network calls."""
        timesteps = self._sampler_steps("ddim", steps or self.coding_steps)
        return ddim(self._predictor(clip=True), z, self._alpha_bar, timesteps)
