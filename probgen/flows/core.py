"""Bijections in the density direction and the Pyro distribution they define.

Convention used throughout :mod:`probgen.flows`: a flow is a bijection ``z = f(x)`` from data
space to base space, and every :class:`Bijection` returns the image together with the log of the
absolute Jacobian determinant of that map,

    f(x) = (z, log|det df/dx|),    log p_x(x) = log p_z(f(x)) + log|det df/dx|.

Scoring data therefore takes one pass through ``f``; sampling runs ``f^{-1}`` on base draws.
:class:`FlowDistribution` wraps ``(p_z, f)`` as a Pyro ``TransformedDistribution`` whose
(sampling-direction) transform is ``f^{-1}``, so it is one ``pyro.sample`` site.

References: Rezende & Mohamed 2015, "Variational Inference with Normalizing Flows";
Papamakarios et al. 2021, "Normalizing Flows for Probabilistic Modeling and Inference".
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.distributions import constraints


class Bijection(nn.Module):
    """An invertible map ``z = f(x)`` on batches ``(N, *shape)``.

    ``forward(x)`` returns ``(z, ladj)`` with ``ladj = log|det df/dx|`` of shape ``(N,)``;
    ``inverse(z)`` returns ``x``.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, z: Tensor) -> Tensor:
        raise NotImplementedError


class Compose(Bijection):
    """``f = f_K o ... o f_1``; the log-determinants add (chain rule)."""

    def __init__(self, *bijections: Bijection) -> None:
        super().__init__()
        self.steps = nn.ModuleList(bijections)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        ladj = x.new_zeros(x.shape[0])
        for step in self.steps:
            x, step_ladj = step(x)
            ladj = ladj + step_ladj
        return x, ladj

    def inverse(self, z: Tensor) -> Tensor:
        for step in reversed(self.steps):
            z = step.inverse(z)
        return z


class Flatten(Bijection):
    """``(N, *event_shape) -> (N, D)``: a relabelling of coordinates, so ``ladj = 0``."""

    def __init__(self, event_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.event_shape = tuple(event_shape)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.reshape(x.shape[0], -1), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor) -> Tensor:
        return z.reshape(z.shape[0], *self.event_shape)


class InverseFlowTransform(torch.distributions.Transform):
    """``f^{-1}`` (base -> data) as a torch transform, for ``TransformedDistribution``.

    Leading batch dimensions of any number are folded into one before calling the bijection.
    """

    bijective = True

    def __init__(self, bijection: Bijection, event_shape: tuple[int, ...], base_dim: int) -> None:
        super().__init__()
        self.bijection = bijection
        self.event_shape = tuple(event_shape)
        self.base_dim = base_dim

    @property
    def domain(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, 1)

    @property
    def codomain(self) -> constraints.Constraint:
        return constraints.independent(constraints.real, len(self.event_shape))

    def _call(self, z: Tensor) -> Tensor:
        batch = z.shape[:-1]
        x = self.bijection.inverse(z.reshape(-1, self.base_dim))
        return x.reshape(*batch, *self.event_shape)

    def _inverse(self, x: Tensor) -> Tensor:
        return self.forward_with_ladj(x)[0]

    def forward_with_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(f(x), log|det df/dx|)`` for ``x`` of shape ``(*batch, *event_shape)``."""
        batch = x.shape[: x.dim() - len(self.event_shape)]
        z, ladj = self.bijection(x.reshape(-1, *self.event_shape))
        return z.reshape(*batch, self.base_dim), ladj.reshape(batch)

    def log_abs_det_jacobian(self, z: Tensor, x: Tensor) -> Tensor:
        # log|det d f^{-1}/dz| = -log|det df/dx| at x = f^{-1}(z)
        return -self.forward_with_ladj(x)[1]

    def forward_shape(self, shape: torch.Size) -> torch.Size:
        return torch.Size((*shape[:-1], *self.event_shape))

    def inverse_shape(self, shape: torch.Size) -> torch.Size:
        return torch.Size((*shape[: len(shape) - len(self.event_shape)], self.base_dim))


class FlowDistribution(dist.TransformedDistribution):
    """The density of ``x = f^{-1}(z)``, ``z ~ base``: a Pyro ``TransformedDistribution``.

    ``log_prob(x) = base.log_prob(f(x)) + log|det df/dx|`` in one pass through ``f`` (the
    generic ``TransformedDistribution`` would invert the inverse transform and then evaluate
    its Jacobian separately); ``rsample`` is ``f^{-1}`` of base draws.

    Args:
        base: a distribution with event shape ``(D,)``.
        bijection: ``f`` from data of shape ``event_shape`` to ``(D,)``.
        event_shape: shape of one data example.
    """

    def __init__(
        self,
        base: dist.Distribution,
        bijection: Bijection,
        event_shape: tuple[int, ...],
        validate_args: bool | None = None,
    ) -> None:
        transform = InverseFlowTransform(bijection, event_shape, base.event_shape[-1])
        super().__init__(base, [transform], validate_args=validate_args)

    def expand(
        self, batch_shape: torch.Size | tuple[int, ...], _instance: FlowDistribution | None = None
    ) -> FlowDistribution:
        new = self._get_checked_instance(FlowDistribution, _instance)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, x: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(x)
        z, ladj = self.transforms[0].forward_with_ladj(x)
        return self.base_dist.log_prob(z) + ladj
