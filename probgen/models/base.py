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

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from pyro.nn import PyroModule

from probgen.data.preprocess import Identity, Preprocessor


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
    """One minibatch in model space: data ``x`` and optional integer labels ``y``."""

    x: torch.Tensor
    y: torch.Tensor | None = None


class GenerativeModel(PyroModule):
    """Base class of every probgen model; see the module docstring for the contract.

    Subclasses set ``Config`` (a dataclass holding every hyperparameter) and implement
    ``model``, ``loss`` and ``generate``; the rest is optional.

    Class attributes:
        Config: the hyperparameter dataclass.
        default_steps: training steps when the user gives neither ``--steps`` nor ``--epochs``.
        samplers: names accepted by ``generate(..., sampler=NAME)``; the first is the default.
        image_range: the model-space range images are rescaled to.
        dequantize: whether image intensities get uniform dequantisation noise in training.
        discrete_likelihood: whether ``log_prob``/``elbo`` are probabilities of the data's
            discrete values (no change of units applies) rather than model-space densities.
    """

    Config: ClassVar[type]
    default_steps: ClassVar[int] = 2000
    samplers: ClassVar[tuple[str, ...]] = ("ancestral",)
    image_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    dequantize: ClassVar[bool] = False
    discrete_likelihood: bool = False

    def __init__(self, config, data_info: DataInfo):
        super().__init__()
        self.config = config
        self.data_info = data_info
        self.preprocessor: Preprocessor = Identity()

    # -- the Pyro program(s) ---------------------------------------------------------------
    def model(self, x=None, y=None):
        """The generative Pyro program; ``model()`` with no data draws from the prior."""
        raise NotImplementedError

    def guide(self, x, y=None):
        """The variational Pyro program; models without latents keep this empty guide."""

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

    def use_distributed_loss(self, module) -> None:
        """Compute ``loss`` through ``module`` (a DDP wrapper) so gradients are all-reduced.

        Kept out of the module tree (and so out of ``state_dict``) on purpose.
        """
        self.__dict__["_distributed_loss"] = module

    def distributed_loss(self, batch: Batch) -> torch.Tensor:
        """``loss(batch)``, through DDP when training across processes."""
        module = self.__dict__.get("_distributed_loss")
        return self.loss(batch) if module is None else module(batch.x, batch.y)

    def on_fit_end(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Called once after training with the whole training set in model space.

        Families that fit something to the trained model (the VAE's aggregate-posterior
        mixture) do it here; what they fit must live in buffers so it is saved with the run.
        """

    # -- using a fitted model ----------------------------------------------------------------
    def generate(self, n: int, y=None, sampler: str | None = None, **options) -> torch.Tensor:
        """Draw ``n`` examples in model space, shape ``(n, *event_shape)``."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, y=None, sampler: str | None = None, **options) -> torch.Tensor:
        """Draw ``n`` examples in the data's own units and shape."""
        return self.preprocessor.inverse(self.generate(n, y=y, sampler=sampler, **options))

    def log_prob(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """Exact log-density of model-space ``x``, one value per example (where exact)."""
        raise NotImplementedError

    def elbo(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """A lower bound on log p(x) per example, in nats, model space (where one exists)."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """Latent codes of model-space ``x`` (where a latent space exists)."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """Model-space data from latent codes (where a latent space exists)."""
        raise NotImplementedError

    def supports(self, method: str) -> bool:
        """Whether this model offers ``method`` (e.g. ``"log_prob"``).

        By default: whether the family overrides it. A family whose capability depends on the
        data (the EBM's exact likelihood exists only in 2-D) overrides this.
        """
        return getattr(type(self), method) is not getattr(GenerativeModel, method)

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
