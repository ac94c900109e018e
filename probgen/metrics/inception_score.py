"""Inception Score from a classifier's class probabilities.

    IS = exp( E_x KL( p(y|x) || p(y) ) ),    p(y) = E_x p(y|x)

computed on ``splits`` equal chunks of the samples and reported as the mean and standard
deviation (ddof = 1, as torchmetrics) over chunks. It ranges from 1 (every prediction equal) to
the number of classes (confident predictions spread evenly over all classes); it never looks at
real data, so it cannot see samples that are confident but unlike the data.

References: Salimans et al. 2016, "Improved Techniques for Training GANs"; Barratt & Sharma
2018, "A Note on the Inception Score".
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
class InceptionScoreResult:
    """Mean and standard deviation of the Inception Score over ``splits`` chunks."""

    mean: float
    std: float
    splits: int


def inception_score(probabilities: ArrayLike, splits: int = 10) -> InceptionScoreResult:
    """IS of class probabilities ``(N, C)`` (rows sum to 1) over ``splits`` chunks, in order."""
    p = as_float64_tensor(probabilities, "probabilities", ndim=2)
    if p.shape[0] < splits:
        raise DataError(f"Inception Score needs at least {splits} samples, got {p.shape[0]}")
    if (p < 0).any() or not torch.allclose(p.sum(1), p.new_ones(p.shape[0]), atol=1e-6):
        raise DataError("probabilities must be non-negative and sum to 1 on every row")
    scores = []
    for chunk in torch.tensor_split(p, splits):
        marginal = chunk.mean(0, keepdim=True)
        kl = (torch.xlogy(chunk, chunk) - torch.xlogy(chunk, marginal)).sum(1)
        scores.append(kl.mean().exp())
    s = torch.stack(scores)
    return InceptionScoreResult(float(s.mean()), float(s.std()) if splits > 1 else 0.0, splits)
