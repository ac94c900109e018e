"""Score-based generative models: NCSN and score SDEs (VE, VP, sub-VP).

A network ``s_theta(x, c)`` learns the score ``grad_x log p_sigma(x)`` of the data blurred by
Gaussian noise, at every noise level at once (noise conditioning, ``c`` the level). It is trained
by denoising score matching (DSM): for ``x~ = x + sigma z`` the regression target is the score of
the noising kernel, ``-z / sigma``, and with the weighting ``lambda(sigma) = sigma^2``

    L(theta) = E_{sigma, x, z} [ || sigma s_theta(x + sigma z, sigma) + z ||^2 ] / 2,

whose minimiser is the true score of ``p_sigma`` (Vincent 2011). Sliced score matching
(``objective=ssm``) is the alternative that needs no noise model for the target:
``E[ v^T (d s / dx) v + ||s||^2 / 2 ]`` with random projections ``v``.

``sde=ncsn`` trains on a geometric ladder ``sigma_1 > ... > sigma_L`` (``sigma_1`` the largest
pairwise distance in the first training batch, ``sigma_L = sigma_min``) and samples by annealed
Langevin dynamics; ``sde=ve|vp|subvp`` trains over continuous time of a score SDE
(:mod:`probgen.infer.sde`) and samples with the predictor-corrector sampler or the
probability-flow ODE, which also gives ``log_prob``. The network predicts ``sigma * score`` (so
its output has unit scale at every level) and an EMA copy of its weights is used to sample.

References:
    Song & Ermon 2019, "Generative modeling by estimating gradients of the data distribution";
    Song & Ermon 2020, "Improved techniques for training score-based generative models";
    Song et al. 2021, "Score-based generative modeling through stochastic differential
    equations"; Vincent 2011, "A connection between score matching and denoising autoencoders";
    Song, Garg, Shi & Ermon 2019, "Sliced score matching".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from probgen.config import choice
from probgen.errors import ConfigError
from probgen.infer.langevin import ULA
from probgen.infer.langevin_particles import annealed_langevin_dynamics, langevin_dynamics
from probgen.infer.sde import VESDE, VPSDE, ScoreSDE, SubVPSDE, ode_log_prob, ode_sample, pc_sample
from probgen.models.base import Batch, DataInfo, GenerativeModel, Labels
from probgen.models.image_networks import resolve_patch_size, time_unet
from probgen.nn import EMA, MLP, SinusoidalEmbedding

SAMPLERS = {
    "ncsn": ("annealed", "langevin"),
    "ve": ("pc", "ode", "annealed", "langevin"),
    "vp": ("pc", "ode"),
    "subvp": ("pc", "ode"),
}
SDES = ("auto", *SAMPLERS)  # auto: ncsn, except vp for large images
OBJECTIVES = ("dsm", "ssm")
NETS = ("auto", "mlp", "unet")  # auto: the U-Net for large images
# generate(**options): per-call overrides of the sampler settings in Config
SAMPLER_OPTIONS = ("step_lr", "final_denoise", "n_steps_each", "snr", "n_corrector")


class NoiseConditionalScoreNet(nn.Module):
    """``(x, c) -> sigma * s(x, c)``: an MLP on the flattened input and an embedding of ``c``.

    ``c in [0, 1]`` is the noise level (time of the SDE, or the position of ``sigma`` on the
    log-scale ladder); images are flattened, which is enough for 8x8 digits (larger ones take
    the U-Net, ``net=unet``).
    """

    def __init__(
        self, dim: int, hidden: tuple[int, ...], embedding_dim: int, activation: str
    ) -> None:
        super().__init__()
        self.embed = SinusoidalEmbedding(embedding_dim, scale=1000.0)
        self.mlp = MLP(dim + embedding_dim, hidden, dim, activation)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x.flatten(1), self.embed(c)], dim=1)
        return self.mlp(h).reshape(x.shape)


class ScoreModel(GenerativeModel):
    """Noise-conditional score model (NCSN or score SDE); see the module docstring."""

    @dataclass
    class Config:
        """``sde=auto`` is ``ncsn``, except ``vp`` for large images
        (:attr:`~probgen.models.base.DataInfo.large_image`: annealed Langevin's 500 network
        evaluations per draw are too many for a CPU there, and the VP SDE's reverse diffusion
        needs no step size tuned to the data). ``net=auto`` is an MLP on the flattened input
        (``hidden``, ``embedding_dim``, ``activation``), except the noise-conditioned U-Net of
        :mod:`probgen.nn.unet` for large images (``channels``, ``channel_mults``,
        ``res_blocks``, ``dropout``, ``patch_size``: None folds 2x2 patches in). ``pc_steps``
        None is 500 predictor steps with ``n_corrector`` None -> 1 Langevin corrector each, or
        for large images ``large_image_pc_steps`` predictor steps and no corrector.
        """

        sde: str = choice("auto", SDES)
        objective: str = choice("dsm", OBJECTIVES)  # ssm: sliced score matching
        net: str = choice("auto", NETS)
        hidden: tuple[int, ...] = (256, 256, 256)
        embedding_dim: int = 64
        activation: str = "silu"
        channels: int = 32
        channel_mults: tuple[int, ...] = (1, 2)
        res_blocks: int = 1
        dropout: float = 0.0
        patch_size: int | None = None
        num_scales: int = 50  # L, the NCSN ladder (and VE's annealed sampler)
        sigma_min: float = 0.01
        sigma_max: float | None = None  # None: largest pairwise distance in the first batch
        beta_min: float = 0.1  # VP / sub-VP noise schedule
        beta_max: float = 20.0
        # warmed up as min(decay, (1 + step) / (10 + step)); 0 samples with the raw weights
        ema_decay: float = 0.999
        n_steps_each: int = 10  # annealed Langevin steps per noise level
        step_lr: float = 5e-5  # eps in alpha_i = eps sigma_i^2 / sigma_L^2
        final_denoise: bool = True
        pc_steps: int | None = None
        snr: float = 0.16
        n_corrector: int | None = None
        ode_steps: int = 100
        likelihood_steps: int = 100
        exact_trace: bool = False  # log_prob: exact divergence instead of Hutchinson's

    default_steps = 5000
    # the U-Net on 28x28 digits (2x2 patches, batch 128): 0.38 s a step on 2 older Intel
    # cores, so 2,200 steps fit the 15-minute budget with a minute to spare; on 2 AMD EPYC
    # cores (0.13 s a step) 2,200 steps scored FID 60.8, confidence 0.907
    default_large_image_steps = 2200
    # the same under bf16 autocast on AMX CPUs (precision=auto): 0.28 s a step (3,600 steps
    # took 1,000 s), so 3,000
    bf16_large_image_steps = 3000
    default_pc_steps = 500
    # 200 U-Net evaluations per draw on large images, spent on 200 reverse-diffusion steps:
    # on 28x28 digits after 3,600 steps that scored FID 109.0 / confidence 0.913 against
    # 107.2 / 0.894 for 100 predictor steps with a corrector each (snr 0.16)
    large_image_pc_steps = 200
    samplers = ("annealed", "langevin", "pc", "ode")
    image_range = (-1.0, 1.0)
    dequantize = True

    def __init__(self, config: Config, data_info: DataInfo) -> None:
        large = data_info.large_image
        net = config.net if config.net != "auto" else ("unet" if large else "mlp")
        config = replace(
            config,
            sde=config.sde if config.sde != "auto" else ("vp" if large else "ncsn"),
            net=net,
            pc_steps=config.pc_steps
            or (self.large_image_pc_steps if large else self.default_pc_steps),
            n_corrector=(0 if large else 1) if config.n_corrector is None else config.n_corrector,
            patch_size=(
                resolve_patch_size(config.patch_size, data_info)
                if net == "unet"
                else config.patch_size
            ),
        )
        super().__init__(config, data_info)
        if config.sigma_min <= 0 or (
            config.sigma_max is not None and config.sigma_max <= config.sigma_min
        ):
            raise ConfigError("need 0 < sigma_min < sigma_max")
        if config.num_scales < 2:
            raise ConfigError("num_scales must be at least 2")
        # the valid samplers for this SDE, default first (the class lists every one)
        self.samplers = SAMPLERS[config.sde]
        if large:
            self.default_steps = self.default_large_image_steps
            self.bf16_default_steps = self.bf16_large_image_steps
        if config.net == "unet":
            # c in [0, 1] embedded as 1000 c, as the MLP's embedding does
            self.net = time_unet(config, data_info, time_scale=1000.0)
        else:
            self.net = NoiseConditionalScoreNet(
                data_info.dim, tuple(config.hidden), config.embedding_dim, config.activation
            )
        self.ema = EMA(self.net, config.ema_decay) if config.ema_decay > 0 else None
        # 0 until fitted from the first training batch, then saved with the run
        self.register_buffer("sigma_max", torch.tensor(float(config.sigma_max or 0.0)))

    # -- noise levels ------------------------------------------------------------------------
    @property
    def uses_ladder(self) -> bool:
        """Whether levels are noise scales sigma (NCSN, VE) rather than VP/sub-VP times."""
        return self.config.sde in ("ncsn", "ve")

    def _require_sigma_max(self) -> float:
        sigma_max = float(self.sigma_max)
        if sigma_max <= 0:
            raise ConfigError("the model is not trained: sigma_max is unknown")
        return sigma_max

    def sigmas(self) -> torch.Tensor:
        """The geometric ladder ``sigma_max = sigma_1 > ... > sigma_L = sigma_min``."""
        sigma_max = self._require_sigma_max()
        return torch.exp(
            torch.linspace(
                math.log(sigma_max),
                math.log(self.config.sigma_min),
                self.config.num_scales,
                device=self.sigma_max.device,
            )
        )

    def sde(self) -> ScoreSDE:
        """The score SDE (``sde=ve|vp|subvp``); VE spans ``[sigma_min, sigma_max]``."""
        c = self.config
        if c.sde == "ve":
            return VESDE(c.sigma_min, self._require_sigma_max())
        if c.sde == "vp":
            return VPSDE(c.beta_min, c.beta_max)
        if c.sde == "subvp":
            return SubVPSDE(c.beta_min, c.beta_max)
        raise ConfigError("sde=ncsn has no continuous SDE; choose sde=ve, vp or subvp")

    def setup(self, batch: Batch, num_train: int) -> None:
        """The data hook: the sigma ladder's top from the first global batch (same on every
        rank, so no process needs to talk to another)."""
        self.ensure_setup(batch.x)

    def ensure_setup(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        if self.uses_ladder and float(self.sigma_max) <= 0:
            self._fit_sigma_max(x)

    @torch.no_grad()
    def _fit_sigma_max(self, x: torch.Tensor) -> None:
        """sigma_1 = the largest pairwise distance in the batch (Song & Ermon 2020, technique 1)."""
        distance = torch.cdist(x.flatten(1), x.flatten(1)).max()
        self.sigma_max.fill_(max(float(distance), 2 * self.config.sigma_min))

    def _level_of_sigma(self, sigma: torch.Tensor) -> torch.Tensor:
        """Position of ``sigma`` on the log scale, 0 at sigma_min and 1 at sigma_max."""
        log_ratio = math.log(self._require_sigma_max() / self.config.sigma_min)
        return torch.log(sigma / self.config.sigma_min) / log_ratio

    def score(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        net: nn.Module | None = None,
    ) -> torch.Tensor:
        """``s_theta(x, .) ~ grad_x log p(x)`` at noise ``sigma`` (NCSN/VE) or SDE time ``t``."""
        net = self.net if net is None else net
        if sigma is not None:
            c, std = self._level_of_sigma(sigma), sigma
        else:
            c, std = t, self.sde().std(t)
        return net(x, c) / std.reshape(-1, *([1] * (x.dim() - 1)))

    @property
    def sampling_net(self) -> nn.Module:
        """The network used to sample: the EMA copy when there is one."""
        return self.ema.module if self.ema is not None else self.net

    # -- training ----------------------------------------------------------------------------
    def _perturb(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """A random noise level per example: ``(x~, z, sigma or None, t or None, std)``."""
        n = x.shape[0]
        z = torch.randn_like(x)
        if self.config.sde == "ncsn":
            idx = torch.randint(0, self.config.num_scales, (n,), device=x.device)
            sigma = self.sigmas().to(x.dtype)[idx]
            std = sigma.reshape(-1, *([1] * (x.dim() - 1)))
            return x + std * z, z, sigma, None, std
        sde = self.sde()
        t = torch.rand(n, device=x.device, dtype=x.dtype) * (sde.T - sde.t_min) + sde.t_min
        x_t, std = sde.perturb(x, t, z)
        return x_t, z, None, t, std

    def loss(self, batch: Batch) -> torch.Tensor:
        """DSM ``E ||std s(x~) + z||^2 / 2`` or SSM ``E std^2 [v^T ds/dx v + ||s||^2/2]``."""
        x = batch.x
        self.ensure_setup(x)
        x_noisy, z, sigma, t, std = self._perturb(x)
        if self.config.objective == "dsm":
            scaled = self.net(x_noisy, self._level_of_sigma(sigma) if sigma is not None else t)
            return 0.5 * ((scaled + z) ** 2).flatten(1).sum(1).mean()
        x_noisy = x_noisy.detach().requires_grad_(True)
        s = self.score(x_noisy, sigma=sigma, t=t)
        v = torch.randn_like(x_noisy)
        (jvp,) = torch.autograd.grad((s * v).sum(), x_noisy, create_graph=True)
        per_example = (jvp * v).flatten(1).sum(1) + 0.5 * (s**2).flatten(1).sum(1)
        return (std.flatten(1)[:, 0] ** 2 * per_example).mean()

    def train_step(
        self, batch: Batch, optimizers: list[torch.optim.Optimizer], step: int
    ) -> dict[str, torch.Tensor]:
        logs = super().train_step(batch, optimizers, step)
        if self.ema is not None:
            self.ema.update(self.net, step)
        return logs

    # -- the Pyro program and sampling -------------------------------------------------------
    def _prior_std(self) -> float:
        return self._require_sigma_max() if self.uses_ladder else self.sde().prior_std()

    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """Implicit Pyro program: ``x_T ~ N(0, sigma_T^2 I)``, ``x = sampler(x_T)``.

        The sampler (annealed Langevin or the reverse SDE) adds its own noise along the way;
        only the starting point is a Pyro sample site.
        """
        n = 1 if x is None else x.shape[0]
        shape = self.data_info.event_shape
        with pyro.plate("data", n):
            scale = self.sigma_max.new_tensor(self._prior_std())
            x_T = pyro.sample("x_T", dist.Normal(0.0, scale).expand(shape).to_event(len(shape)))
            x = self._transport(x_T, self.samplers[0], None, {})
            return pyro.deterministic("x", x, event_dim=len(shape))

    def _transport(
        self, x: torch.Tensor, sampler: str, steps: int | None, options: dict
    ) -> torch.Tensor:
        c = self.config
        net = self.sampling_net
        if sampler in ("annealed", "langevin"):

            def score_fn(x: torch.Tensor, sigma: float) -> torch.Tensor:
                return self.score(x, sigma=x.new_full((x.shape[0],), sigma), net=net)

            sigmas = self.sigmas()
            eps = options.get("step_lr", c.step_lr)
            denoise = options.get("final_denoise", c.final_denoise)
            if sampler == "annealed":
                n_each = steps or options.get("n_steps_each", c.n_steps_each)
                return annealed_langevin_dynamics(x, score_fn, sigmas, n_each, eps, denoise)
            sigma_min = float(sigmas[-1])
            # the last annealed level's step, for as many steps as the whole annealed run
            x = langevin_dynamics(
                x,
                lambda x: score_fn(x, sigma_min),
                steps or c.num_scales * c.n_steps_each,
                step_size=eps / 2,
            )
            return x + sigma_min**2 * score_fn(x, sigma_min) if denoise else x

        def score_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.score(x, t=t, net=net)

        if sampler == "pc":
            return pc_sample(
                self.sde(),
                score_fn,
                x,
                steps or c.pc_steps,
                snr=options.get("snr", c.snr),
                n_corrector=options.get("n_corrector", c.n_corrector),
            )
        return ode_sample(self.sde(), score_fn, x, steps or c.ode_steps)

    @torch.no_grad()
    def generate(
        self, n: int, y: Labels = None, sampler: str | None = None, **options: Any
    ) -> torch.Tensor:
        """``n`` draws in model space by ``sampler`` (default: the first of ``self.samplers``).

        ``steps``: Langevin steps per level (``annealed``), Langevin steps (``langevin``),
        predictor steps (``pc``) or RK4 steps (``ode``); the other ``options`` override the
        config's ``step_lr``, ``final_denoise``, ``n_steps_each``, ``snr`` and ``n_corrector``.
        """
        sampler = sampler or self.samplers[0]
        steps = options.pop("steps", None)
        unknown = sorted(set(options) - set(SAMPLER_OPTIONS))
        if unknown:
            raise ConfigError(
                f"unknown sampler option(s) {', '.join(unknown)}; "
                f"choose from {', '.join(SAMPLER_OPTIONS)}"
            )
        if sampler not in self.samplers:
            raise ConfigError(
                f"sampler {sampler!r} does not apply to sde={self.config.sde}; "
                f"choose from {', '.join(self.samplers)}"
            )
        shape = (n, *self.data_info.event_shape)
        x = self.sigma_max.new_empty(shape).normal_() * self._prior_std()
        x = self._transport(x, sampler, steps, options)
        if self.data_info.value_range is not None:
            x = x.clamp(*self.data_info.value_range)
        return x

    def mcmc_kernel(self, name: str | None = None, step_size: float = 1e-3) -> ULA:
        """Unadjusted Langevin on the learned score at the smallest noise level, as a Pyro
        ``MCMCKernel`` over one site ``x`` (so ``pyro.infer.MCMC`` runs chains that
        ``arviz.from_pyro`` reads; ``probgen inspect`` uses it)."""
        if name not in (None, "ula"):
            raise ConfigError(f"score models offer the 'ula' kernel, not {name!r}")
        net = self.sampling_net
        if self.config.sde in ("ncsn", "ve"):
            sigma = float(self.sigmas()[-1])

            def score(x: torch.Tensor) -> torch.Tensor:
                return self.score(x, sigma=x.new_full((len(x),), sigma), net=net)
        else:

            def score(x: torch.Tensor) -> torch.Tensor:
                return self.score(x, t=x.new_full((len(x),), 1e-3), net=net)

        def score_fn(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            with torch.no_grad():
                return {"x": score(params["x"][None])[0]}

        return ULA(score_fn=score_fn, step_size=step_size)

    def mcmc_initial_params(self, num_chains: int) -> dict[str, torch.Tensor]:
        """Chain starts drawn from the model itself, so the chains begin in its typical set."""
        return {"x": self.generate(num_chains)}

    def capabilities(self) -> frozenset[str]:
        """``log_prob`` needs an SDE (the ODE); the NCSN ladder has none."""
        caps = super().capabilities()
        return caps - {"log_prob"} if self.config.sde == "ncsn" else caps

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``log p(x)`` per example through the probability-flow ODE (RK4, Hutchinson trace).

        Only for the SDEs (the ODE needs scores at every time); ``exact_trace=True`` computes
        the divergence exactly (D backward passes per step, fine for 2-D data).
        """
        sde = self.sde()
        net = self.sampling_net
        return ode_log_prob(
            sde,
            lambda z, t: self.score(z, t=t, net=net),
            x,
            n_steps=self.config.likelihood_steps,
            exact_trace=self.config.exact_trace,
        )
