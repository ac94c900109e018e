"""The MNIST classifier that ships with probgen: features and probabilities for 28x28 digits.

A small CNN for MNIST in data units (intensities 0..255, shape (N, 1, 28, 28) or (N, 784)),
trained by ``scripts/train_mnist_classifier.py`` on the training split of
``load_dataset("mnist")`` only. Its 64-dimensional penultimate activations are the features for
FID, KID and precision/recall on 28x28 digits (the role Inception-v3's pool features play for
natural images), and its softmax gives the Inception Score, the classifier confidence and the
classes covered. The weights load from the package; nothing is downloaded.
"""

from __future__ import annotations

from importlib import resources

import torch
from safetensors import safe_open

from probgen.metrics.shipped_classifier import (
    FEATURE_DIM,
    NUM_CLASSES,
    ShippedClassifier,
    load_shipped,
    weights_path,
)

WEIGHTS_FILE = "mnist_classifier.safetensors"
MAX_INTENSITY = 255.0
SIDE = 28
__all__ = ["FEATURE_DIM", "NUM_CLASSES", "SIDE", "WEIGHTS_FILE", "MnistClassifier"]


class MnistClassifier(ShippedClassifier):
    """Conv(32) - pool - Conv(64) - pool - Conv(64) - pool - Linear(64) - Linear(10), 28x28."""

    side = SIDE
    max_intensity = MAX_INTENSITY
    name = "MNIST"
    pools = (True, True, True)


def load_mnist_classifier(device: torch.device | str = "cpu") -> MnistClassifier:
    """The shipped classifier in evaluation mode on ``device``."""
    return load_shipped(MnistClassifier, WEIGHTS_FILE, device)


def training_record() -> dict[str, str]:
    """What the weights file records of its training: held-out accuracy, data, epochs, seed."""
    path = weights_path(WEIGHTS_FILE)
    with resources.as_file(path) as file, safe_open(str(file), "pt") as f:
        return dict(f.metadata() or {})
