"""Building a model for a dataset: the class resolved, its contract and config checked, its
preprocessor fitted, and the device and seeds chosen."""

from __future__ import annotations

import pyro
import torch

from probgen.config import build_config
from probgen.data.datasets import Dataset, fit_preprocessor
from probgen.data.preprocess import Identity
from probgen.errors import ConfigError
from probgen.model_memory import check_model_fits
from probgen.models.base import DataInfo, GenerativeModel
from probgen.models.registry import fit_target, is_builtin, resolve_model, spec_of


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present; asking for an absent CUDA device is an error."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda") from None


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), NumPy and Python's ``random`` through Pyro."""
    pyro.set_rng_seed(seed)


def build_model(
    model: str | type, dataset: Dataset, config_sources: tuple[dict, ...] = (), seed: int = 0
) -> GenerativeModel:
    """A fresh model for ``dataset``: its config validated, its preprocessor fitted.

    ``model`` is a registered name, a spec (``FILE.py:NAME[,GUIDE]``), a model class or a Pyro
    program's callable or class (:func:`~probgen.models.registry.fit_target`).
    """
    target = fit_target(model)
    cls = resolve_model(target) if isinstance(target, str) else target
    check_contract(cls)
    config = build_config(cls.Config, *config_sources)
    preprocessor = (
        fit_preprocessor(dataset, cls.image_range, cls.dequantize)
        if cls.wants_preprocessing(config)
        else Identity()
    )
    data_info = DataInfo(
        event_shape=dataset.event_shape,
        kind=dataset.kind,
        num_classes=dataset.num_classes,
        value_range=tuple(cls.image_range) if dataset.kind == "image" else None,
        levels=dataset.levels,
    )
    seed_everything(seed)
    try:
        net = cls(config, data_info)
    except ValueError as exc:
        raise ConfigError(f"{spec_of(cls, str(model))}: {exc}") from None
    net.preprocessor = preprocessor
    return net


def check_contract(cls: type) -> None:
    """One line, before any run directory is written, when a model class cannot be fitted."""
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        raise ConfigError(f"{cls!r} is not a probgen model")
    missing = []
    if cls.loss is GenerativeModel.loss and cls.train_step is GenerativeModel.train_step:
        missing.append("loss() (or train_step())")
    if cls.generate is GenerativeModel.generate:
        missing.append("generate()")
    if missing:
        raise ConfigError(
            f"{cls.__name__} defines no {' and no '.join(missing)}: a GenerativeModel subclass "
            "must, or give its model/guide as a plain Pyro program (FILE.py:model,guide)"
        )


def build_checked(
    model: str | type, dataset: Dataset, sources: tuple[dict, ...], seed: int
) -> GenerativeModel:
    """``build_model``, after checking (allocating nothing) that the model fits in memory.

    A built-in family whose options do not build (a size too large for torch, a negative
    width) is one line; a user's own model keeps its traceback, which is what its author needs.
    """
    builtin = isinstance(model, str) and is_builtin(model)
    if builtin:
        check_model_fits(
            lambda: build_model(model, dataset, sources, seed),
            f"{model} with these options",
        )
    try:
        return build_model(model, dataset, sources, seed)
    except (RuntimeError, MemoryError, OverflowError, TypeError, ValueError) as exc:
        if not builtin:
            raise
        text = str(exc).strip().splitlines()
        raise ConfigError(
            f"{model}: these options do not build a model "
            f"({type(exc).__name__}: {text[0] if text else ''})"
        ) from None
