"""Blur as the variance of the Laplacian of each image.

    sharpness(x) = Var_{c, i, j} (Delta x)_{c, i, j},   Delta = [[0, 1, 0], [1, -4, 1], [0, 1, 0]]

applied per channel without padding (only interior pixels, so borders add no artificial edges).
Blurring removes high frequencies, which the Laplacian measures, so blurred samples score below
real images in the same units: compare generated against real, never across datasets.

References: Pech-Pacheco et al. 2000, "Diatom autofocusing in brightfield microscopy: a
comparative study".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch.nn.functional as F

from probgen.errors import DataError
from probgen.metrics._arrays import as_float64_tensor

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def laplacian_variance(images: ArrayLike) -> np.ndarray:
    """Variance of the Laplacian of each image in ``images`` ``(N, C, H, W)``, shape ``(N,)``."""
    x = as_float64_tensor(images, "images", ndim=4)
    n, c, h, w = x.shape
    if h < 3 or w < 3:
        raise DataError(f"images must be at least 3x3 for a Laplacian, got {h}x{w}")
    kernel = x.new_tensor(LAPLACIAN).expand(c, 1, 3, 3)
    lap = F.conv2d(x, kernel, groups=c)
    return lap.reshape(n, -1).var(1, unbiased=False).cpu().numpy()


def sharpness(images: ArrayLike) -> float:
    """Mean over images of :func:`laplacian_variance`."""
    return float(laplacian_variance(images).mean())
