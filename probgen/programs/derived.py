"""What probgen derives from a model's Pyro programs: the contract's methods, for any
``model``/``guide`` pair.

:class:`ProgramModel` is a :class:`~probgen.models.base.GenerativeModel` whose ``model`` and
``guide`` methods are Pyro programs of ``(x, y=None, batch_index=None)``. From one trace of them
on the first batch (:meth:`ProgramModel.setup`, the contract's data hook) it derives

- the objective: ``Trace_ELBO``, or ``TraceEnum_ELBO`` when the model enumerates, any Pyro ELBO
  by name, with N/B scaling of the data plate for mini-batches
  (:mod:`probgen.programs.objectives`);
- ``pyro.param`` parameters, served from the module (:mod:`probgen.programs.params`);
- sampling by ancestral simulation with global latents from the guide or MCMC draws
  (:mod:`probgen.programs.predictive`), held-out ELBO, importance-sampled and exact log p(x)
  (:mod:`probgen.programs.scoring`), ``encode``/``decode`` where the guide has a local latent.

The built-in VAE is such a model (its programs are methods); a user's program is a
:class:`~probgen.programs.model.PyroProgram`, which adds AutoGuides and MCMC.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch
from pyro import poutine
from torch import nn

from probgen.errors import ConfigError
from probgen.models.base import Batch, DataInfo, GenerativeModel, Labels
from probgen.programs import predictive, scoring
from probgen.programs.entry import program_error
from probgen.programs.objectives import ScaleDataPlate, has_differentiable_loss, make_elbo
from probgen.programs.params import ProgramParameters, enforce_fresh_store, param_key, param_name
from probgen.programs.structure import ProgramStructure, analyse

if TYPE_CHECKING:
    from pyro.poutine import Trace

DRAWS_PREFIX = "draws."


class ProgramModel(GenerativeModel):
    """A model whose ``model``/``guide`` methods are Pyro programs; everything else derived.

    Subclasses write ``model(x, y=None, batch_index=None)`` and ``guide(...)``, and may override
    :meth:`objective` (which ELBO, how many particles) and :meth:`make_guide` (a guide built
    from the first trace, such as an AutoGuide).
    """

    samplers = ("predictive",)

    def __init__(self, config: Any, data_info: DataInfo) -> None:
        super().__init__(config, data_info)
        self.params = nn.ParameterDict()
        self.__dict__["constraint_of"] = {}
        self.__dict__["structure"] = None
        self.__dict__["_elbo"] = None
        self.register_buffer("num_train", torch.zeros((), dtype=torch.long))
        self.register_buffer("setup_x", torch.zeros(0, *data_info.event_shape))
        self.register_buffer("setup_y", torch.zeros(0, dtype=torch.long))
        self.register_buffer("setup_index", torch.zeros(0, dtype=torch.long))
        self.draws = nn.Module()

    # -- what subclasses choose ------------------------------------------------------------
    def objective(self) -> dict:
        """``make_elbo``'s options: ``name``, ``particles`` and ``renyi_alpha``."""
        return {"name": "auto", "particles": 1, "renyi_alpha": 0.5}

    def make_guide(self, structure: ProgramStructure) -> bool:
        """Build a guide for ``structure`` when the model brings none; whether one exists."""
        return True

    def has_guide(self) -> bool:
        """Whether the model has a guide to train (else the empty guide stands in)."""
        return True

    def posterior_draws(self) -> int:
        """How many distinct posterior draws of the global latents ``sample`` spreads over."""
        return 100

    def declares_batch_index(self) -> bool:
        """Whether the programs index per-datapoint state with ``batch_index``."""
        return False

    def source_file(self) -> str | None:
        """The file the programs come from, named in their errors."""
        return None

    def check_minibatches(self, s: ProgramStructure, minibatch: bool, num_train: int) -> None:
        """Raise ConfigError if this model's guide cannot train on mini-batches of ``s``."""

    @contextlib.contextmanager
    def pyro_context(self) -> Iterator[None]:
        """Pyro's param store empty and every ``pyro.param`` served by this module."""
        with (
            enforce_fresh_store(),
            ProgramParameters(
                self.params, self.constraint_of, self._owned_ids, lambda: self.device
            ),
        ):
            yield

    def param(self, name: str) -> torch.Tensor:
        """The constrained value of the program's ``pyro.param(name, ...)``."""
        from torch.distributions import transform_to

        key = param_key(name)
        if key not in self.params:
            known = ", ".join(sorted(self.constraint_of))
            raise KeyError(f"the program has no pyro.param {name!r}; it has {known}")
        return transform_to(self.constraint_of[name])(self.params[key]).detach()

    def _owned_ids(self) -> set[int]:
        """Tensors that modules of this model own (answered as they are by ``pyro.param``)."""
        return {id(t) for name, t in self.named_parameters() if not name.startswith("params.")}

    def _args(self, batch: Batch) -> tuple:
        return (batch.x, batch.y, batch.index)

    # -- the data hook ---------------------------------------------------------------------
    def setup(self, batch: Batch, num_train: int) -> None:
        """Trace the program on the first batch: create its parameters and guide, read its
        structure, choose the ELBO. Errors are one line naming the user's file and line."""
        self.num_train.fill_(num_train)
        self.setup_x = batch.x.detach().clone()
        self.setup_y = batch.y.detach().clone() if batch.y is not None else self.setup_y[:0]
        if batch.index is not None:
            self.setup_index = batch.index.detach().clone()
        args = self._args(batch)
        with self.pyro_context():
            model_trace = self._trace(self.model, args, "running the model on the first batch")
            has_guide = self.make_guide(analyse(model_trace, None, batch.x))
            guide_trace = (
                self._trace(self.guide, args, "running the guide on the first batch")
                if has_guide
                else None
            )
        structure = analyse(model_trace, guide_trace, batch.x)
        self._check(structure, rows=batch.x.shape[0], num_train=num_train)
        self.__dict__["structure"] = structure
        objective = self.objective()
        try:
            elbo = make_elbo(
                objective["name"],
                bool(structure.enumerated),
                objective["particles"],
                structure.max_plate_nesting,
                objective["renyi_alpha"],
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.__dict__["_elbo"] = elbo

    def ensure_setup(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        if self.structure is None:
            self.setup(Batch(x, y), num_train=x.shape[0])

    def _trace(self, fn: Callable[..., Any], args: tuple, doing: str) -> Trace:
        try:
            return poutine.trace(fn).get_trace(*args)
        except ConfigError:
            raise
        except Exception as exc:  # the user's program: one line where it raised
            raise ConfigError(program_error(exc, self.source_file(), doing)) from None

    def _check(self, s: ProgramStructure, rows: int, num_train: int) -> None:
        minibatch = rows < num_train and not s.subsampled
        if minibatch and s.data_plate is None:
            raise ConfigError(
                f"the data site {s.observed!r} is not inside a pyro.plate over the batch, so "
                "mini-batches cannot be scaled to the data set: wrap it in "
                "`with pyro.plate('data', len(x)):` or fit with --batch-size "
                f"{num_train}"
            )
        if self.fits_by_mcmc():
            return
        missing = [n for n in s.latents if n not in s.guide_latents]
        if missing:
            raise ConfigError(f"the guide does not sample the model's {', '.join(missing)}")
        self.check_minibatches(s, minibatch, num_train)

    def before_load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Rebuild what the stored tensors need: draws' buffers, then the setup trace."""
        for key, value in tensors.items():
            if key.startswith(DRAWS_PREFIX):
                self.draws.register_buffer(key[len(DRAWS_PREFIX) :], torch.zeros_like(value))
        index = tensors.get("setup_index")
        y = tensors.get("setup_y")
        batch = Batch(
            tensors["setup_x"],
            y if y is not None and len(y) else None,
            index if index is not None and len(index) else None,
        )
        self.setup(batch, int(tensors["num_train"]))

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """``before_load`` (the structure the stored tensors need), then torch's load."""
        if "setup_x" in state_dict and "num_train" in state_dict:
            self.before_load(state_dict)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # -- training --------------------------------------------------------------------------
    def _scaled(self, rows: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """Model and guide with the data plate counted N / rows times (see objectives)."""
        s, n = self.structure, int(self.num_train)
        if s.data_plate is None or s.subsampled or rows >= n:
            return self.model, self.guide
        scale = ScaleDataPlate(s.data_plate, n / rows)
        return scale(self.model), scale(self.guide)

    def loss(self, batch: Batch) -> torch.Tensor:
        """The negative ELBO of the whole training set per data point, from one batch (a
        value without gradient for ELBOs that only offer ``loss_and_grads``)."""
        self.ensure_setup(batch.x, batch.y)
        model, guide = self._scaled(batch.x.shape[0])
        with self.pyro_context():
            if has_differentiable_loss(self._elbo):
                loss = self._elbo.differentiable_loss(model, guide, *self._args(batch))
            else:  # its value only: training steps go through loss_and_grads
                loss = torch.tensor(self._elbo.loss(model, guide, *self._args(batch)))
        return loss / int(self.num_train)

    def train_step(
        self, batch: Batch, optimizers: list[torch.optim.Optimizer], step: int
    ) -> dict[str, torch.Tensor]:
        """One update; ELBOs without a differentiable loss (``tracegraph``, ``renyi``,
        ``iwae``) back-propagate through their own ``loss_and_grads``."""
        self.ensure_setup(batch.x, batch.y)
        if has_differentiable_loss(self._elbo):
            return super().train_step(batch, optimizers, step)
        (optimizer,) = optimizers
        optimizer.zero_grad(set_to_none=True)
        model, guide = self._scaled(batch.x.shape[0])
        with self.pyro_context():
            value = self._elbo.loss_and_grads(model, guide, *self._args(batch))
        optimizer.step()
        return {"loss": torch.tensor(value / int(self.num_train))}

    def chains(self) -> dict[str, torch.Tensor]:
        """The MCMC draws by site, ``(chains, draws, ...)`` (empty for SVI fits)."""
        return {param_name(k): v for k, v in self.draws.named_buffers() if k != "_diverging"}

    def divergences(self) -> torch.Tensor | None:
        """Which MCMC transitions diverged, ``(chains, draws)``, or ``None``."""
        return dict(self.draws.named_buffers()).get("_diverging")

    # -- capabilities ----------------------------------------------------------------------
    def capabilities(self) -> frozenset[str]:
        """What this program supports, read from its structure and how it was fitted."""
        s = self.structure
        if s is None:
            return frozenset({"sample"})
        caps = {"sample", "sites"}
        scorable = s.data_dim is not None and not self.declares_batch_index()
        local_enum_only = all(n not in s.global_latents for n in s.enumerated)
        if self.fits_by_mcmc():
            caps.add("chains")
            if scorable and not s.local_latents and not s.enumerated:
                caps.add("log_prob")
        elif scorable and local_enum_only:
            if s.guide_latents:
                caps.update({"elbo", "log_marginal", "guide"})
            elif not s.global_latents:
                caps.add("log_prob")
        if s.enumerated:
            caps.add("infer_discrete")
        if self.data_info.num_classes and self.takes_labels():
            caps.add("labels")
        if not self.fits_by_mcmc() and any(n in s.guide_latents for n in s.local_latents):
            caps.update({"encode", "decode"})
        return frozenset(caps)

    # -- using a fitted program --------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self, n: int, y: Labels = None, sampler: str | None = None, **options: Any
    ) -> torch.Tensor:
        """``n`` draws of the data site (or of ``options["site"]``): new data points, with
        global latents from the MCMC draws or the guide and local latents from the model."""
        self.ensure_setup(predictive.placeholder(self, n), y)
        return predictive.draw(self, n, y, options.get("site"))

    def to_data_units(
        self, values: torch.Tensor, site: str | None = None, **options: Any
    ) -> torch.Tensor:
        """Draws of the data site in the data's units; another ``site`` keeps its own units."""
        if site in (None, self.structure.observed):
            return self.preprocessor.inverse(values)
        return values

    @torch.no_grad()
    def elbo(
        self, x: torch.Tensor, y: torch.Tensor | None = None, num_particles: int = 1
    ) -> torch.Tensor:
        """The per-point ELBO of the data plate (see :mod:`probgen.programs.scoring`)."""
        return self.log_weights_per_point(x, y, num_particles).mean(0)

    @torch.no_grad()
    def log_marginal(
        self, x: torch.Tensor, y: torch.Tensor | None = None, num_particles: int = 1000
    ) -> torch.Tensor:
        """Importance-sampled log p(x) per point with the guide as proposal."""
        self.ensure_setup(x, y)
        with self.pyro_context():
            return scoring.log_marginal(
                self.model, self._scoring_guide(), self.structure, (x, y, None), num_particles
            )

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log p(x) per point: enumeration, or for MCMC runs the posterior predictive
        density log (1/S) sum_s p(x | theta_s) over the draws."""
        if self.fits_by_mcmc():
            return predictive.posterior_predictive_log_density(self, x, y)
        return self.log_weights_per_point(x, y, 1)[0]

    def log_weights_per_point(
        self, x: torch.Tensor, y: torch.Tensor | None, k: int
    ) -> torch.Tensor:
        """``log p(x_i, z_ik) - log q(z_ik | x_i)`` of the data plate, ``(k, n)``
        (:func:`probgen.programs.scoring.log_weights`)."""
        self.ensure_setup(x, y)
        with self.pyro_context():
            return scoring.particle_log_weights(
                self.model, self._scoring_guide(), self.structure, (x, y, None), k
            )

    def _scoring_guide(self) -> Callable | None:
        return self.guide if self.structure.guide_latents else None

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The guide's mean of the first local latent for each point of ``x``."""
        self.ensure_setup(x, y)
        return predictive.encode(self, x, y)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The mean of the data site given the local latent ``z``."""
        self.ensure_setup(predictive.placeholder(self, len(z)), y)
        return predictive.decode(self, z, y)
