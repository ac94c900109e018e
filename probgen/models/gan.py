"""Generative adversarial networks: an implicit Pyro generator trained against a discriminator.

The generator is the Pyro program ``z ~ N(0, I)``, ``x = G(z)`` (a deterministic site): it has
samples but no density. A discriminator ``D`` learns to tell its draws from the data and ``G``
learns to fool it, in the game of Goodfellow et al. (2014)

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))]

or one of the variants in :mod:`probgen.infer.adversarial`. The remedies for mode collapse are
options: PacGAN packing (``pack``), minibatch standard deviation (``minibatch_std``), two
time-scale learning rates (``lr_g_scale``, ``lr_d_scale``), a generator EMA (``ema_decay``),
spectral normalisation of ``D`` (``spectral_norm``) and the R1 penalty (``r1_weight``);
``data_scale`` sets the scale at which both networks see vector data.

References: Goodfellow et al. 2014, "Generative Adversarial Nets"; Lin et al. 2018, "PacGAN";
Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule" (TTUR); Yazici et al. 2019,
"The Unusual Effectiveness of Averaging in GAN Training" (EMA); Miyato et al. 2018, "Spectral
Normalization for Generative Adversarial Networks".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch

from probgen.config import choice
from probgen.errors import ConfigError
from probgen.infer.adversarial import (
    ADVERSARIAL_LOSSES,
    gradient_penalty,
    logits_and_r1_penalty,
    pack,
)
from probgen.models.base import Batch, DataInfo, GenerativeModel, Labels
from probgen.models.gan_networks import (
    UPSAMPLINGS,
    ConvGenerator,
    Discriminator,
    image_stages,
    spectral_normalise,
)
from probgen.nn.ema import EMA
from probgen.nn.mlp import ACTIVATIONS, MLP


class GAN(GenerativeModel):
    """A generator ``x = G(z)``, ``z ~ N(0, I)``, trained in an adversarial game with ``D``.

    ``train_step`` updates the discriminator on every call and the generator on every
    ``n_critic``-th one, each with its own Adam optimiser; ``generate`` draws through the
    generator's exponential moving average when ``ema_decay`` is set.

    References: Goodfellow et al. 2014, "Generative Adversarial Nets".
    """

    @dataclass
    class Config:
        """Hyperparameters; the defaults are the best configuration measured on the grid.

        The default is the non-saturating game with the networks working at the grid's raw
        scale (``data_scale=2.83``), the R1 penalty (``r1_weight=0.1``), a discriminator at
        twice the generator's learning rate (``lr_d_scale=2``) and a 0.999 generator EMA, for
        45,000 steps (images: 10,000), sampled with Jacobian truncation (vectors); docs/gan.md
        has the measurements on the 25-Gaussian grid and the digits, and each remedy's effect.

        Attributes:
            latent_dim: dimension of ``z ~ N(0, I)``; ``None`` (the default) picks it from
                the data: 2 for vectors (the grid's measured setting), 64 for images, where a
                2-D latent collapsed the digits onto a few blurred kinds (FID 694 against 87
                with 64 dimensions after 3,000 steps). The run stores the number chosen.
            hidden: widths of the generator MLP (vectors).
            disc_hidden: widths of the discriminator MLP (vectors); the last one is the
                feature width the head reads.
            channels: base width of the convolutional networks (images); ``None`` (the
                default) picks it from the image size: 32 where the networks halve the image
                once (8x8), 16 where they halve it twice (28x28: 4,000 MNIST digits, 3,000
                steps, FID 86.8 in 17 min on a loaded 2-core CPU; 32 channels double the time
                per step). The run stores the number chosen.
            upsampling: how the image generator doubles its maps (one of
                :data:`~probgen.models.gan_networks.UPSAMPLINGS`, see
                :func:`~probgen.models.gan_networks.doubling`). ``nearest``, the default,
                measured better on 4,000 MNIST digits at 3,000 steps: FID 86.8 (R1 on every
                step) against 136.2 for ``transpose`` (lazy R1), which takes 0.26 s a step
                against 0.37 on 2 CPU cores.
            activation: nonlinearity of both networks (one of :data:`probgen.nn.mlp.ACTIVATIONS`).
            loss: ``minimax`` (the game as written), ``nonsaturating``, ``wgan-gp`` or
                ``hinge``.
            gp_weight: weight of the WGAN-GP gradient penalty (used by ``wgan-gp`` only).
            r1_weight: ``gamma`` of the R1 penalty ``(gamma / 2) E||grad D(x)||^2``; 0 is off.
            r1_every: lazy regularisation (Karras et al. 2020, "Analyzing and Improving the
                Image Quality of StyleGAN", section 3.1): the R1 penalty is added on every
                ``k``-th discriminator step only, weighted ``k`` times, so its average pull is
                unchanged at ``1/k`` of its cost. The default 1 is every step, the measured
                setting on the grid and the digits; on 28x28 digits the penalty's double
                backward was a third of a step (0.19 of 0.56 s on 2 CPU cores, before the
                penalty shared the discriminator's pass on the real batch), which
                ``r1_every=16`` saves.
            n_critic: discriminator updates per generator update.
            pack: PacGAN degree: the discriminator judges packs of this many examples.
            minibatch_std: append the minibatch standard deviation feature to ``D``.
            group_size: group size of the minibatch standard deviation.
            spectral_norm: spectrally normalise every layer of ``D``.
            lr_g_scale: generator learning rate as a multiple of the fit loop's ``lr``.
            lr_d_scale: discriminator learning rate as a multiple of ``lr`` (TTUR: > g's).
            beta1: Adam's first beta; ``None`` means 0 for ``wgan-gp``, 0.5 otherwise.
            beta2: Adam's second beta; ``None`` means 0.9 for ``wgan-gp``, 0.999 otherwise.
            ema_decay: decay of the generator's weight average used to sample, warmed up as
                ``min(decay, (1 + k) / (10 + k))`` over the generator's updates ``k``
                (:meth:`~probgen.nn.ema.EMA.decay_at`); 0 samples with the raw generator.
            data_scale: for vector data, the networks work in model space times this factor
                ``s``: ``D`` reads ``s x`` and samples are ``G(z) / s``. Standardised toys are
                small in model space (a grid mode is ~0.018 wide); ``s`` restores the scale the
                published architectures were tuned on. Images ignore it (their range is
                fixed by ``image_range``).
            jacobian_truncation: ``generate`` keeps only latent draws where the generator
                stretches the latent space at most this many times its median stretch,
                ``||dG/dz||_F <= c median ||dG/dz||_F`` (Jacobian-based truncation, Tanielian
                et al. 2020); ``None`` keeps every draw; ``auto`` is
                ``default_jacobian_truncation`` for the kind of data. A continuous ``G`` of a
                connected latent must bridge separate modes, and its bridge draws are exactly
                the ones with a large stretch: on the grid 8-10% of draws, stretched ~150x
                the median, against ~2% of the in-mode ones above 50x (vectors: 50). On 28x28
                digits stretches are spread more evenly (the 90th percentile is 1.33 times the
                median) and the blends between digits sit in the top tenth: ``c = 1.3`` (the
                image default) took the classifier's confidence from 0.896 to 0.906 at FID
                77.1 -> 87.2.
        """

        latent_dim: int | None = None
        hidden: tuple[int, ...] = (128, 128, 128)
        disc_hidden: tuple[int, ...] = (128, 128, 128)
        channels: int | None = None
        upsampling: str = choice("nearest", UPSAMPLINGS)
        activation: str = choice("leaky_relu", ACTIVATIONS)
        loss: str = choice("nonsaturating", ADVERSARIAL_LOSSES)
        gp_weight: float = 10.0
        r1_weight: float = 0.1
        r1_every: int = 1
        n_critic: int = 1
        pack: int = 1
        minibatch_std: bool = False
        group_size: int = 4
        spectral_norm: bool = False
        lr_g_scale: float = 1.0
        lr_d_scale: float = 2.0
        beta1: float | None = None
        beta2: float | None = None
        ema_decay: float = 0.999
        data_scale: float = 2.83
        jacobian_truncation: float | str | None = "auto"

    default_steps = 45000  # vectors (the grid); images get default_image_steps
    # by resolution_stages: 8x8 digits, 64-d latent: FID 86.9 / 44.4 / 38.0 after 3,000 / 6,000 /
    # 10,000 steps (12 min on 2 CPU cores); 28x28 digits: 3,000 steps of ~0.3 s (0.12 s on 2
    # AMD EPYC cores, where they scored FID 73.2, confidence 0.906)
    default_image_steps: ClassVar[dict[int, int]] = {1: 10000, 2: 3000}
    default_image_channels: ClassVar[dict[int, int]] = {1: 32, 2: 16}
    # large images under bf16 autocast on AMX CPUs (precision=auto): 28x28 digits take about
    # 0.19 s a step over a whole run against 0.27 s in fp32 (one generator pass serves both
    # players); 4,000 steps took 791 s and reached FID 77.1, confidence 0.896 (87.2 and 0.906
    # with the image default jacobian_truncation=1.3)
    bf16_large_image_steps = 4000
    samplers = ("generator",)
    image_range = (-1.0, 1.0)

    # latent_dim=None: the latent dimension for each kind of data
    default_latent_dims: ClassVar[dict[str, int]] = {"vector": 2, "image": 64}
    # jacobian_truncation=auto: the multiple of the median stretch kept for each kind of data
    default_jacobian_truncation: ClassVar[dict[str, float]] = {"vector": 50.0, "image": 1.3}

    def __init__(self, config: GAN.Config, data_info: DataInfo) -> None:
        if config.latent_dim is None:
            latent = self.default_latent_dims.get(data_info.kind, 2)
            config = dataclasses.replace(config, latent_dim=latent)
        if config.jacobian_truncation == "auto":
            c = self.default_jacobian_truncation.get(data_info.kind, 50.0)
            config = dataclasses.replace(config, jacobian_truncation=c)
        stages = image_stages(data_info)
        if config.channels is None:
            config = dataclasses.replace(config, channels=self.default_image_channels[stages])
        super().__init__(config, data_info)
        for name in ("n_critic", "pack", "group_size", "latent_dim", "channels", "r1_every"):
            if getattr(config, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(config, name)}")
        if config.data_scale <= 0:
            raise ConfigError(f"data_scale must be positive, got {config.data_scale}")
        if isinstance(config.jacobian_truncation, str):
            raise ConfigError(
                f"jacobian_truncation must be a number, none or auto, "
                f"got {config.jacobian_truncation!r}"
            )
        if config.jacobian_truncation is not None and config.jacobian_truncation < 1:
            raise ConfigError(
                f"jacobian_truncation must be at least 1 (a multiple of the median), "
                f"got {config.jacobian_truncation}"
            )
        self.game = ADVERSARIAL_LOSSES[config.loss]
        shape = tuple(data_info.event_shape)
        if data_info.kind == "image":
            if len(shape) != 3 or shape[1] % 2 or shape[2] % 2:
                raise ConfigError(f"GAN images must be (C, H, W) with even H, W; got {shape}")
            self.generator = ConvGenerator(
                config.latent_dim, shape, config.channels, config.activation, config.upsampling
            )
            self.network_scale = 1.0
            self.default_steps = self.default_image_steps[stages]
            if data_info.large_image:
                self.bf16_default_steps = self.bf16_large_image_steps
        else:
            self.generator = MLP(config.latent_dim, config.hidden, data_info.dim, config.activation)
            shape = (data_info.dim,)
            self.network_scale = config.data_scale
        packed = (config.pack * shape[0], *shape[1:])
        self.discriminator = Discriminator(
            packed,
            config.disc_hidden,
            config.channels,
            config.activation,
            config.group_size if config.minibatch_std else None,
        )
        if config.spectral_norm:
            spectral_normalise(self.discriminator)
        self.generator_ema = EMA(self.generator, config.ema_decay) if config.ema_decay > 0 else None

    # -- the Pyro program --------------------------------------------------------------------
    def model(
        self,
        x: torch.Tensor | None = None,
        y: Labels = None,
        num_samples: int | None = None,
        averaged: bool = False,
    ) -> torch.Tensor:
        """``z ~ N(0, I)``, ``x = G(z)`` for ``num_samples`` draws (or ``len(x)``).

        The generator is implicit: it has no likelihood, so observed ``x`` only sets the size
        of the plate. ``averaged=True`` draws through the EMA generator that ``generate`` uses.
        """
        n = num_samples if num_samples is not None else (len(x) if x is not None else 1)
        net = self.generator_ema.module if averaged else self.generator
        loc = torch.zeros(self.config.latent_dim, device=self.device)
        with pyro.plate("data", n):
            z = pyro.sample("z", dist.Normal(loc, 1.0).to_event(1))
            out = (net(z) / self.network_scale).reshape(n, *self.data_info.event_shape)
            return pyro.deterministic("x", out, event_dim=len(self.data_info.event_shape))

    # -- training -----------------------------------------------------------------------------
    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """``[generator Adam, discriminator Adam]`` with the two time-scale learning rates."""
        cfg = self.config
        wgan = cfg.loss == "wgan-gp"
        betas = (
            cfg.beta1 if cfg.beta1 is not None else (0.0 if wgan else 0.5),
            cfg.beta2 if cfg.beta2 is not None else (0.9 if wgan else 0.999),
        )
        return [
            torch.optim.Adam(self.generator.parameters(), lr=lr * cfg.lr_g_scale, betas=betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=lr * cfg.lr_d_scale, betas=betas),
        ]

    def _network_packs(self, x: torch.Tensor) -> torch.Tensor:
        """Model-space ``x`` as ``D`` reads it: scaled by ``network_scale``, in packs."""
        return pack(x * self.network_scale, self.config.pack)

    def _judge(self, x: torch.Tensor) -> torch.Tensor:
        """Discriminator logits of ``x`` in packs of ``config.pack`` examples."""
        return self.discriminator(self._network_packs(x))

    def _discriminator_loss(
        self, real: torch.Tensor, fake: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The discriminator's objective at ``step`` with its penalties, and the logits it saw
        (R1 on every ``r1_every``-th step, weighted ``r1_every`` times)."""
        cfg = self.config
        terms = {}
        if cfg.r1_weight > 0 and step % cfg.r1_every == 0:
            real_logits, terms["r1"] = logits_and_r1_penalty(
                self.discriminator, self._network_packs(real)
            )
        else:
            real_logits = self._judge(real)
        fake_logits = self._judge(fake)
        loss = self.game.discriminator(real_logits, fake_logits)
        if cfg.loss == "wgan-gp":
            packed_real, packed_fake = self._network_packs(real), self._network_packs(fake)
            terms["gradient_penalty"] = gradient_penalty(
                self.discriminator, packed_real, packed_fake
            )
            loss = loss + cfg.gp_weight * terms["gradient_penalty"]
        if "r1" in terms:
            loss = loss + 0.5 * cfg.r1_weight * cfg.r1_every * terms["r1"]
        return loss, real_logits, fake_logits, terms

    def train_step(
        self, batch: Batch, optimizers: list[torch.optim.Optimizer], step: int
    ) -> dict[str, torch.Tensor]:
        """One discriminator update, then a generator update on every ``n_critic``-th step.

        The generator steps when ``step % n_critic == 0``, so each critic update sees a fresh
        batch of real data (Gulrajani et al. 2017, Algorithm 1). Returns the generator's loss as
        ``"loss"`` (on the fakes the discriminator just judged, when ``G`` does not step), the
        discriminator's as ``"loss_d"``, the mean logits and any penalty.
        """
        opt_g, opt_d = optimizers
        real = batch.x[: len(batch.x) - len(batch.x) % self.config.pack]
        n = len(real)

        generator_steps = step % self.config.n_critic == 0
        # on a generator step the same fakes serve both players (one pass of G, as in DCGAN's
        # training loop): D learns from them detached, then G from D's updated verdict on them
        with torch.set_grad_enabled(generator_steps):
            fake = self.model(num_samples=n)
        loss_d, real_logits, fake_logits, terms = self._discriminator_loss(
            real, fake.detach(), step
        )
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        if generator_steps:
            loss_g = self.game.generator(self._judge(fake))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            if self.generator_ema is not None:
                self.generator_ema.update(self.generator, step // self.config.n_critic)
        else:
            loss_g = self.game.generator(fake_logits)

        logs = {
            "loss": loss_g,
            "loss_d": loss_d,
            "d_real": real_logits.mean(),
            "d_fake": fake_logits.mean(),
            **terms,
        }
        return {k: v.detach() for k, v in logs.items()}

    def loss(self, batch: Batch) -> torch.Tensor:
        """The generator's loss against the current discriminator on ``len(batch.x)`` fakes."""
        n = len(batch.x) - len(batch.x) % self.config.pack
        return self.game.generator(self._judge(self.model(num_samples=n)))

    # -- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self, n: int, y: Labels = None, sampler: str | None = None, **options: Any
    ) -> torch.Tensor:
        """``n`` draws ``G(z)`` in model space, through the EMA generator when there is one.

        Draws whose latent stretch exceeds ``jacobian_truncation`` times the median are
        rejected and redrawn. ``options`` (``steps`` among them) are accepted for the common
        interface; one pass of ``G`` needs none.
        """
        self.choose_sampler(sampler)
        averaged = self.generator_ema is not None
        c = self.config.jacobian_truncation
        if c is None or n == 0:
            return self.model(num_samples=n, averaged=averaged)
        probes, size = self.stretch_estimate.get(
            self.data_info.kind, self.stretch_estimate["vector"]
        )
        # the threshold from a fixed set of latent points: deterministic for given weights
        seeded = torch.Generator().manual_seed(0)
        reference = torch.randn(size, self.config.latent_dim, generator=seeded).to(self.device)
        threshold = c * self.latent_stretch(reference, averaged, probes, seeded).median()
        kept, count = [], 0
        while count < n:  # rejection: at least half the draws pass (c >= 1 times the median)
            want = n - count
            trace = pyro.poutine.trace(self.model).get_trace(
                num_samples=2 * want + 16, averaged=averaged
            )
            z, x = trace.nodes["z"]["value"], trace.nodes["x"]["value"]
            x = x[self.latent_stretch(z, averaged, probes) <= threshold][:want]
            kept.append(x)
            count += len(x)
        return torch.cat(kept)

    # how the truncation measures the stretch, per kind of data: (random directions, or None
    # for every exact one; latent points whose median sets the threshold). Images take 8
    # random directions (64 exact ones would cost 64 passes of G per draw) and 1,024 points
    stretch_estimate: ClassVar[dict[str, tuple[int | None, int]]] = {
        "vector": (None, 4096),
        "image": (8, 1024),
    }

    @torch.no_grad()
    def latent_stretch(
        self,
        z: torch.Tensor,
        averaged: bool = True,
        probes: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``||dG/dz||_F`` per latent point ``z`` (N, latent_dim), with ``G`` in model units.

        Exact with ``probes=None`` (one forward-mode derivative per latent dimension,
        ``torch.func.jvp``); otherwise Hutchinson's unbiased estimate of the square,
        ``||J||_F^2 = E_v ||J v||^2`` for ``v ~ N(0, I)``, averaged over ``probes``
        directions (Hutchinson 1990). ``averaged`` reads the EMA generator when there is one.
        """
        net = self.generator_ema.module if averaged and self.generator_ema else self.generator

        def generator_fn(latent: torch.Tensor) -> torch.Tensor:
            return net(latent).flatten(1) / self.network_scale

        if probes is None:
            # the unit directions e_i, each broadcast over the batch (views, not copies)
            tangents = torch.eye(z.shape[1]).to(z)[:, None].expand(-1, len(z), -1)
        else:
            tangents = [
                torch.randn(z.shape, generator=generator).to(z) / probes**0.5 for _ in range(probes)
            ]
        total = z.new_zeros(len(z))
        for tangent in tangents:
            _, column = torch.func.jvp(generator_fn, (z,), (tangent,))
            total += column.square().sum(1)
        return total.sqrt()
