"""The digits classifier that ships with probgen: features, probabilities and class histograms.

A small CNN for scikit-learn's 8x8 digits in data units (intensities 0..16, shape (N, 1, 8, 8) or
(N, 64)), trained by ``scripts/train_digits_classifier.py`` on the training part of
:func:`probgen.data.digits.load_digits_split` only. Its 64-dimensional penultimate activations
are the features for FID, KID and precision/recall on digits (the role Inception-v3's pool
features play for natural images), and its softmax gives the Inception Score and the histogram
of generated classes. The weights load from the package; nothing is downloaded.
"""

from __future__ import annotations

import torch

from probgen.metrics.shipped_classifier import (
    FEATURE_DIM,
    NUM_CLASSES,
    ShippedClassifier,
    load_shipped,
)

WEIGHTS_FILE = "digits_classifier.safetensors"
MAX_INTENSITY = 16.0
__all__ = ["FEATURE_DIM", "NUM_CLASSES", "WEIGHTS_FILE", "DigitsClassifier"]


class DigitsClassifier(ShippedClassifier):
    """Conv(32) - Conv(64) - pool - Conv(64) - pool - Linear(64) - Linear(10) on 8x8 digits."""

    side = 8
    max_intensity = MAX_INTENSITY
    name = "digits"
    pools = (False, True, True)


def load_digits_classifier(device: torch.device | str = "cpu") -> DigitsClassifier:
    """The shipped classifier in evaluation mode on ``device``."""
    return load_shipped(DigitsClassifier, WEIGHTS_FILE, device)
