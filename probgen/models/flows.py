"""Normalizing flows: exact-likelihood density models as one Pyro ``TransformedDistribution``.

A flow is a bijection ``z = f(x)`` from data (model space) to a standard normal base; this code
uses the density-direction convention

    log p_x(x) = log N(f(x); 0, I) + log|det df/dx|,

(the outline's ``x = g(z)`` form is the same identity with ``g = f^{-1}`` and
``log|det dg/dz| = -log|det df/dx|``). The Pyro program is one site,
``pyro.sample("x", FlowDistribution(N(0, I), f), obs=x)``, so maximum likelihood is SVI with an
empty guide; :meth:`Flow.loss` computes that objective directly as ``-mean log p(x)``.

Families (``Config.flow``):

- ``realnvp``: affine coupling layers (Dinh et al. 2017);
- ``maf``: affine masked autoregressive layers (Papamakarios et al. 2017);
- ``nsf``: rational-quadratic spline, autoregressive (Durkan et al. 2019, RQ-NSF (AR));
- ``nsf-coupling``: rational-quadratic spline coupling (Durkan et al. 2019, RQ-NSF (C));
- ``glow``: for images, multi-scale (Dinh et al. 2017, section 3.6): squeeze, steps of
  actnorm, invertible 1x1 convolution and affine coupling with a convolutional conditioner
  (Kingma & Dhariwal 2018), half the channels factored out, repeated per scale, and dense
  affine couplings over the last scale's coordinates (as NICE's, Dinh et al. 2015, over the
  whole image) to relate its distant positions;
- ``auto`` (the default): ``glow`` for images of 16x16 and up with even sides, ``nsf``
  otherwise (8x8 digits included, where it is the better density).

``temperature = T < 1`` samples ``z ~ N(0, T^2 I)`` (Kingma & Dhariwal 2018, section 5), the
flow's analogue of a GAN's truncation; the default ``T = 1`` draws from the fitted density.

Vector flows take images flattened. Images (known ``value_range``) first pass through a logit
layer, part of ``f`` and of its log-determinant, so densities stay exact in model space.

References: Papamakarios et al. 2021, "Normalizing Flows for Probabilistic Modeling and
Inference"; Rezende & Mohamed 2015, "Variational Inference with Normalizing Flows".
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

import pyro
import pyro.distributions as dist
import torch

from probgen.config import choice
from probgen.errors import ConfigError
from probgen.flows.autoregressive import MaskedAutoregressive
from probgen.flows.core import Bijection, Compose, Flatten, FlowDistribution
from probgen.flows.coupling import Coupling
from probgen.flows.elementwise import Affine, RationalQuadraticSpline
from probgen.flows.linear import ActNorm, BatchNorm, LULinear, Permutation
from probgen.flows.logit import Logit
from probgen.flows.multiscale import multiscale_flow, possible_scales
from probgen.models.base import Batch, DataInfo, GenerativeModel, Labels

FLOWS = ("auto", "realnvp", "maf", "nsf", "nsf-coupling", "glow")
MIXINGS = ("reverse", "random", "lu")
NORMS = ("none", "actnorm", "batchnorm")


@dataclass
class FlowConfig:
    """Hyperparameters of :class:`Flow`.

    Attributes:
        flow: one of ``auto`` (``glow`` for images of 16x16 and up, else ``nsf``),
            ``realnvp``, ``maf``, ``nsf``, ``nsf-coupling``, ``glow``.
        transforms: number of coupling / autoregressive layers (Glow: steps per scale).
        hidden: conditioner hidden widths (Glow: a 3x3 convolution to ``hidden[0]`` channels,
            then 1x1 convolutions to the others).
        bins: spline bins ``K`` (``nsf``, ``nsf-coupling``).
        tail_bound: splines act on ``[-B, B]`` and are the identity outside; ``B = 4`` spends
            the bins where standardised data lies (benchmarks/results/flows.md compares 3-5).
        mixing: between layers, ``reverse`` or ``random`` permutation, or ``lu`` (a learned
            LU-factored linear map after the reversal). Glow always uses 1x1 convolutions.
        norm: ``none``, ``actnorm`` or ``batchnorm`` before each layer (Glow: always actnorm).
        activation: conditioner nonlinearity (a name from :mod:`probgen.nn.mlp`).
        logit_alpha: margin of the logit layer for bounded (image) data.
        scales: Glow's levels; ``None``: as many as the sides halve evenly, at most 3.
        temperature: the base's scale for the ``tempered`` sampler, ``z ~ N(0, T^2 I)``; at the
            default 1 the one sampler is ``exact``. On 28x28 digits after 2,500 steps (no
            dense top) lower temperatures scored worse (FID 1,287 at 1, 2,048 at 0.75, 3,575
            at 0.5).
        top_transforms: Glow only: affine coupling layers with MLP conditioners of widths
            ``top_hidden`` (and actnorm before each) on the last level's coordinates
            flattened; 0 for none. Convolutions relate distant pixels only through depth: on
            28x28 digits after 1,000 steps four dense layers took FID from 1,555 to 450 and
            the classifier's confidence from 0.69 to 0.80; a step takes 0.28 s on 2 CPU
            cores against 0.20 s without it.
    """

    flow: str = choice("auto", FLOWS)
    transforms: int = 4
    hidden: tuple[int, ...] = (64, 64)
    bins: int = 8
    tail_bound: float = 4.0
    mixing: str = choice("reverse", MIXINGS)
    norm: str = choice("none", NORMS)
    activation: str = "relu"
    logit_alpha: float = 0.05
    scales: int | None = None
    temperature: float = 1.0
    top_transforms: int = 4
    top_hidden: tuple[int, ...] = (512, 512)


def _mixing(kind: str, features: int) -> Bijection:
    if kind == "reverse":
        return Permutation.reverse(features)
    if kind == "random":
        return Permutation.random(features)
    return LULinear(features, perm=torch.arange(features - 1, -1, -1))


def _norm(kind: str, features: int) -> list[Bijection]:
    return {"none": [], "actnorm": [ActNorm(features)], "batchnorm": [BatchNorm(features)]}[kind]


def vector_flow(config: FlowConfig, features: int) -> Compose:
    """The layers of a ``realnvp`` / ``maf`` / ``nsf`` / ``nsf-coupling`` flow on ``R^features``."""
    if config.flow in ("nsf", "nsf-coupling"):
        elementwise = RationalQuadraticSpline(config.bins, config.tail_bound)
    else:
        elementwise = Affine()
    coupling = config.flow in ("realnvp", "nsf-coupling")
    if coupling and features < 2:
        raise ConfigError(f"flow={config.flow} needs at least 2 dimensions; use maf or nsf")
    layer = Coupling if coupling else MaskedAutoregressive
    steps: list[Bijection] = []
    for i in range(config.transforms):
        if i > 0 and features > 1:
            steps.append(_mixing(config.mixing, features))
        steps += _norm(config.norm, features)
        steps.append(layer(features, elementwise, config.hidden, config.activation))
    return Compose(*steps)


def glow_flow(config: FlowConfig, event_shape: tuple[int, ...]) -> Bijection:
    """A multi-scale Glow (:func:`~probgen.flows.multiscale.multiscale_flow`) for images."""
    channels, height, width = event_shape
    if possible_scales(height, width, 1) == 0:
        raise ConfigError(f"flow=glow needs even image height and width, got {height}x{width}")
    scales = possible_scales(height, width) if config.scales is None else config.scales
    if scales < 1 or possible_scales(height, width, scales) < scales:
        most = possible_scales(height, width, max(scales, 3))
        raise ConfigError(f"scales={scales}: {height}x{width} images halve {most} times at most")
    top = None
    if config.top_transforms > 0:
        dense = dataclasses.replace(
            config,
            flow="realnvp",
            transforms=config.top_transforms,
            hidden=config.top_hidden,
            norm="actnorm",
        )
        top = functools.partial(vector_flow, dense)
    return multiscale_flow(tuple(event_shape), scales, config.transforms, config.hidden, top)


class Flow(GenerativeModel):
    """A normalizing flow ``z = f(x)``, ``z ~ N(0, I)``, fitted by maximum likelihood.

    ``log_prob`` is exact; ``generate`` draws ``f^{-1}(z)``; ``encode`` is ``f`` (to base space,
    shape ``(N, D)``) and ``decode`` is ``f^{-1}``. See the module docstring for the families.
    """

    Config = FlowConfig
    default_steps = 2000  # vector flows; Glow gets default_glow_steps
    # 28x28 digits, 2 CPU cores, batch 128: 0.28 s a step with the dense top (3,000 steps in
    # 838 s: FID 232.0, confidence 0.851, 1.805 test bits/dim)
    default_glow_steps = 3000
    samplers = ("exact",)
    image_range = (0.0, 1.0)
    dequantize = True

    def __init__(self, config: FlowConfig, data_info: DataInfo) -> None:
        event_shape = tuple(data_info.event_shape)
        image = len(event_shape) == 3
        if config.flow == "auto":
            # from 16x16 up an autoregressive inverse over every pixel is too slow to sample
            large = data_info.large_image and possible_scales(*event_shape[1:])
            config = dataclasses.replace(config, flow="glow" if large else "nsf")
        super().__init__(config, data_info)
        if config.transforms < 1 or not config.hidden:
            raise ConfigError("a flow needs transforms >= 1 and at least one hidden width")
        if config.top_transforms < 0:
            raise ConfigError(f"top_transforms must be 0 or more, got {config.top_transforms}")
        if not config.temperature > 0:
            raise ConfigError(f"temperature must be positive, got {config.temperature}")
        # the default sampler draws at the configured temperature; "exact" is always T = 1
        self.samplers = ("tempered", "exact") if config.temperature != 1 else ("exact",)
        if config.flow == "glow":
            self.default_steps = self.default_glow_steps
        dim = data_info.dim
        steps: list[Bijection] = []
        if data_info.value_range is not None:
            steps.append(Logit(*data_info.value_range, alpha=config.logit_alpha))
        if config.flow == "glow":
            if not image:
                raise ConfigError("flow=glow needs images (C, H, W); use nsf or maf for vectors")
            steps.append(glow_flow(config, event_shape))
        else:
            steps += [Flatten(event_shape), vector_flow(config, dim)]
        self.bijection = Compose(*steps)
        self.register_buffer("base_loc", torch.zeros(dim))
        self.register_buffer("base_scale", torch.ones(dim))

    def distribution(self) -> FlowDistribution:
        """``p_x`` as a Pyro distribution: base ``N(0, I)`` pushed through ``f^{-1}``."""
        base = dist.Normal(self.base_loc, self.base_scale).to_event(1)
        return FlowDistribution(base, self.bijection, tuple(self.data_info.event_shape))

    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """``x ~ p_x`` for each example: one ``pyro.sample("x", ...)`` site in a plate."""
        with pyro.plate("data", 1 if x is None else x.shape[0]):
            return pyro.sample("x", self.distribution(), obs=x)

    def loss(self, batch: Batch) -> torch.Tensor:
        """Negative mean log-likelihood, ``-1/N sum_n log p_x(x_n)`` (nats per example)."""
        return -self.log_prob(batch.x).mean()

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact ``log p_x(x)`` per example, in nats, model space."""
        return self.distribution().log_prob(x)

    def generate(
        self, n: int, y: Labels = None, sampler: str | None = None, **options: Any
    ) -> torch.Tensor:
        """``n`` draws ``f^{-1}(z)``: ``z ~ N(0, I)`` (``exact``) or ``N(0, T^2 I)``
        (``tempered``, ``T = config.temperature``); a flow has no sampler ``steps``."""
        sampler = self.choose_sampler(sampler)
        options.pop("steps", None)
        if options:
            raise ConfigError(f"flow sampling takes no options, got {', '.join(options)}")
        if sampler == "exact":
            return self.distribution().rsample((n,))
        z = self.config.temperature * torch.randn_like(self.base_loc.expand(n, -1))
        return self.bijection.inverse(self.base_loc + self.base_scale * z)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Base-space codes ``z = f(x)``, shape ``(N, D)``."""
        return self.bijection(x)[0]

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Model-space data ``x = f^{-1}(z)``, shape ``(N, *event_shape)``."""
        return self.bijection.inverse(z)
