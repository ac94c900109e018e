"""Brute-force reference for a bijection's log-determinant, to verify new layers against.

For one example ``x`` with ``D`` coordinates the dense Jacobian ``J = df/dx`` (``D x D``) is
computed by automatic differentiation and ``log|det J|`` by an LU-based ``slogdet``: O(D^3) per
example, for tests and debugging of small layers, never for training.
"""

from __future__ import annotations

import torch
from torch import Tensor

from probgen.flows.core import Bijection


def dense_log_abs_det(bijection: Bijection, x: Tensor) -> Tensor:
    """``log|det df/dx|`` for each example in ``x`` (shape ``(N, *shape)``), by autograd.

    Layers whose map depends on the whole batch (batch statistics in training mode) must be in
    evaluation mode, since each example is differentiated alone.
    """

    def single(v: Tensor) -> Tensor:
        return bijection(v.unsqueeze(0))[0].reshape(-1)

    out = []
    for v in x:
        jacobian = torch.autograd.functional.jacobian(single, v)
        out.append(torch.linalg.slogdet(jacobian.reshape(v.numel(), v.numel()))[1])
    return torch.stack(out)
