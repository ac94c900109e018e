"""Guides for programs that bring none: Pyro's AutoGuides by name (``--guide NAME``).

==================  ==============================================================
``auto_normal``     ``AutoNormal``: independent Normals in unconstrained space
``auto_mvn``        ``AutoMultivariateNormal``: one full-covariance Normal
``auto_lowrank``    ``AutoLowRankMultivariateNormal``: low rank plus diagonal
``auto_iaf``        ``AutoIAFNormal``: a Normal pushed through inverse autoregressive flows
``auto_delta``      ``AutoDelta``: point estimates (MAP)
==================  ==============================================================

Enumerated sites are hidden from the guide (``TraceEnum_ELBO`` sums them out), as Pyro's
Gaussian-mixture tutorial does with ``poutine.block``.

References: Kucukelbir et al. 2017, "Automatic differentiation variational inference";
Kingma et al. 2016, "Improved variational inference with inverse autoregressive flow".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyro import poutine
from pyro.infer import autoguide
from pyro.nn import PyroModule

AUTOGUIDES = ("auto_normal", "auto_mvn", "auto_lowrank", "auto_iaf", "auto_delta")


def make_autoguide(name: str, model: Callable, hide: Sequence[str] = ()) -> PyroModule:
    """The AutoGuide called ``name`` over ``model``, blind to the sites in ``hide``."""
    target = poutine.block(model, hide=list(hide)) if hide else model
    if name == "auto_normal":
        return autoguide.AutoNormal(target)
    if name == "auto_mvn":
        return autoguide.AutoMultivariateNormal(target)
    if name == "auto_lowrank":
        return autoguide.AutoLowRankMultivariateNormal(target)
    if name == "auto_iaf":
        return autoguide.AutoIAFNormal(target)
    if name == "auto_delta":
        return autoguide.AutoDelta(target)
    raise ValueError(f"unknown guide {name!r}; choose from {', '.join(AUTOGUIDES)}")
