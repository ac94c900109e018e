"""What a classifier says of samples: its confidence and how many classes it sees.

From class probabilities ``p(c|x_i)`` of ``N`` samples over ``K`` classes:

    confidence = 1/N sum_i max_c p(c|x_i)            (mean top-class probability)
    n_c        = #{i : argmax_c p(c|x_i) = c}        (histogram of predicted classes)
    classes    = #{c : n_c >= 0.2 N / K}

Confidence is near 1 for crisp samples of some class and near ``1/K`` for ambiguous ones (blur,
noise, mixtures of digits); it says nothing of diversity. ``classes`` counts the classes that get
at least a fifth of their fair share of predictions (PacGAN's capture rule, as in
:mod:`probgen.metrics.modes`), so a model that collapses onto a few digits covers few classes;
it says nothing of quality, since an unsure classifier still names some class.

References: Salimans et al. 2016, "Improved Techniques for Training GANs" (confident, varied
predictions, which the Inception Score combines into one number); Lin et al. 2018, "PacGAN: The
power of two samples in generative adversarial networks" (the capture rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from probgen.errors import DataError
from probgen.metrics._arrays import as_float64_tensor

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

FAIR_SHARE_FRACTION = 0.2


@dataclass(frozen=True)
class ClassStatistics:
    """Mean top-class probability, classes covered and the histogram of predicted classes."""

    confidence: float
    classes: int
    histogram: tuple[int, ...]


def class_statistics(probabilities: ArrayLike, min_count: float | None = None) -> ClassStatistics:
    """Confidence and classes covered of class probabilities ``(N, K)`` (rows sum to 1).

    ``min_count`` overrides the threshold ``0.2 * N / K`` of predictions a class needs to count.
    """
    p = as_float64_tensor(probabilities, "probabilities", ndim=2)
    if p.shape[0] == 0:
        raise DataError("class statistics need at least one sample")
    if (p < 0).any() or not torch.allclose(p.sum(1), p.new_ones(p.shape[0]), atol=1e-6):
        raise DataError("probabilities must be non-negative and sum to 1 on every row")
    top, predicted = p.max(1)
    counts = torch.bincount(predicted, minlength=p.shape[1])
    threshold = FAIR_SHARE_FRACTION * p.shape[0] / p.shape[1] if min_count is None else min_count
    return ClassStatistics(
        confidence=float(top.mean()),
        classes=int((counts >= threshold).sum()),
        histogram=tuple(int(c) for c in counts),
    )
