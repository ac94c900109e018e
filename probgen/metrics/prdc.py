"""Precision, recall, density and coverage from k-nearest-neighbour balls, computed in blocks.

Each real feature ``r_i`` gets the radius ``rho(r_i)`` to its k-th nearest other real feature,
each fake ``f_j`` the radius ``rho(f_j)`` to its k-th nearest other fake; with strict
inequalities, as the ``prdc`` package (distances equal to a radius count as outside):

    precision = 1/M sum_j 1[ exists i: ||f_j - r_i|| <  rho(r_i) ]
    recall    = 1/N sum_i 1[ exists j: ||r_i - f_j|| <  rho(f_j) ]
    density   = 1/(k M) sum_j sum_i 1[ ||f_j - r_i|| < rho(r_i) ]
    coverage  = 1/N sum_i 1[ min_j ||r_i - f_j|| < rho(r_i) ]

Distances are float64 and computed ``block_size`` rows at a time; the radii come from a
blockwise ``topk`` (the (k+1)-th smallest distance in a row counts the point itself), so memory
is ``O(block_size * max(N, M))`` and an ``N x N`` matrix is never held.

References: Kynkäänniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
Generative Models"; Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative
Models".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from probgen.errors import DataError
from probgen.metrics._arrays import as_float64_tensor

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def _distances(x: torch.Tensor, y: torch.Tensor, y_sq: torch.Tensor) -> torch.Tensor:
    # In place, so a block costs one (B, N) float64 matrix and no temporaries of that size.
    d = x @ y.T
    return d.mul_(-2.0).add_((x * x).sum(1, keepdim=True)).add_(y_sq).clamp_min_(0.0).sqrt_()


def knn_radii(x: torch.Tensor, k: int, block_size: int = 1024) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row, ``(N,)``."""
    if x.shape[0] <= k:
        raise DataError(f"k = {k} nearest neighbours need more than {k} points, got {x.shape[0]}")
    x_sq = (x * x).sum(1)
    radii = [
        _distances(block, x, x_sq).topk(k + 1, dim=1, largest=False).values[:, -1]
        for block in x.split(block_size)
    ]
    return torch.cat(radii)


def precision_recall_density_coverage(
    real_features: ArrayLike, fake_features: ArrayLike, k: int = 3, block_size: int = 1024
) -> dict[str, float]:
    """``dict(precision, recall, density, coverage)`` of fake vs real features ``(N, d)``."""
    real = as_float64_tensor(real_features, "real features", ndim=2)
    fake = as_float64_tensor(fake_features, "fake features", ndim=2).to(real.device)
    if real.shape[1] != fake.shape[1]:
        raise DataError(f"feature dimensions differ: {real.shape[1]} and {fake.shape[1]}")
    real_radii = knn_radii(real, k, block_size)
    fake_radii = knn_radii(fake, k, block_size)
    real_sq = (real * real).sum(1)
    real_recalled = torch.zeros(real.shape[0], dtype=torch.bool, device=real.device)
    real_nearest_fake = torch.full_like(real_radii, float("inf"))
    in_real_balls = []
    for fake_block, radii_block in zip(fake.split(block_size), fake_radii.split(block_size)):
        d = _distances(fake_block, real, real_sq)  # (B, N): fakes against every real
        in_real_balls.append((d < real_radii).sum(1))
        real_recalled |= (d < radii_block[:, None]).any(0)
        real_nearest_fake = torch.minimum(real_nearest_fake, d.min(0).values)
    counts = torch.cat(in_real_balls).to(torch.float64)
    return {
        "precision": float((counts > 0).double().mean()),
        "recall": float(real_recalled.double().mean()),
        "density": float(counts.mean() / k),
        "coverage": float((real_nearest_fake < real_radii).double().mean()),
    }
