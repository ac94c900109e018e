"""Hyperparameters from ``-c config.json`` and ``--set key=value``, validated against a dataclass.

Every model's ``Config`` is a dataclass; its field annotations are the schema. Unknown keys and
values of the wrong type are :class:`~probgen.errors.ConfigError` with the valid choices listed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from probgen.errors import ConfigError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
# no option counts, sizes or steps beyond this: a larger integer is a typo, not a request
MAX_INT = 2**31 - 1


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """``value`` (a string from ``--set`` or a JSON value) converted to ``annotation``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip().strip("()[]")
            items = [s.strip() for s in text.split(",") if s.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            items = [value]
        item_type = args[0] if args else str
        return origin(_coerce(v, item_type, key) for v in items)
    coerce = _SCALARS.get(annotation)
    if coerce is None:
        raise ConfigError(f"{key}: unsupported option type {annotation!r}")
    return coerce(value, key)


def _to_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ConfigError(f"{key} expects true or false, got {value!r}")


def _to_int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key} expects an integer, got {value!r}")
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} expects an integer, got {value!r}") from None
    if not as_float.is_integer():
        raise ConfigError(f"{key} expects an integer, got {value!r}")
    as_int = int(value) if isinstance(value, int) else int(as_float)
    if abs(as_int) > MAX_INT:
        raise ConfigError(f"{key}={value} is too large (at most {MAX_INT:,})")
    return as_int


def _to_float(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{key} expects a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{key} expects a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{key} expects a finite number, got {value!r}")
    return number


def _to_str(value: Any, key: str) -> str:
    if not isinstance(value, (str, int, float)):
        raise ConfigError(f"{key} expects a string, got {value!r}")
    return str(value)


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}


def parse_set_options(pairs: Iterable[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a pair without ``=`` is an error."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def read_config_file(path: str | Path) -> dict:
    """The JSON object in ``path`` (one clear error if missing or not a JSON object)."""
    from probgen.data.files import check_regular
    from probgen.errors import DataError

    path = Path(path)
    try:
        check_regular(path, "config")
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return data


def check_choice(name: str, value: object, choices: Iterable) -> None:
    """Raise ``ConfigError("unknown NAME 'value'; choose from a, b")`` unless ``value`` is one of
    ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")


def build_config(config_cls: type, *sources: dict) -> Any:
    """An instance of ``config_cls`` with the keys of ``sources`` applied in order.

    Values may be strings (from ``--set``) or JSON values; each is checked and converted to
    the field's annotated type; fields declared with :func:`choice` are checked by
    :func:`check_choices`.
    """
    hints = typing.get_type_hints(config_cls)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    values = {}
    for source in sources:
        for key, value in source.items():
            if key not in fields:
                raise ConfigError(
                    f"unknown option {key!r} for {config_cls.__qualname__}; "
                    f"valid options: {', '.join(sorted(fields))}"
                )
            values[key] = _coerce(value, hints[key], key)
    try:
        config = config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid options: {exc}") from None
    check_choices(config)
    return config


def check_choices(config: Any) -> None:
    """Raise :class:`~probgen.errors.ConfigError` unless every field declared with
    :func:`choice` holds one of its choices: the one check of choice-valued options, for
    configs from the command line and configs built in Python alike."""
    for field in dataclasses.fields(config):
        choices = field.metadata.get("choices")
        if choices is not None:
            check_choice(field.name, getattr(config, field.name), choices)


def config_to_dict(config: Any) -> dict:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def choice(default: Any, choices: Iterable) -> Any:
    """A dataclass field with a default and a fixed set of valid values."""
    return dataclasses.field(default=default, metadata={"choices": tuple(choices)})
