"""Names on the command line -> model classes, and loading a user's own model class.

Built-in families are imported lazily so ``probgen list`` and loading one family never pay for
the others. A user's model is any :class:`~probgen.models.base.GenerativeModel` subclass named
``path/to/file.py:ClassName`` or ``package.module:ClassName``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from probgen.errors import ConfigError

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


def _import_object(target: str):
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def _load_from_file(path: Path, attr: str):
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    module_name = f"probgen_user_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: report, don't trace back
        raise ConfigError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, attr):
        raise ConfigError(f"{path} has no class {attr!r}")
    return getattr(module, attr)


def resolve_model(spec: str):
    """The model class for a registered name, ``file.py:Class`` or ``module:Class``."""
    from probgen.models.base import GenerativeModel

    if spec in MODELS:
        cls = _import_object(MODELS[spec])
    elif ":" in spec:
        location, _, attr = spec.rpartition(":")
        if location.endswith(".py") or "/" in location or "\\" in location:
            cls = _load_from_file(Path(location), attr)
        else:
            try:
                module = importlib.import_module(location)
            except ImportError as exc:
                raise ConfigError(f"cannot import module {location!r}: {exc}") from exc
            if not hasattr(module, attr):
                raise ConfigError(f"module {location!r} has no class {attr!r}")
            cls = getattr(module, attr)
    else:
        raise ConfigError(
            f"unknown model {spec!r}; choose from {', '.join(sorted(MODELS))} "
            "or give path/to/file.py:Class or package.module:Class"
        )
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        raise ConfigError(f"{spec} is not a probgen GenerativeModel subclass")
    return cls
