"""Names on the command line -> model classes, and loading a user's own model class.

Built-in families are imported lazily so ``probgen list`` and loading one family never pay for
the others. A user's model is a Pyro program or a
:class:`~probgen.models.base.GenerativeModel` subclass, named ``path/to/file.py:NAME[,GUIDE]`` or
``package.module:NAME[,GUIDE]`` (see :mod:`probgen.programs.entry`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from probgen.errors import ConfigError

if TYPE_CHECKING:
    from probgen.programs.entry import ProgramEntry

MODELS: dict[str, str] = {
    "vae": "probgen.models.vae:VAE",
    "flow": "probgen.models.flows:Flow",
    "diffusion": "probgen.models.diffusion:Diffusion",
    "score": "probgen.models.score:ScoreModel",
    "gan": "probgen.models.gan:GAN",
    "ebm": "probgen.models.ebm:EBM",
}


def is_builtin(spec: str) -> bool:
    return spec in MODELS


def _import_object(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def resolve_model(spec: str) -> type:
    """The model class for a registered name, ``FILE.py:NAME[,GUIDE]`` or ``module:NAME[,GUIDE]``.

    NAME may be a :class:`~probgen.models.base.GenerativeModel` subclass (used as it is) or a
    Pyro program (a callable ``model``, optionally a ``guide``, or a class with ``model`` and
    ``guide`` methods), which becomes a :class:`~probgen.programs.model.PyroProgram`.
    """
    if spec in MODELS:
        return _import_object(MODELS[spec])
    if ":" not in spec:
        raise ConfigError(
            f"unknown model {spec!r}; choose from {', '.join(sorted(MODELS))} "
            "or give FILE.py:MODEL[,GUIDE] or package.module:MODEL[,GUIDE]"
        )
    from probgen.programs.entry import resolve_entry

    return model_class_for(resolve_entry(spec))


def model_class_for(entry: ProgramEntry) -> type:
    """The class that fits the resolved ``entry``: its own, or a program class."""
    from probgen.models.base import GenerativeModel
    from probgen.programs.model import program_class

    if isinstance(entry.model, type) and issubclass(entry.model, GenerativeModel):
        if entry.guide_name:
            raise ConfigError(f"{entry.spec}: a GenerativeModel brings its own guide")
        entry.model.spec = entry.spec
        return entry.model
    return program_class(entry)


def spec_of(cls: type, name: str) -> str:
    """What a run's ``config.json`` stores to rebuild ``cls``: the registered name or the
    resolved spec (file paths absolute)."""
    return cls.spec or name


def fit_target(
    model: str | type | Callable[..., Any], guide: str | Callable[..., Any] | None = None
) -> str | type:
    """What the fit loop builds for ``model`` (and ``guide``) as the user gave them: a name or
    spec string, a GenerativeModel subclass, or Python objects (a Pyro ``model`` callable and
    optional ``guide``, a class with ``model``/``guide`` methods, a PyroModule class)."""
    from probgen.programs.entry import entry_for_objects

    if isinstance(model, str):
        if guide is None:
            return model
        if not isinstance(guide, str):
            raise ConfigError("with a model spec string, give the guide as a name too")
        return f"{model},{guide}"
    if guide is not None and isinstance(model, type):
        raise ConfigError("a class program brings its guide as a method; drop guide=")
    from probgen.models.base import GenerativeModel

    if isinstance(model, type) and issubclass(model, GenerativeModel) and model.spec:
        return model  # already resolved (a program class, a user class that knows its spec)
    return model_class_for(entry_for_objects(model, guide))
