"""Normalizing-flow layers: bijections ``z = f(x)`` that return ``(z, log|det df/dx|)``.

:mod:`~probgen.flows.core` holds the layer interface and the Pyro distribution a flow defines;
the other modules hold one family of layers each. :class:`probgen.models.flows.Flow` assembles
them into the ``flow`` model.
"""

from probgen.flows.autoregressive import MADE, MaskedAutoregressive
from probgen.flows.core import Bijection, Compose, Flatten, FlowDistribution
from probgen.flows.coupling import Coupling
from probgen.flows.elementwise import Affine, RationalQuadraticSpline
from probgen.flows.glow import ConvCoupling, Squeeze
from probgen.flows.linear import ActNorm, BatchNorm, LULinear, Permutation
from probgen.flows.logit import Logit

__all__ = [
    "MADE",
    "ActNorm",
    "Affine",
    "BatchNorm",
    "Bijection",
    "Compose",
    "ConvCoupling",
    "Coupling",
    "Flatten",
    "FlowDistribution",
    "LULinear",
    "Logit",
    "MaskedAutoregressive",
    "Permutation",
    "RationalQuadraticSpline",
    "Squeeze",
]
