"""Kernel Inception Distance: the unbiased squared MMD with a cubic polynomial kernel.

    k(x, y) = (x . y / d + 1)^3
    MMD^2_u = 1/(m(m-1)) sum_{i != j} [k(a_i, a_j) + k(b_i, b_j)] - 2/m^2 sum_{i, j} k(a_i, b_j)

estimated on ``num_subsets`` random subsets of ``m`` vectors from each set (drawn without
replacement), reported as the mean over subsets and their standard deviation (population form,
as torchmetrics). Unlike FID the estimator is unbiased, so it is centred on 0 for two samples of
one distribution and can be negative.

References: Bińkowski et al. 2018, "Demystifying MMD GANs".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from probgen.errors import DataError
from probgen.metrics._arrays import as_float64_tensor

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


@dataclass(frozen=True)
class KIDResult:
    """KID mean and standard deviation over subsets, with the subset size and count used."""

    mean: float
    std: float
    subset_size: int
    num_subsets: int


def polynomial_mmd2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unbiased ``MMD^2`` between equal-size ``a`` and ``b`` ``(m, d)`` with the cubic kernel."""
    m, d = a.shape
    k_aa = (a @ a.T / d + 1.0) ** 3
    k_bb = (b @ b.T / d + 1.0) ** 3
    k_ab = (a @ b.T / d + 1.0) ** 3
    within = (k_aa.sum() - k_aa.diagonal().sum() + k_bb.sum() - k_bb.diagonal().sum()) / (
        m * (m - 1)
    )
    return within - 2.0 * k_ab.mean()


def kid(
    features_a: ArrayLike,
    features_b: ArrayLike,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> KIDResult:
    """KID between ``features_a`` ``(N_a, d)`` and ``features_b`` ``(N_b, d)``.

    The subset size is ``min(subset_size, N_a, N_b)``; subsets are drawn with a generator seeded
    by ``seed``, so the value is reproducible.
    """
    a = as_float64_tensor(features_a, "features_a", ndim=2)
    b = as_float64_tensor(features_b, "features_b", ndim=2).to(a.device)
    if a.shape[1] != b.shape[1]:
        raise DataError(f"feature dimensions differ: {a.shape[1]} and {b.shape[1]}")
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise DataError(f"KID needs at least 2 vectors in each set, got {a.shape[0]}, {b.shape[0]}")
    gen = torch.Generator().manual_seed(seed)
    scores = torch.stack(
        [
            polynomial_mmd2(
                a[torch.randperm(a.shape[0], generator=gen)[:m].to(a.device)],
                b[torch.randperm(b.shape[0], generator=gen)[:m].to(a.device)],
            )
            for _ in range(num_subsets)
        ]
    )
    return KIDResult(float(scores.mean()), float(scores.std(unbiased=False)), m, num_subsets)
