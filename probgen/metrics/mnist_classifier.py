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
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from probgen.errors import DataError

if TYPE_CHECKING:
    from importlib.abc import Traversable

WEIGHTS_FILE = "mnist_classifier.safetensors"
FEATURE_DIM = 64
NUM_CLASSES = 10
MAX_INTENSITY = 255.0
SIDE = 28


class MnistClassifier(nn.Module):
    """Conv(32) - pool - Conv(64) - pool - Conv(64) - pool - Linear(64) - Linear(10), 28x28."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 3 * 3, FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        """Digits in data units, ``(N, 1, 28, 28)`` or ``(N, 784)``, as ``(N, 1, 28, 28)``
        in 0..1."""
        if x.ndim == 2 and x.shape[1] == SIDE * SIDE:
            x = x.reshape(-1, 1, SIDE, SIDE)
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, SIDE, SIDE):
            raise DataError(
                "the MNIST classifier takes (N, 1, 28, 28) or (N, 784) images, "
                f"got {tuple(x.shape)}"
            )
        return x.to(torch.float32) / MAX_INTENSITY

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations ``(N, 64)``."""
        return self.body(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, 10)``."""
        return self.head(self.features(x))


def _weights_path() -> Traversable:
    return resources.files("probgen.metrics") / "weights" / WEIGHTS_FILE


def load_mnist_classifier(device: torch.device | str = "cpu") -> MnistClassifier:
    """The shipped classifier in evaluation mode on ``device``."""
    model = MnistClassifier()
    with resources.as_file(_weights_path()) as file:
        model.load_state_dict(load_file(str(file)))
    return model.eval().to(device)


def training_record() -> dict[str, str]:
    """What the weights file records of its training: held-out accuracy, data, epochs, seed."""
    with resources.as_file(_weights_path()) as file, safe_open(str(file), "pt") as f:
        return dict(f.metadata() or {})
