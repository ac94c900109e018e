"""A user's Pyro program as a probgen model.

:func:`program_class` turns a resolved ``MODEL[,GUIDE]`` (:mod:`probgen.programs.entry`) into a
:class:`PyroProgram` subclass whose ``Config`` holds probgen's options (``elbo``, ``particles``,
``guide``, ``mcmc``, ...) and, for class programs, the constructor's keywords. What a
:class:`~probgen.programs.derived.ProgramModel` derives from any model/guide pair, it derives
from the user's; on top come

- the parameters of ``pyro.param``, ``pyro.module`` and PyroModules: the user's module, and the
  networks its functions name, are registered so everything is trained and saved
  (:mod:`probgen.programs.params`);
- a guide when the user gives none: an AutoGuide over the latents, or the empty guide;
- MCMC over the latents given all the data (``mcmc=nuts|hmc|mala|ula``,
  :mod:`probgen.programs.mcmc`).

A program receives the data in the user's units (``--set preprocess=standardize`` opts in to
probgen's preprocessing), ``model(x)`` gets the mini-batch, and a program that declares the
keywords ``batch_index`` and ``data_size`` gets the rows' indices in the training set and N, for
``pyro.plate("data", size=data_size or len(x), subsample=batch_index)`` and per-datapoint guide
parameters (``None`` for both outside training).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from probgen.config import choice
from probgen.errors import ConfigError
from probgen.models.base import DataInfo, Labels
from probgen.programs.derived import ProgramModel
from probgen.programs.entry import ProgramEntry, constructor_options
from probgen.programs.guides import AUTOGUIDES, make_autoguide
from probgen.programs.mcmc import MCMC_KERNELS, chain_summary, make_kernel, run_chains
from probgen.programs.objectives import ELBOS
from probgen.programs.params import modules_named_by, param_key
from probgen.programs.structure import ProgramStructure

if TYPE_CHECKING:
    from pyro.infer.mcmc.mcmc_kernel import MCMCKernel


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

    def __post_init__(self) -> None:
        for name in ("particles", "chains", "num_samples", "posterior_draws"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0 or not self.step_size > 0:
            raise ValueError("warmup must be >= 0 and step_size > 0")


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    if isinstance(fn, nn.Module):
        fn = fn.forward
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


class PyroProgram(ProgramModel):
    """A Pyro ``model`` (and optional ``guide``) fitted, sampled and scored by probgen.

    Subclasses made by :func:`program_class` set ``entry`` (where the program comes from) and
    ``Config``. See the module docstring for what is derived from the program.
    """

    Config: ClassVar[type] = ProgramOptions
    entry: ClassVar[ProgramEntry]
    default_steps = 2000

    def __init__(self, config: ProgramOptions, data_info: DataInfo) -> None:
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
        self.auto = nn.ModuleDict()  # the AutoGuide, if one is made (plain container, as above)

    @classmethod
    def wants_preprocessing(cls, config: ProgramOptions) -> bool:
        return config.preprocess == "standardize"

    # -- calling the program -------------------------------------------------------------------
    def _call(
        self,
        fn: Callable[..., Any],
        x: torch.Tensor | None,
        y: torch.Tensor | None = None,
        batch_index: torch.Tensor | None = None,
    ) -> Any:
        kwargs = {}
        if y is not None and _accepts(fn, "y"):
            kwargs["y"] = y
        if _accepts(fn, "batch_index"):
            kwargs["batch_index"] = batch_index
            if _accepts(fn, "data_size"):
                kwargs["data_size"] = int(self.num_train) if batch_index is not None else None
        return fn(x, **kwargs)

    def model(
        self, x: Tensor | None = None, y: Labels = None, batch_index: Tensor | None = None
    ) -> Any:
        """The user's model, called with the keywords it declares."""
        return self._call(self._user_model, x, y, batch_index)

    def guide(
        self, x: Tensor | None = None, y: Labels = None, batch_index: Tensor | None = None
    ) -> Any:
        """The user's guide, the AutoGuide, or the empty guide."""
        if self._user_guide is not None:
            return self._call(self._user_guide, x, y, batch_index)
        if self.autoguide is not None:
            return self.autoguide(x, y, batch_index)
        return None

    @property
    def autoguide(self) -> nn.Module | None:
        """The AutoGuide standing in for a missing guide, else ``None``."""
        return self.auto["guide"] if "guide" in self.auto else None

    @property
    def program(self) -> nn.Module | None:
        """The user's module whose methods are the program (class programs), else ``None``."""
        return self.user["program"] if "program" in self.user else None

    def objective(self) -> dict:
        c = self.config
        return {"name": c.elbo, "particles": c.particles, "renyi_alpha": c.renyi_alpha}

    def make_guide(self, structure: ProgramStructure) -> bool:
        """The user's guide; else an AutoGuide over the non-enumerated latents, if any."""
        if self._user_guide is not None or self.autoguide is not None:
            return True
        if not structure.latents:
            return False
        self.auto["guide"] = make_autoguide(self.config.guide, self.model, structure.enumerated)
        return True

    def has_guide(self) -> bool:
        return self._user_guide is not None or self.autoguide is not None

    def takes_labels(self) -> bool:
        return _accepts(self._user_model, "y")

    def posterior_draws(self) -> int:
        return self.config.posterior_draws

    def declares_batch_index(self) -> bool:
        return _accepts(self._user_model, "batch_index")

    def source_file(self) -> str | None:
        return self.entry.source

    def check_minibatches(self, s: ProgramStructure, minibatch: bool, num_train: int) -> None:
        if self.autoguide is not None and s.local_latents and minibatch:
            raise ConfigError(
                f"an AutoGuide cannot follow mini-batches of the local latent "
                f"{s.local_latents[0]!r}: give a guide (FILE.py:model,guide), fit with "
                f"--batch-size {num_train}, or declare batch_index/data_size (docs/programs.md)"
            )

    # -- MCMC ------------------------------------------------------------------------------
    def fits_by_mcmc(self) -> bool:
        return self.config.mcmc != "none"

    def run_mcmc(self, x: torch.Tensor, y: torch.Tensor | None, quiet: bool = False) -> dict:
        """Chains over the latent sites given all of ``x``; draws kept as buffers."""
        c = self.config

        def make() -> MCMCKernel:
            return make_kernel(c.mcmc, self.model, self.structure.max_plate_nesting, c.step_size)

        with self.pyro_context():
            draws, diverging, diagnostics = run_chains(
                make, (x, y, None), c.chains, c.num_samples, c.warmup, quiet
            )
        for name, value in draws.items():
            self.draws.register_buffer(param_key(name), value.detach())
        self.draws.register_buffer("_diverging", diverging)
        return {"num_samples": c.num_samples, "chains": diagnostics, **chain_summary(draws)}


def _tensors(module: nn.Module | None) -> list[torch.Tensor]:
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


def _field_type(param: inspect.Parameter) -> tuple:
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
