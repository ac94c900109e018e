"""A program's parameters as torch parameters of one module, whatever style declared them.

Pyro programs declare parameters three ways: ``pyro.param(name, init, constraint=...)``,
``pyro.module(name, nn_module)`` and :class:`~pyro.nn.PyroModule` attributes. Pyro keeps the
first two in a process-global param store, which a torch optimiser, ``state_dict``, DDP and
``.to(device)`` never see. :class:`ProgramParameters` is a messenger that answers every
``pyro.param`` statement of the program it wraps from its own
:class:`~torch.nn.ParameterDict` of *unconstrained* values instead:

    constrained value = transform_to(constraint)(unconstrained parameter)

so each parameter is trained by the fit loop, saved as safetensors with the run, moved with the
model and kept out of the global store. Parameters that already belong to a module registered
with the program (the ``nn.Module`` whose methods are the program, the modules a function's
closure names, a PyroModule or an AutoGuide) are answered with the module's own tensor, so the
module's forward pass and the program see one tensor, and its buffers (such as the random masks
of autoregressive networks) are saved with its ``state_dict``.

References:
    Pyro's ``pyro.params.param_store.ParamStoreDict`` (the unconstrained-parameter convention
    and ``transform_to``); Bingham et al. 2019, "Pyro: deep universal probabilistic programming".
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pyro
import torch
from pyro.poutine.messenger import Messenger
from torch import nn
from torch.distributions import constraints, transform_to

# pyro.module names its parameters "module$$$param"; "." cannot appear in a ParameterDict key
_KEY_ESCAPES = ((".", "\u00b7"), ("$$$", "\u00a6"))


def param_key(name: str) -> str:
    """The ``ParameterDict`` key for the Pyro parameter ``name``."""
    for old, new in _KEY_ESCAPES:
        name = name.replace(old, new)
    return name


def param_name(key: str) -> str:
    """The Pyro parameter name of a ``ParameterDict`` key (inverse of :func:`param_key`)."""
    for old, new in _KEY_ESCAPES:
        key = key.replace(new, old)
    return key


class ProgramParameters(Messenger):
    """Serve ``pyro.param`` statements from ``params`` (unconstrained) and ``constraints``.

    Args:
        params: the dict that owns the unconstrained parameters; new ones are added to it.
        constraints: the constraint of each parameter, by Pyro name (filled as they appear).
        owned: returns the ids of tensors that registered modules already own.
        device: where new parameters are created.
    """

    def __init__(
        self,
        params: nn.ParameterDict,
        constraint_of: dict[str, constraints.Constraint],
        owned: Callable[[], set[int]],
        device: Callable[[], torch.device],
    ) -> None:
        super().__init__()
        self.params = params
        self.constraint_of = constraint_of
        self.owned = owned
        self.device = device
        self._owned_ids: set[int] | None = None

    def _pyro_param(self, msg: dict[str, Any]) -> None:
        name = msg["name"]
        key = param_key(name)
        if key in self.params:
            msg["value"] = _constrained(self.params[key], self.constraint_of[name])
            return
        args = msg["args"]
        if len(args) < 2 or args[1] is None:
            # a PyroModule attribute (it put its own value in Pyro's store) or a parameter that
            # was never initialised: Pyro's own store answers, or raises its KeyError
            return
        init = args[1]() if callable(args[1]) and not torch.is_tensor(args[1]) else args[1]
        init = torch.as_tensor(init)
        if self._owned_ids is None:
            self._owned_ids = self.owned()
        if id(init) in self._owned_ids:
            init.unconstrained = weakref.ref(init)
            msg["value"] = init
            return
        constraint = msg["kwargs"].get("constraint", constraints.real)
        with torch.no_grad():
            unconstrained = transform_to(constraint).inv(init.detach().to(self.device()))
        self.params[key] = nn.Parameter(unconstrained.clone().contiguous())
        self.constraint_of[name] = constraint
        msg["value"] = _constrained(self.params[key], constraint)


def _constrained(unconstrained: torch.Tensor, constraint: constraints.Constraint) -> torch.Tensor:
    # Pyro's convention (AutoGuides rely on it): a constrained value knows its parameter
    value = transform_to(constraint)(unconstrained)
    value.unconstrained = weakref.ref(unconstrained)
    return value


def modules_named_by(fn: Callable) -> dict[str, nn.Module]:
    """The ``nn.Module`` objects a function's code names through globals or its closure.

    A program written as plain functions over module-level networks (Pyro's tutorial style,
    ``decoder = Decoder()`` then ``pyro.module("decoder", decoder)``) owns those networks: they
    are registered with the program so their buffers are saved too. Bound methods contribute
    their instance.
    """
    found: dict[str, nn.Module] = {}
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, nn.Module):
        found[type(owner).__name__] = owner
    target = getattr(fn, "__func__", fn)
    if not inspect.isfunction(target):
        if isinstance(target, nn.Module):
            found[type(target).__name__] = target
        return found
    try:
        names = inspect.getclosurevars(target)
    except (TypeError, ValueError):
        return found
    for scope in (names.nonlocals, names.globals):
        for name, value in scope.items():
            if isinstance(value, nn.Module):
                found.setdefault(name, value)
    return found


def enforce_fresh_store() -> AbstractContextManager[dict]:
    """A context in which Pyro's global param store is empty and restored afterwards.

    PyroModules write their parameters into Pyro's store while they run and adopt a value
    found there under the same name; an empty scope keeps two programs with the same module
    names (two AutoNormal guides, say) from sharing parameters.
    """
    return pyro.get_param_store().scope()
