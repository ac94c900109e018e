"""Memorisation: are samples closer to the training images than fresh data from the same source?

For each sample ``x`` and each held-out test image ``t``, the distance to the nearest training
image is ``d(x) = min_j ||x - train_j||_2``. The ratio of medians

    memorisation = median_x d(x) / median_t d(t)      (medians interpolated, as numpy's)

is about 1 for a model that generalises (its samples are as far from the training set as new
data are), above 1 for samples unlike any data, and well below 1 when samples copy training
images: a ratio < 0.6 (:data:`COPYING_THRESHOLD`) flags copying, and exact copies give 0. Images
are compared on pixels scaled to [0, 1] (``value_range``), flattened; the ratio itself does not
depend on that scaling, the medians are reported in its units. The ratio sees only the typical
sample: a model that copies a few images among many novel ones keeps a ratio near 1 (look at
``copied``, the fraction of samples nearer to the training set than the closest 1% of test
images are).

Distances are computed in blocks of queries against blocks of training images, so memory stays
at ``block x block`` numbers and the training set is not copied; the nearest neighbour is
searched in float32 and its distance recomputed in float64 on the unscaled values (exact copies
give exactly 0), then scaled by ``1 / (high - low)``.

References: Meehan, Chaudhuri & Dasgupta 2020, "A Non-Parametric Test to Detect Data-Copying
in Generative Models" (the comparison of sample-to-train with test-to-train distances);
van den Burg & Williams 2021, "On Memorization in Probabilistic Deep Generative Models".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from probgen.errors import DataError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

COPYING_THRESHOLD = 0.6
COPIED_QUANTILE = 0.01
BLOCK_SIZE = 1024


@dataclass(frozen=True)
class MemorisationResult:
    """``ratio`` = ``sample_median / test_median``; ``copied`` as in the module docstring."""

    ratio: float
    sample_median: float
    test_median: float
    copied: float

    @property
    def copying(self) -> bool:
        """Whether the ratio is below :data:`COPYING_THRESHOLD`."""
        return self.ratio < COPYING_THRESHOLD


def _flat(x: ArrayLike, name: str) -> torch.Tensor:
    """``x`` as ``(N, D)`` float (float32 kept, anything else float64), checked to be finite."""
    t = torch.as_tensor(x).detach()
    if t.dtype != torch.float32:
        t = t.to(torch.float64)
    if t.ndim < 2 or t.shape[0] == 0:
        raise DataError(f"{name} must be a non-empty batch (N, ...), got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise DataError(f"{name} contains NaN or infinite values")
    return t.reshape(t.shape[0], -1)


def nearest_distances(
    queries: ArrayLike, reference: ArrayLike, block_size: int = BLOCK_SIZE
) -> torch.Tensor:
    """``min_j ||queries_i - reference_j||_2`` for each row of ``queries`` ``(n, D)``, as
    float64 ``(n,)``; ``reference`` is ``(m, D)`` (float32 is kept as it is, not copied)."""
    q = _flat(queries, "queries")
    r = _flat(reference, "reference").to(q.device)
    if q.shape[1] != r.shape[1]:
        raise DataError(f"dimensions differ: queries {q.shape[1]}, reference {r.shape[1]}")
    nearest = torch.empty(q.shape[0], dtype=torch.long, device=q.device)
    for qs in range(0, q.shape[0], block_size):
        qb = q[qs : qs + block_size].to(torch.float32)
        best = torch.full((qb.shape[0],), float("inf"), device=q.device)
        best_idx = torch.zeros(qb.shape[0], dtype=torch.long, device=q.device)
        for rs in range(0, r.shape[0], block_size):
            rb = r[rs : rs + block_size].to(torch.float32)
            sq = (rb * rb).sum(1) - 2.0 * qb @ rb.T  # + ||q||^2, the same along each row
            value, idx = sq.min(1)
            better = value < best
            best = torch.where(better, value, best)
            best_idx = torch.where(better, idx + rs, best_idx)
        nearest[qs : qs + block_size] = best_idx
    return (q.to(torch.float64) - r[nearest].to(torch.float64)).norm(dim=1)


def memorisation(
    samples: ArrayLike,
    train: ArrayLike,
    test: ArrayLike,
    value_range: tuple[float, float] | None = None,
    block_size: int = BLOCK_SIZE,
) -> MemorisationResult:
    """The memorisation ratio of ``samples`` against the ``train`` images, calibrated by the
    held-out ``test`` images; all ``(N, ...)`` in the same units, mapped from ``value_range``
    to [0, 1] when given (e.g. ``(0, 255)``)."""
    x, tr, te = _flat(samples, "samples"), _flat(train, "train"), _flat(test, "test")
    if not x.shape[1] == tr.shape[1] == te.shape[1]:
        raise DataError(
            f"example sizes differ: samples {x.shape[1]}, train {tr.shape[1]}, test {te.shape[1]}"
        )
    scale = 1.0
    if value_range is not None:
        low, high = value_range
        if not high > low:
            raise DataError(f"value_range must have high > low, got {value_range}")
        scale = 1.0 / (high - low)
    d_x = nearest_distances(x, tr, block_size) * scale
    d_t = nearest_distances(te, tr, block_size) * scale
    sample_median = float(torch.quantile(d_x, 0.5))
    test_median = float(torch.quantile(d_t, 0.5))
    if not test_median > 0:
        raise DataError("the test images are copies of training images: no scale to compare with")
    close = torch.quantile(d_t, COPIED_QUANTILE)
    return MemorisationResult(
        ratio=sample_median / test_median,
        sample_median=sample_median,
        test_median=test_median,
        copied=float((d_x < close).to(torch.float64).mean()),
    )
