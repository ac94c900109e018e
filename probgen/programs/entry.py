"""Where a user's Pyro program comes from: ``FILE.py:MODEL[,GUIDE]`` or ``module:MODEL[,GUIDE]``.

MODEL and GUIDE are names in the file or module, dotted attributes allowed (``vae.model``). MODEL
is either

- a callable ``model(x=None)`` (``model(x=None, y=None)`` with labels): a function, a bound
  method, any callable object; GUIDE, if named, likewise; or
- a class with a ``model`` method (and optionally ``guide``), such as an ``nn.Module`` or a
  ``PyroModule``, built with the ``--set key=value`` keywords its constructor accepts.

Errors are one line naming the file (and line, where the program raised) and the name.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pyro.nn import PyroModule
from torch import nn

from probgen.errors import ConfigError


@dataclass
class ProgramEntry:
    """A resolved ``MODEL[,GUIDE]`` spec.

    Attributes:
        spec: the spec as stored in a run (file paths made absolute).
        source: the file the program lives in (for error messages), or ``None``.
        model: the object MODEL names (a callable or a class).
        guide: the object GUIDE names, or ``None``.
        guide_name: GUIDE as written (looked up on the instance for class programs).
    """

    spec: str
    source: str | None
    model: object
    guide: object | None = None
    guide_name: str | None = None

    @property
    def is_class(self) -> bool:
        return inspect.isclass(self.model)

    def build(self, kwargs: dict) -> tuple[Callable, Callable | None, nn.Module | None]:
        """The model and guide callables, and the module that owns them (class programs)."""
        if not self.is_class:
            return self.model, self.guide, _owner(self.model)
        try:
            instance = self.model(**kwargs)
        except Exception as exc:  # the user's constructor: one line, where it raised
            raise ConfigError(program_error(exc, self.source, f"building {self.spec}")) from None
        guide = self.guide
        if self.guide_name is not None and hasattr(instance, self.guide_name.split(".")[-1]):
            guide = getattr(instance, self.guide_name.split(".")[-1])
        elif guide is None and callable(getattr(instance, "guide", None)):
            guide = _in_module_context(instance, instance.guide)
        model = getattr(instance, "model", None)
        # a PyroModule's program is its forward; its PyroSample/PyroParam attributes become
        # sample and param sites only while the module runs (inside its own context)
        model = instance if model is None else _in_module_context(instance, model)
        return model, guide, instance if isinstance(instance, nn.Module) else None


def _in_module_context(instance: object, method: Callable[..., Any]) -> Callable[..., Any]:
    if not isinstance(instance, PyroModule):
        return method

    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> Any:
        with instance._pyro_context:
            return method(*args, **kwargs)

    return run


def is_program_class(cls: type) -> bool:
    """A class with a ``model`` method, or a PyroModule (whose ``forward`` is the model)."""
    return callable(getattr(cls, "model", None)) or issubclass(cls, PyroModule)


def _owner(fn: Callable[..., Any]) -> nn.Module | None:
    owner = getattr(fn, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def constructor_options(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword parameters of a class program's constructor (``--set`` keys)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return {}
    return {
        name: p
        for name, p in params.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "self"
    }


def program_error(exc: BaseException, source: str | None, doing: str) -> str:
    """``FILE:LINE: doing: Error: message`` for an exception raised by a user's program.

    The line is the innermost frame in ``source`` (or, without a source file, the innermost
    frame outside torch, Pyro and probgen).
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = None
    for frame in reversed(frames):
        in_source = source is not None and Path(frame.filename).resolve() == Path(source)
        foreign = any(part in frame.filename for part in ("/torch/", "/pyro/", "/probgen/"))
        if in_source or (source is None and not foreign):
            where = f"{frame.filename}:{frame.lineno}"
            break
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    prefix = f"{where}: " if where else (f"{source}: " if source else "")
    return f"{prefix}{doing}: {type(exc).__name__}: {message}".rstrip(": ")


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    module_name = f"probgen_user_{path.stem}_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    # the file's folder is importable while it loads, so its sibling imports work
    folder = str(path.parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: report, don't trace back
        sys.modules.pop(module_name, None)
        raise ConfigError(program_error(exc, str(path), f"importing {path.name}")) from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _lookup(namespace: ModuleType, dotted: str, where: str) -> Any:
    value: object = namespace
    for i, part in enumerate(dotted.split(".")):
        if not hasattr(value, part):
            owner = ".".join(dotted.split(".")[:i]) or where
            raise ConfigError(f"{where}: {owner} has no name {part!r}")
        value = getattr(value, part)
    return value


def is_file_location(location: str) -> bool:
    return location.endswith(".py") or "/" in location or "\\" in location


def import_location(location: str) -> tuple[ModuleType, str | None, str]:
    """The module at ``location`` (a file path or a dotted module), its file and stored name."""
    if is_file_location(location):
        path = Path(location).expanduser().resolve()
        return _import_file(path), str(path), str(path)
    try:
        module = importlib.import_module(location)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {location!r}: {exc}") from None
    except Exception as exc:
        source = getattr(sys.modules.get(location), "__file__", None)
        raise ConfigError(program_error(exc, source, f"importing {location}")) from None
    return module, getattr(module, "__file__", None), location


def resolve_entry(spec: str) -> ProgramEntry:
    """The program ``FILE.py:MODEL[,GUIDE]`` or ``module:MODEL[,GUIDE]`` names."""
    location, _, names = spec.rpartition(":")
    if not location or not names:
        raise ConfigError(f"{spec!r}: give FILE.py:MODEL[,GUIDE] or package.module:MODEL[,GUIDE]")
    model_name, _, guide_name = names.partition(",")
    model_name, guide_name = model_name.strip(), guide_name.strip() or None
    module, source, stored = import_location(location)
    where = source or location
    model = _lookup(module, model_name, where)
    guide = None
    if not callable(model):
        raise ConfigError(f"{where}: {model_name} is a {type(model).__name__}, not callable")
    if guide_name is not None:
        if inspect.isclass(model) and "." not in guide_name and not hasattr(module, guide_name):
            guide = None  # a method of the instance, looked up once it is built
        else:
            guide = _lookup(module, guide_name, where)
            if not callable(guide):
                raise ConfigError(
                    f"{where}: {guide_name} is a {type(guide).__name__}, not callable"
                )
    if inspect.isclass(model) and not is_program_class(model):
        raise ConfigError(f"{where}: class {model_name} has no model method")
    full = f"{stored}:{model_name}" + (f",{guide_name}" if guide_name else "")
    return ProgramEntry(full, source, model, guide, guide_name)


def entry_for_objects(
    model: Callable[..., Any], guide: Callable[..., Any] | None = None
) -> ProgramEntry:
    """A :class:`ProgramEntry` for Python objects given to :func:`probgen.fit` directly.

    The stored spec names where the objects are defined, so the run reloads (with
    ``trust_code``) when they are importable: a module's attribute, or a script's top level.
    """
    if not callable(model):
        raise ConfigError(f"the model must be callable, not a {type(model).__name__}")
    if guide is not None and not callable(guide):
        raise ConfigError(f"the guide must be callable, not a {type(guide).__name__}")
    return ProgramEntry(
        f"{_where_defined(model)}:{_qualname(model)}"
        + (f",{_qualname(guide)}" if guide is not None else ""),
        _source_file(model),
        model,
        guide,
    )


def _qualname(obj: object) -> str:
    target = getattr(obj, "__func__", obj)
    name = getattr(target, "__qualname__", None) or type(obj).__qualname__
    owner = getattr(obj, "__self__", None)
    if owner is not None and not inspect.isclass(owner):
        # a bound method: named through the module-level instance when there is one
        module = sys.modules.get(type(owner).__module__)
        for attr, value in vars(module or object).items():
            if value is owner:
                return f"{attr}.{target.__name__}"
    return name


def _source_file(obj: object) -> str | None:
    try:
        return str(Path(inspect.getfile(getattr(obj, "__func__", obj))).resolve())
    except (TypeError, OSError):
        return None


def _where_defined(obj: object) -> str:
    module = getattr(getattr(obj, "__func__", obj), "__module__", None) or type(obj).__module__
    if module == "__main__" or module.startswith("probgen_user_"):
        source = _source_file(obj)
        if source:
            return source
    return module
