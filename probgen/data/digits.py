"""scikit-learn's bundled 8x8 handwritten digits (no download).

1797 images of 8x8 intensities in {0, ..., 16} with labels 0-9. The split is fixed: a
permutation from ``numpy.random.RandomState(0)``, the first 1500 for training and the last 297
for testing, so every family and metric sees the same held-out set.
"""

from __future__ import annotations

import numpy as np

DIGITS_LEVELS = 17
DIGITS_TRAIN_SIZE = 1500


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_x, train_y, test_x, test_y)``; images as float32 ``(N, 1, 8, 8)`` in 0..16."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32)[:, None]
    labels = bunch.target.astype(np.int64)
    perm = np.random.RandomState(0).permutation(len(images))
    train, test = perm[:DIGITS_TRAIN_SIZE], perm[DIGITS_TRAIN_SIZE:]
    return images[train], labels[train], images[test], labels[test]
