"""Mode collapse on a mixture of Gaussians with known centres (VEEGAN / PacGAN protocol).

Each sample is registered to its nearest centre ``c_k``. It is *high quality* if it lies within
three standard deviations of that centre, ``||x - c_k|| <= 3 std``. A mode is *captured* when
the number of high-quality samples registered to it is at least ``min_count``; the default is
PacGAN's rule of 20 samples out of 2,500 drawn on 25 modes, i.e. a fifth of a mode's fair share,
``min_count = 0.2 * N / K``. The *reverse KL* compares the histogram ``p`` of the high-quality
samples over the ``K`` modes with the uniform target:

    KL(p || U) = sum_k p_k log(K p_k)        (0 when balanced, log K when all in one mode)

References: Srivastava et al. 2017, "VEEGAN: Reducing Mode Collapse in GANs using Implicit
Variational Learning"; Lin et al. 2018, "PacGAN: The power of two samples in generative
adversarial networks".
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from probgen.metrics._arrays import as_float64

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

FAIR_SHARE_FRACTION = 0.2


def mode_statistics(
    samples: ArrayLike, centres: ArrayLike, std: float, min_count: float | None = None
) -> dict:
    """Modes captured, high-quality fraction and reverse KL of ``samples`` (N, D) vs ``centres``.

    Returns ``dict(modes=int, high_quality=float, reverse_kl=float)``; ``reverse_kl`` is NaN when
    no sample is high quality (the histogram is undefined). ``min_count`` overrides the capture
    threshold ``0.2 * N / K``.
    """
    x = as_float64(samples, "samples", ndim=2)
    c = as_float64(centres, "centres", ndim=2)
    sq_dist = (x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :]
    nearest = sq_dist.argmin(1)
    dist = np.sqrt(np.maximum(sq_dist[np.arange(len(x)), nearest], 0.0))
    high_quality = dist <= 3.0 * std
    counts = np.bincount(nearest[high_quality], minlength=len(c))
    threshold = FAIR_SHARE_FRACTION * len(x) / len(c) if min_count is None else min_count
    n_hq = int(high_quality.sum())
    if n_hq == 0:
        reverse_kl = math.nan
    else:
        p = counts[counts > 0] / n_hq
        reverse_kl = float(np.sum(p * np.log(len(c) * p)))
    return {
        "modes": int(np.sum(counts >= threshold)),
        "high_quality": float(high_quality.mean()) if len(x) else math.nan,
        "reverse_kl": reverse_kl,
    }
