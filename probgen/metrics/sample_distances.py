"""Distances between two samples of vectors: Gaussian-kernel MMD and sliced Wasserstein.

Unbiased squared MMD with a sum of Gaussian kernels,

    k(x, y) = sum_s exp(-||x - y||^2 / (2 (s h)^2)),   s in {0.25, 0.5, 1, 2, 4}
    MMD^2_u = 1/(n(n-1)) sum_{i != j} k(a_i, a_j) + 1/(m(m-1)) sum_{i != j} k(b_i, b_j)
              - 2/(nm) sum_{i, j} k(a_i, b_j)

where ``h`` is the median pairwise distance of the *reference* set (median heuristic), so one
reference gives one kernel for every model compared against it. Kernel sums are accumulated in
blocks, never holding an ``n x m`` matrix.

Sliced 2-Wasserstein distance over ``L`` random unit directions ``theta_l``,

    SW_2(a, b) = ( 1/L sum_l W_2^2(theta_l . a, theta_l . b) )^{1/2}

with each one-dimensional ``W_2^2 = int_0^1 (F_a^{-1}(t) - F_b^{-1}(t))^2 dt`` computed exactly
from the sorted projections (the quantile functions are steps at ``i/n`` and ``j/m``).

References: Gretton et al. 2012, "A Kernel Two-Sample Test"; Bonneel et al. 2015, "Sliced and
Radon Wasserstein Barycenters of Measures".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from probgen.errors import DataError
from probgen.metrics._arrays import as_float64_tensor

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

BANDWIDTH_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
MEDIAN_SUBSET = 1000


def _pair(samples: ArrayLike, reference: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    a = as_float64_tensor(samples, "samples", ndim=2)
    b = as_float64_tensor(reference, "reference", ndim=2).to(a.device)
    if a.shape[1] != b.shape[1]:
        raise DataError(f"dimensions differ: samples {a.shape[1]}, reference {b.shape[1]}")
    if min(a.shape[0], b.shape[0]) < 2:
        raise DataError(f"need at least 2 points in each set, got {a.shape[0]}, {b.shape[0]}")
    return a, b


def median_distance(x: torch.Tensor, seed: int = 0) -> float:
    """Median pairwise distance of ``x`` (of a random subset of 1,000 rows when larger)."""
    if x.shape[0] > MEDIAN_SUBSET:
        gen = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(x.shape[0], generator=gen)[:MEDIAN_SUBSET].to(x.device)]
    d = torch.cdist(x, x)
    i, j = torch.triu_indices(x.shape[0], x.shape[0], offset=1, device=x.device)
    return float(d[i, j].median())


def _kernel_sum(
    x: torch.Tensor,
    y: torch.Tensor,
    bandwidths: Sequence[float],
    block_size: int,
    exclude_diagonal: bool,
) -> torch.Tensor:
    total = x.new_zeros(())
    y_sq = (y * y).sum(1)
    for start in range(0, x.shape[0], block_size):
        xb = x[start : start + block_size]
        sq = ((xb * xb).sum(1, keepdim=True) - 2.0 * xb @ y.T + y_sq).clamp_min(0.0)
        total = total + sum((-sq / (2.0 * h * h)).exp().sum() for h in bandwidths)
    if exclude_diagonal:
        total = total - len(bandwidths) * x.shape[0]
    return total


def mmd(
    samples: ArrayLike, reference: ArrayLike, bandwidth: float | None = None, block_size: int = 2048
) -> float:
    """Unbiased squared MMD between ``samples`` ``(n, D)`` and ``reference`` ``(m, D)``.

    ``bandwidth`` is ``h`` above, by default the median pairwise distance of ``reference``.
    """
    a, b = _pair(samples, reference)
    h = median_distance(b) if bandwidth is None else bandwidth
    if not h > 0:
        raise DataError("the reference set has zero spread; give a positive bandwidth")
    hs = [s * h for s in BANDWIDTH_SCALES]
    n, m = a.shape[0], b.shape[0]
    k_aa = _kernel_sum(a, a, hs, block_size, exclude_diagonal=True) / (n * (n - 1))
    k_bb = _kernel_sum(b, b, hs, block_size, exclude_diagonal=True) / (m * (m - 1))
    k_ab = _kernel_sum(a, b, hs, block_size, exclude_diagonal=False) / (n * m)
    return float(k_aa + k_bb - 2.0 * k_ab)


def wasserstein_1d_squared(a_sorted: torch.Tensor, b_sorted: torch.Tensor) -> torch.Tensor:
    """Exact ``W_2^2`` between the empirical measures in each row of sorted ``(L, n)``, ``(L, m)``.

    Both quantile functions are constant between consecutive levels of ``{i/n} U {j/m}``, so
    the integral is a finite sum over those intervals.
    """
    n, m = a_sorted.shape[1], b_sorted.shape[1]
    steps = [
        torch.arange(1, k + 1, dtype=a_sorted.dtype, device=a_sorted.device) / k for k in (n, m)
    ]
    levels = torch.unique(torch.cat(steps))
    widths = torch.diff(levels, prepend=levels.new_zeros(1))
    mid = levels - widths / 2
    ia = (mid * n).floor().long().clamp(max=n - 1)
    ib = (mid * m).floor().long().clamp(max=m - 1)
    return ((a_sorted[:, ia] - b_sorted[:, ib]).square() * widths).sum(1)


def sliced_wasserstein(
    samples: ArrayLike, reference: ArrayLike, num_projections: int = 256, seed: int = 0
) -> float:
    """Sliced 2-Wasserstein distance between ``samples`` ``(n, D)`` and ``reference`` ``(m, D)``."""
    a, b = _pair(samples, reference)
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(a.shape[1], num_projections, generator=gen, dtype=torch.float64)
    theta = (theta / theta.norm(dim=0, keepdim=True)).to(a.device)
    pa = (a @ theta).T.sort(1).values
    pb = (b @ theta).T.sort(1).values
    return float(wasserstein_1d_squared(pa, pb).mean().sqrt())
