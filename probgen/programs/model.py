"""A user's Pyro program as a probgen model: every capability derived from the program itself.

:func:`program_class` turns a resolved ``MODEL[,GUIDE]`` into a :class:`PyroProgram` subclass whose
``Config`` holds probgen's options (``elbo``, ``particles``, ``guide``, ``mcmc``, ...) and, for
class programs, the constructor's keywords. From one trace of the program on the first batch
(:meth:`PyroProgram.setup`, the contract's data hook) it derives:

- the parameters of ``pyro.param``, ``pyro.module`` and PyroModules, trained and saved
  (:mod:`probgen.programs.params`);
- the objective: ``Trace_ELBO``, or ``TraceEnum_ELBO`` when the model enumerates, N/B scaling of
  the data plate for mini-batches (:mod:`probgen.programs.objectives`);
- a guide: the user's, an AutoGuide when there is none and latents exist, or the empty guide;
- sampling by ancestral simulation with global latents from the guide or MCMC draws
  (:mod:`probgen.programs.predictive`), held-out ELBO, importance-sampled and exact log p(x)
  (:mod:`probgen.programs.scoring`), ``encode``/``decode`` where the guide has a local latent.

A program receives the data in the user's units (``--set preprocess=standardize`` opts in to
probgen's preprocessing), ``model(x)`` gets the mini-batch, and a program that declares the
keywords ``batch_index`` and ``data_size`` gets the rows' indices in the training set and N, for
``pyro.plate("data", size=data_size or len(x), subsample=batch_index)`` and per-datapoint guide
parameters (``None`` for both outside training).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from typing import ClassVar

import torch
from pyro import poutine
from torch import nn

from probgen.config import choice
from probgen.errors import ConfigError
from probgen.models.base import Batch, DataInfo, GenerativeModel
from probgen.programs import predictive, scoring
from probgen.programs.entry import ProgramEntry, constructor_options, program_error
from probgen.programs.guides import AUTOGUIDES, make_autoguide
from probgen.programs.mcmc import MCMC_KERNELS, chain_summary, make_kernel, run_chains
from probgen.programs.objectives import ELBOS, ScaleDataPlate, has_differentiable_loss, make_elbo
from probgen.programs.params import (
    ProgramParameters,
    enforce_fresh_store,
    modules_named_by,
    param_key,
)
from probgen.programs.structure import ProgramStructure, analyse

DRAWS_PREFIX = "draws."


@dataclasses.dataclass
class ProgramOptions:
    """probgen's options for a Pyro program (``--set key=value``)."""

    elbo: str = choice("auto", ELBOS)
    particles: int = 1
    renyi_alpha: float = 0.5
    guide: str = choice("auto_normal", AUTOGUIDES)
    preprocess: str = choice("none", ("none", "standardize"))
    mcmc: str = choice("none", MCMC_KERNELS)
    chains: int = 2
    num_samples: int = 500
    warmup: int = 500
    step_size: float = 0.1
    posterior_draws: int = 100

    def __post_init__(self):
        for name in ("particles", "chains", "num_samples", "posterior_draws"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0 or not self.step_size > 0:
            raise ValueError("warmup must be >= 0 and step_size > 0")


def _empty_guide(*args, **kwargs) -> None:
    """The guide of a program without latent sites to approximate."""


def _accepts(fn, name: str) -> bool:
    if isinstance(fn, nn.Module):
        fn = fn.forward
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


class PyroProgram(GenerativeModel):
    """A Pyro ``model`` (and optional ``guide``) fitted, sampled and scored by probgen.

    Subclasses made by :func:`program_class` set ``entry`` (where the program comes from) and
    ``Config``. See the module docstring for what is derived from the program.
    """

    Config: ClassVar[type] = ProgramOptions
    entry: ClassVar[ProgramEntry]
    default_steps = 2000
    samplers = ("predictive",)

    def __init__(self, config, data_info: DataInfo):
        super().__init__(config, data_info)
        names = constructor_options(self.entry.model) if self.entry.is_class else {}
        model_fn, guide_fn, owner = self.entry.build({k: getattr(config, k) for k in names})
        self.__dict__["_user_model"] = model_fn
        self.__dict__["_user_guide"] = guide_fn
        # a plain container: a PyroModule set directly on this (Pyro)module would have its site
        # names prefixed with the attribute's name
        self.user = nn.ModuleDict({"program": owner} if owner is not None else {})
        owned = {id(t) for t in _tensors(owner)}
        found = {}
        for fn in (model_fn, guide_fn):
            for name, module in modules_named_by(fn).items() if fn is not None else ():
                tensors = {id(t) for t in _tensors(module)}
                if module is not owner and not tensors & owned:
                    found[name] = module
                    owned |= tensors
        self.networks = nn.ModuleDict(found)
        self.params = nn.ParameterDict()
        self.__dict__["constraint_of"] = {}
        self.auto = nn.ModuleDict()  # the AutoGuide, if one is made (plain container, as above)
        self.__dict__["structure"] = None
        self.__dict__["_elbo"] = None
        self.register_buffer("num_train", torch.zeros((), dtype=torch.long))
        self.register_buffer("setup_x", torch.zeros(0, *data_info.event_shape))
        self.register_buffer("setup_y", torch.zeros(0, dtype=torch.long))
        self.register_buffer("setup_index", torch.zeros(0, dtype=torch.long))
        self.draws = nn.Module()

    @classmethod
    def wants_preprocessing(cls, config) -> bool:
        return config.preprocess == "standardize"

    # -- calling the program -------------------------------------------------------------------
    def _call(self, fn, x, y=None, batch_index=None):
        kwargs = {}
        if y is not None and _accepts(fn, "y"):
            kwargs["y"] = y
        if _accepts(fn, "batch_index"):
            kwargs["batch_index"] = batch_index
            if _accepts(fn, "data_size"):
                kwargs["data_size"] = int(self.num_train) if batch_index is not None else None
        return fn(x, **kwargs)

    def model(self, x=None, y=None, batch_index=None):
        """The user's model, called with the keywords it declares."""
        return self._call(self._user_model, x, y, batch_index)

    def guide(self, x=None, y=None, batch_index=None):
        """The user's guide, the AutoGuide, or the empty guide."""
        if self._user_guide is not None:
            return self._call(self._user_guide, x, y, batch_index)
        if self.autoguide is not None:
            return self.autoguide(x, y, batch_index)
        return None

    @contextlib.contextmanager
    def pyro_context(self):
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

    @property
    def autoguide(self) -> nn.Module | None:
        """The AutoGuide standing in for a missing guide, else ``None``."""
        return self.auto["guide"] if "guide" in self.auto else None

    @property
    def program(self) -> nn.Module | None:
        """The user's module whose methods are the program (class programs), else ``None``."""
        return self.user["program"] if "program" in self.user else None

    def _owned_ids(self) -> set[int]:
        modules = (self.user, self.networks, self.auto)
        return {id(t) for m in modules for t in m.parameters()}

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
            first = analyse(model_trace, None, batch.x)
            if self._user_guide is None and first.latents and self.autoguide is None:
                self.auto["guide"] = make_autoguide(self.config.guide, self.model, first.enumerated)
            has_guide = self._user_guide is not None or self.autoguide is not None
            guide_trace = (
                self._trace(self.guide, args, "running the guide on the first batch")
                if has_guide
                else None
            )
        structure = analyse(model_trace, guide_trace, batch.x)
        self._check(structure, rows=batch.x.shape[0], num_train=num_train)
        self.__dict__["structure"] = structure
        try:
            elbo = make_elbo(
                self.config.elbo,
                bool(structure.enumerated),
                self.config.particles,
                structure.max_plate_nesting,
                self.config.renyi_alpha,
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.__dict__["_elbo"] = elbo

    def _trace(self, fn, args, doing: str):
        try:
            return poutine.trace(fn).get_trace(*args)
        except ConfigError:
            raise
        except Exception as exc:  # the user's program: one line where it raised
            raise ConfigError(program_error(exc, self.entry.source, doing)) from None

    def _check(self, s: ProgramStructure, rows: int, num_train: int) -> None:
        minibatch = rows < num_train and not s.subsampled
        if minibatch and s.data_plate is None:
            raise ConfigError(
                f"the data site {s.observed!r} is not inside a pyro.plate over the batch, so "
                "mini-batches cannot be scaled to the data set: wrap it in "
                "`with pyro.plate('data', len(x)):` or fit with --batch-size "
                f"{num_train}"
            )
        if self.config.mcmc != "none":
            return
        missing = [n for n in s.latents if n not in s.guide_latents]
        if missing:
            raise ConfigError(f"the guide does not sample the model's {', '.join(missing)}")
        if self.autoguide is not None and s.local_latents and minibatch:
            raise ConfigError(
                f"an AutoGuide cannot follow mini-batches of the local latent "
                f"{s.local_latents[0]!r}: give a guide (FILE.py:model,guide), fit with "
                f"--batch-size {num_train}, or declare batch_index/data_size (docs/programs.md)"
            )

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

    # -- training --------------------------------------------------------------------------
    def _scaled(self, rows: int):
        """Model and guide with the data plate counted N / rows times (see objectives)."""
        s, n = self.structure, int(self.num_train)
        if s.data_plate is None or s.subsampled or rows >= n:
            return self.model, self.guide
        scale = ScaleDataPlate(s.data_plate, n / rows)
        return scale(self.model), scale(self.guide)

    def loss(self, batch: Batch) -> torch.Tensor:
        """The negative ELBO of the whole training set per data point, from one batch."""
        model, guide = self._scaled(batch.x.shape[0])
        with self.pyro_context():
            loss = self._elbo.differentiable_loss(model, guide, *self._args(batch))
        return loss / int(self.num_train)

    def train_step(self, batch, optimizers, step):
        """One update; ELBOs without a differentiable loss (``tracegraph``, ``renyi``,
        ``iwae``) back-propagate through their own ``loss_and_grads``."""
        if has_differentiable_loss(self._elbo):
            return super().train_step(batch, optimizers, step)
        (optimizer,) = optimizers
        optimizer.zero_grad(set_to_none=True)
        model, guide = self._scaled(batch.x.shape[0])
        with self.pyro_context():
            value = self._elbo.loss_and_grads(model, guide, *self._args(batch))
        optimizer.step()
        return {"loss": torch.tensor(value / int(self.num_train))}

    # -- MCMC ------------------------------------------------------------------------------
    def fits_by_mcmc(self) -> bool:
        return self.config.mcmc != "none"

    def run_mcmc(self, x: torch.Tensor, y: torch.Tensor | None, quiet: bool = False) -> dict:
        """Chains over the latent sites given all of ``x``; draws kept as buffers."""
        c = self.config

        def make():
            return make_kernel(c.mcmc, self.model, self.structure.max_plate_nesting, c.step_size)

        with self.pyro_context():
            draws, diverging, diagnostics = run_chains(
                make, (x, y, None), c.chains, c.num_samples, c.warmup, quiet
            )
        for name, value in draws.items():
            self.draws.register_buffer(param_key(name), value.detach())
        self.draws.register_buffer("_diverging", diverging)
        return {"num_samples": c.num_samples, "chains": diagnostics, **chain_summary(draws)}

    def chains(self) -> dict[str, torch.Tensor]:
        """The MCMC draws by site, ``(chains, draws, ...)`` (empty for SVI runs)."""
        from probgen.programs.params import param_name

        return {param_name(k): v for k, v in self.draws.named_buffers() if k != "_diverging"}

    def divergences(self) -> torch.Tensor | None:
        return getattr(self.draws, "_diverging", None)

    # -- capabilities ----------------------------------------------------------------------
    def capabilities(self) -> frozenset[str]:
        """What this program supports, read from its structure and how it was fitted."""
        s = self.structure
        caps = {"sample", "sites"}
        scorable = s.data_dim is not None and not _accepts(self._user_model, "batch_index")
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
        if self.data_info.num_classes and _accepts(self._user_model, "y"):
            caps.add("labels")
        if not self.fits_by_mcmc() and any(n in s.guide_latents for n in s.local_latents):
            caps.update({"encode", "decode"})
        return frozenset(caps)

    # -- using a fitted program --------------------------------------------------------------
    @torch.no_grad()
    def generate(self, n, y=None, sampler=None, steps=None, site=None, **options):
        """``n`` draws of the data site (or ``site``): new data points, with global latents
        from the MCMC draws or the guide and local latents from the model."""
        return predictive.draw(self, n, y, site)

    @torch.no_grad()
    def sample(self, n, y=None, sampler=None, site=None, **options):
        """``generate`` in the data's units (only the data site is mapped back)."""
        values = self.generate(n, y=y, sampler=sampler, site=site)
        if site in (None, self.structure.observed):
            return self.preprocessor.inverse(values)
        return values

    @torch.no_grad()
    def elbo(self, x, y=None, num_particles: int = 1):
        """The per-point ELBO of the data plate (see :mod:`probgen.programs.scoring`)."""
        return self._log_weights(x, y, num_particles).mean(0)

    @torch.no_grad()
    def log_marginal(self, x, y=None, num_particles: int = 1000):
        """Importance-sampled log p(x) per point with the guide as proposal."""
        parts, left = [], num_particles
        while left > 0:
            k = min(100, left)
            parts.append(self._log_weights(x, y, k))
            left -= k
        return scoring.importance_bound(torch.cat(parts))

    @torch.no_grad()
    def log_prob(self, x, y=None):
        """Exact log p(x) per point: enumeration, or for MCMC runs the posterior predictive
        density log (1/S) sum_s p(x | theta_s) over the draws."""
        if self.fits_by_mcmc():
            return predictive.posterior_predictive_log_density(self, x, y)
        return self._log_weights(x, y, 1)[0]

    def _log_weights(self, x, y, k: int) -> torch.Tensor:
        s = self.structure
        guide = self.guide if s.guide_latents else None
        with self.pyro_context():
            if s.global_latents or k == 1:
                return scoring.log_weights(self.model, guide, s, (x, y, None), k)
            # without global latents, k particles are k copies of the batch: one pass
            xr = x.repeat(k, *([1] * (x.dim() - 1)))
            yr = y.repeat(k) if y is not None else None
            return scoring.log_weights(self.model, guide, s, (xr, yr, None), 1).reshape(k, -1)

    @torch.no_grad()
    def encode(self, x, y=None):
        """The guide's mean of the first local latent for each point of ``x``."""
        return predictive.encode(self, x, y)

    @torch.no_grad()
    def decode(self, z, y=None):
        """The mean of the data site given the local latent ``z``."""
        return predictive.decode(self, z, y)


def _tensors(module: nn.Module | None):
    if module is None:
        return []
    return [*module.parameters(), *module.buffers()]


def program_class(entry: ProgramEntry) -> type[PyroProgram]:
    """A :class:`PyroProgram` subclass for ``entry``, its ``Config`` extended by the keywords of
    a class program's constructor (typed by annotation or default)."""
    option_names = {f.name for f in dataclasses.fields(ProgramOptions)}
    fields = []
    if entry.is_class:
        for name, param in constructor_options(entry.model).items():
            if name in option_names:
                raise ConfigError(
                    f"{entry.spec}: the constructor keyword {name!r} clashes with probgen's "
                    "option of that name; rename it"
                )
            fields.append((name, *_field_type(param)))
    config = dataclasses.make_dataclass("Config", fields, bases=(ProgramOptions,), kw_only=True)
    config.__qualname__ = f"{entry.spec} options"
    return type(
        "PyroProgram", (PyroProgram,), {"Config": config, "entry": entry, "spec": entry.spec}
    )


def _field_type(param: inspect.Parameter):
    default = param.default
    annotation = param.annotation
    if isinstance(annotation, str):
        annotation = {"int": int, "float": float, "bool": bool, "str": str}.get(annotation)
    if annotation not in (int, float, bool, str):
        annotation = type(default) if isinstance(default, (int, float, bool, str)) else None
    if annotation is None:
        annotation = str | None
    if default is inspect.Parameter.empty:
        return (annotation,)
    return (annotation, dataclasses.field(default=default))
