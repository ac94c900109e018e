"""The model contract every probgen family honours.

A model is a :class:`GenerativeModel`: a :class:`pyro.nn.PyroModule` whose Pyro program(s)
``model`` / ``guide`` users read and extend, plus a small uniform surface the fit loop, the
run directory and the command line drive without knowing the family:

- ``loss(batch)``: the training objective for one batch (for model/guide pairs, Pyro's
  ``differentiable_loss``, so a plain torch optimiser and DDP train it);
- ``train_step(batch, optimizers, step)``: one update; families whose step is not one loss
  (the GAN) override it;
- ``generate(n)``: draws in model space; ``sample(n)`` maps them back to the data's units;
- ``log_prob``, ``elbo``, ``encode``, ``decode`` where the family has them.

Model space is what the network sees: standardised vectors, rescaled (and possibly dequantised)
image intensities. The fitted :class:`~probgen.data.preprocess.Preprocessor` that maps data units
to model space is attached as ``model.preprocessor`` and stored with the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import torch
from pyro.nn import PyroModule

from probgen.config import check_choice, check_choices
from probgen.data.preprocess import Identity, Preprocessor

if TYPE_CHECKING:
    from pyro.infer.mcmc.mcmc_kernel import MCMCKernel

Labels = torch.Tensor | None
"""Optional integer class labels, one per example (``None``: unlabelled, or any class)."""

# the optional methods: a family that overrides one offers the capability of the same name
OPTIONAL_METHODS = ("log_prob", "elbo", "log_marginal", "encode", "decode", "guide", "mcmc_kernel")


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about its (preprocessed) data to build its networks.

    Attributes:
        event_shape: shape of one example in model space, e.g. ``(2,)`` or ``(1, 8, 8)``.
        kind: ``"vector"`` or ``"image"``.
        num_classes: number of label classes, or ``None`` for unlabelled data.
        value_range: the known range of model-space values (images), or ``None`` (vectors).
        levels: number of discrete intensity levels in data units (images), or ``None``.
    """

    event_shape: tuple[int, ...]
    kind: str = "vector"
    num_classes: int | None = None
    value_range: tuple[float, float] | None = None
    levels: int | None = None

    @property
    def dim(self) -> int:
        """Number of scalar dimensions of one example."""
        n = 1
        for s in self.event_shape:
            n *= s
        return n

    # the smallest image side from which the families take their image-sized networks and
    # samplers (28x28 digits are large; 8x8 digits are not): convolutions pay off, and a
    # per-pixel autoregressive inverse or 1,000 ancestral steps cost too much on a CPU
    large_image_side = 16

    @property
    def large_image(self) -> bool:
        """Images (C, H, W) with both sides at least :attr:`large_image_side`."""
        shape = self.event_shape
        return self.kind == "image" and len(shape) == 3 and min(shape[1:]) >= self.large_image_side

    def to_dict(self) -> dict:
        return {
            "event_shape": list(self.event_shape),
            "kind": self.kind,
            "num_classes": self.num_classes,
            "value_range": list(self.value_range) if self.value_range else None,
            "levels": self.levels,
        }

    @classmethod
    def from_dict(cls, d: dict) -> DataInfo:
        return cls(
            event_shape=tuple(d["event_shape"]),
            kind=d["kind"],
            num_classes=d.get("num_classes"),
            value_range=tuple(d["value_range"]) if d.get("value_range") else None,
            levels=d.get("levels"),
        )


class Batch(NamedTuple):
    """One minibatch in model space: data ``x``, optional integer labels ``y``, and the rows'
    positions ``index`` in the training set (``None`` outside training)."""

    x: torch.Tensor
    y: torch.Tensor | None = None
    index: torch.Tensor | None = None


class GenerativeModel(PyroModule):
    """Base class of every probgen model; see the module docstring for the contract.

    Subclasses set ``Config`` (a dataclass holding every hyperparameter) and implement
    ``model``, ``loss`` and ``generate``; the rest is optional.

    Class attributes:
        Config: the hyperparameter dataclass.
        spec: where a user's class was loaded from (``FILE.py:Name``); ``None`` for built-ins.
        default_steps: training steps when the user gives neither ``--steps`` nor ``--epochs``.
        bf16_default_steps: the same budget for steps under bf16 autocast, for a model that
            trains in bf16 where the hardware makes that faster (``precision="auto"``,
            :mod:`probgen.precision`); ``None``: the model trains in fp32 unless told otherwise.
        samplers: names accepted by ``generate(..., sampler=NAME)``; the first is the default.
        image_range: the model-space range images are rescaled to.
        dequantize: whether image intensities get uniform dequantisation noise in training.
        discrete_likelihood: whether ``log_prob``/``elbo`` are probabilities of the data's
            discrete values (no change of units applies) rather than model-space densities.
    """

    Config: ClassVar[type]
    spec: ClassVar[str | None] = None
    default_steps: ClassVar[int] = 2000
    bf16_default_steps: int | None = None
    samplers: ClassVar[tuple[str, ...]] = ("ancestral",)
    image_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    dequantize: ClassVar[bool] = False
    discrete_likelihood: bool = False

    def __init__(self, config: Any, data_info: DataInfo) -> None:
        super().__init__()
        check_choices(config)
        self.config = config
        self.data_info = data_info
        self.preprocessor: Preprocessor = Identity()

    def default_steps_for(self, precision: str) -> int:
        """The default training budget for steps in ``precision`` (``fp32`` or ``bf16``)."""
        if precision == "bf16" and self.bf16_default_steps is not None:
            return self.bf16_default_steps
        return self.default_steps

    # -- the Pyro program(s) ---------------------------------------------------------------
    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> Any:
        """The generative Pyro program; ``model()`` with no data draws from the prior."""
        raise NotImplementedError

    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """The variational Pyro program; models without latents keep this empty guide."""

    @classmethod
    def wants_preprocessing(cls, config: Any) -> bool:
        """Whether data reach the model through probgen's fitted preprocessing (standardised
        vectors, rescaled images); a user's Pyro program sees the data's own units instead."""
        return True

    # -- the data hook ---------------------------------------------------------------------
    def setup(self, batch: Batch, num_train: int) -> None:
        """Called once before the first step with the first training batch (model space) and
        the training set's size: create what depends on the data (a program's parameters and
        guide). Everything it creates must be rebuilt by :meth:`before_load` on reload."""

    def ensure_setup(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """:meth:`setup` on ``x`` (taken as the whole training set) if the fit loop has not
        run it, for a model built and used directly; nothing for families without setup."""

    def before_load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Rebuild, from a run's stored tensors, the structure :meth:`setup` created, so the
        stored state fits it (families with such state call it from ``load_state_dict``)."""

    # -- training --------------------------------------------------------------------------
    def loss(self, batch: Batch) -> torch.Tensor:
        """The scalar training objective for one batch (lower is better)."""
        raise NotImplementedError

    def configure_optimizers(self, lr: float) -> list[torch.optim.Optimizer]:
        """The optimisers the fit loop steps; one Adam over every parameter by default."""
        return [torch.optim.Adam(self.parameters(), lr=lr)]

    def train_step(
        self, batch: Batch, optimizers: list[torch.optim.Optimizer], step: int
    ) -> dict[str, torch.Tensor]:
        """One update; returns detached scalars to log, ``"loss"`` among them."""
        (optimizer,) = optimizers
        optimizer.zero_grad(set_to_none=True)
        loss = self.distributed_loss(batch)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}

    def use_distributed_loss(self, module: Callable[..., torch.Tensor]) -> None:
        """Compute ``loss`` through ``module`` (a DDP wrapper) so gradients are all-reduced.

        Kept out of the module tree (and so out of ``state_dict``) on purpose.
        """
        self.__dict__["_distributed_loss"] = module

    def distributed_loss(self, batch: Batch) -> torch.Tensor:
        """``loss(batch)``, through DDP when training across processes."""
        module = self.__dict__.get("_distributed_loss")
        return self.loss(batch) if module is None else module(batch.x, batch.y, batch.index)

    def on_fit_end(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Called once after training with the whole training set in model space.

        Families that fit something to the trained model (the VAE's aggregate-posterior
        mixture) do it here; what they fit must live in buffers so it is saved with the run.
        """

    # -- using a fitted model ----------------------------------------------------------------
    def generate(
        self, n: int, y: Labels = None, sampler: str | None = None, **options: Any
    ) -> torch.Tensor:
        """Draw ``n`` examples in model space, shape ``(n, *event_shape)``, by ``sampler``
        (one of :attr:`samplers`; ``None`` is the first).

        ``options`` are the family's sampler settings; ``steps`` (the sampler's number of steps,
        where it has one) is common to every family, and a family without steps ignores it.
        """
        raise NotImplementedError

    @torch.no_grad()
    def sample(
        self, n: int, y: Labels = None, sampler: str | None = None, **options: Any
    ) -> torch.Tensor:
        """Draw ``n`` examples in the data's own units and shape (:meth:`generate`, mapped
        back by :meth:`to_data_units`)."""
        return self.to_data_units(self.generate(n, y=y, sampler=sampler, **options), **options)

    def to_data_units(self, values: torch.Tensor, **options: Any) -> torch.Tensor:
        """Model-space draws of :meth:`generate` (called with ``options``) in the data's units."""
        return self.preprocessor.inverse(values)

    def choose_sampler(self, sampler: str | None) -> str:
        """``sampler``, or the default (the first of :attr:`samplers`) for ``None``; an unknown
        name is a :class:`~probgen.errors.ConfigError` listing the valid ones."""
        sampler = sampler or self.samplers[0]
        check_choice("sampler", sampler, self.samplers)
        return sampler

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log-density of model-space ``x``, one value per example (where exact)."""
        raise NotImplementedError

    def elbo(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """A lower bound on log p(x) per example, in nats, model space (where one exists)."""
        raise NotImplementedError

    def log_marginal(
        self, x: torch.Tensor, y: torch.Tensor | None = None, num_particles: int = 1000
    ) -> torch.Tensor:
        """Importance-sampled log p(x) per example, model space (where a guide exists)."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Latent codes of model-space ``x`` (where a latent space exists)."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Model-space data from latent codes (where a latent space exists)."""
        raise NotImplementedError

    def fits_by_mcmc(self) -> bool:
        """Whether fitting draws MCMC chains (``run_mcmc``) instead of taking optimiser steps."""
        return False

    def run_mcmc(self, x: torch.Tensor, y: torch.Tensor | None, quiet: bool = False) -> dict:
        """Draw the chains that fit the model to all of ``x``; returns JSON-ready diagnostics."""
        raise NotImplementedError

    def mcmc_kernel(self, name: str | None = None, **options: Any) -> MCMCKernel:
        """A Pyro ``MCMCKernel`` over the model's own density (the EBM, score models)."""
        raise NotImplementedError

    def mcmc_initial_params(self, num_chains: int) -> dict[str, torch.Tensor]:
        """Starting points of ``num_chains`` chains for :meth:`mcmc_kernel`."""
        raise NotImplementedError

    def takes_labels(self) -> bool:
        """Whether the model is class-conditional: it reads labels ``y`` (and ``generate``
        draws the classes it is given). Class-conditional families override this."""
        return False

    def capabilities(self) -> frozenset[str]:
        """The one capability query: what the CLI, evaluation and inspection may ask of it.

        By default: ``sample``, each of :data:`OPTIONAL_METHODS` the family overrides, and
        ``labels`` for a class-conditional model (:meth:`takes_labels`) of labelled data.
        Families whose capabilities depend on the data or the program override this.
        """
        family = type(self).__mro__
        own = family[: family.index(GenerativeModel)]  # the classes below the contract
        caps = {"sample"} | {m for m in OPTIONAL_METHODS if any(m in vars(c) for c in own)}
        if self.data_info.num_classes and self.takes_labels():
            caps.add("labels")
        return frozenset(caps)

    def supports(self, capability: str) -> bool:
        """Whether ``capability`` (e.g. ``"log_prob"``) is among :meth:`capabilities`."""
        return capability in self.capabilities()

    def log_abs_det_to_data(self) -> float:
        """What to add to a model-space log-likelihood per example to get it in data units.

        ``log p_v(v) = log p_x(x) + log|dx/dv|`` for a model-space density; zero when the
        likelihood already scores the data's own discrete values (``discrete_likelihood``).
        """
        if self.discrete_likelihood:
            return 0.0
        return self.preprocessor.log_abs_det_jacobian(self.data_info.dim)

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")
