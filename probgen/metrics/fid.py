"""Fréchet distance between Gaussians fitted to two sets of features (FID when the features
are Inception-v3's pool features; the same formula on any extractor's features).

    FID = ||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^{1/2})

with ``mu`` the feature means and ``S`` the unbiased covariances (divisor ``N - 1``), all in
float64. ``Tr((S_a S_b)^{1/2})`` is the sum of square roots of the eigenvalues of ``S_a S_b``,
which equal those of the symmetric positive semi-definite ``A^T S_b A`` for any factor
``S_a = A A^T``. ``A`` is the Cholesky factor of ``S_a``, or, when ``S_a`` is singular and
Cholesky fails, ``V diag(sqrt(lambda))`` from ``eigh(S_a)``; scipy's ``sqrtm(S_a S_b)`` is the
last resort. A symmetric eigenvalue problem is stable (no imaginary round-off) and about three
times faster than the general ``eig(S_a S_b)`` or ``sqrtm`` on 2048 x 2048 matrices.

FID is biased upwards at finite N (the covariance estimates are noisy and the trace of the
square root is concave); compare values only at equal N, and see docs/metrics.md for its size.

References: Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
Nash Equilibrium"; Dowson & Landau 1982, "The Fréchet distance between multivariate normal
distributions".
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg
import torch

from probgen.errors import DataError
from probgen.metrics._arrays import as_float64_tensor

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


@dataclass(frozen=True)
class FIDResult:
    """A Fréchet distance with the sample sizes and feature dimension it was computed from."""

    value: float
    n_a: int
    n_b: int
    dim: int

    def __float__(self) -> float:
        return self.value


def _gram(x: torch.Tensor, block: int = 512) -> torch.Tensor:
    """``x^T x``, computing only the blocks on and above the diagonal (about half the work)."""
    d = x.shape[1]
    out = x.new_empty(d, d)
    starts = range(0, d, block)
    for i in starts:
        for j in starts[i // block :]:
            product = x[:, i : i + block].T @ x[:, j : j + block]
            out[i : i + block, j : j + block] = product
            out[j : j + block, i : i + block] = product.T
    return out


def mean_and_covariance(features: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 mean ``(d,)`` and unbiased covariance ``(d, d)`` of ``features`` ``(N, d)``."""
    x = as_float64_tensor(features, "features", ndim=2)
    if x.shape[0] < 2:
        raise DataError(f"a covariance needs at least 2 feature vectors, got {x.shape[0]}")
    mu = x.mean(0)
    return mu, _gram(x - mu) / (x.shape[0] - 1)


def _sum_sqrt_eigenvalues(a: torch.Tensor, s2: torch.Tensor) -> float:
    m = a.T @ s2 @ a
    return float(torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0.0).sqrt().sum())


def _trace_sqrt_cholesky(s1: torch.Tensor, s2: torch.Tensor) -> float:
    factor, info = torch.linalg.cholesky_ex(s1)
    return math.nan if info.item() else _sum_sqrt_eigenvalues(factor, s2)


def _trace_sqrt_eigh(s1: torch.Tensor, s2: torch.Tensor) -> float:
    try:
        lam, v = torch.linalg.eigh(s1)
    except torch.linalg.LinAlgError:
        return math.nan
    return _sum_sqrt_eigenvalues(v * lam.clamp_min(0.0).sqrt(), s2)


def trace_sqrt_product(sigma1: ArrayLike, sigma2: ArrayLike) -> float:
    """``Tr((S1 S2)^{1/2})`` for symmetric positive semi-definite ``S1``, ``S2``."""
    s1 = as_float64_tensor(sigma1, "sigma1", ndim=2)
    s2 = as_float64_tensor(sigma2, "sigma2", ndim=2).to(s1.device)
    for route in (_trace_sqrt_cholesky, _trace_sqrt_eigh):
        value = route(s1, s2)
        if math.isfinite(value):
            return value
    product = s1.cpu().numpy() @ s2.cpu().numpy()
    return float(np.trace(scipy.linalg.sqrtm(product)).real)


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})`` between two Gaussians, in float64."""
    m1 = as_float64_tensor(mu1, "mu1", ndim=1)
    m2 = as_float64_tensor(mu2, "mu2", ndim=1).to(m1.device)
    s1 = as_float64_tensor(sigma1, "sigma1", ndim=2).to(m1.device)
    s2 = as_float64_tensor(sigma2, "sigma2", ndim=2).to(m1.device)
    if not (m1.shape == m2.shape and s1.shape == s2.shape == (m1.shape[0],) * 2):
        raise DataError(
            f"mismatched Gaussians: means {tuple(m1.shape)}, {tuple(m2.shape)}; "
            f"covariances {tuple(s1.shape)}, {tuple(s2.shape)}"
        )
    mean_term = float((m1 - m2).square().sum())
    return mean_term + float(s1.trace() + s2.trace()) - 2.0 * trace_sqrt_product(s1, s2)


def fid(features_a: ArrayLike, features_b: ArrayLike) -> FIDResult:
    """Fréchet distance between Gaussians fitted to ``features_a`` ``(N_a, d)`` and ``features_b``.

    Warns when either N is not larger than ``d``: the covariance is then singular and the value
    is dominated by estimation error.
    """
    a = as_float64_tensor(features_a, "features_a", ndim=2)
    b = as_float64_tensor(features_b, "features_b", ndim=2)
    (n_a, dim), n_b = a.shape, b.shape[0]
    if b.shape[1] != dim:
        raise DataError(f"feature dimensions differ: {dim} and {b.shape[1]}")
    if min(n_a, n_b) <= dim:
        warnings.warn(
            f"FID with N = {min(n_a, n_b)} samples <= feature dimension {dim}: the covariance is "
            "singular and the value is strongly biased; use more samples",
            stacklevel=2,
        )
    mu_a, sigma_a = mean_and_covariance(a)
    mu_b, sigma_b = mean_and_covariance(b.to(a.device))
    return FIDResult(frechet_distance(mu_a, sigma_a, mu_b, sigma_b), n_a, n_b, dim)
