"""The digits classifier that ships with probgen: features, probabilities and class histograms.

A small CNN for scikit-learn's 8x8 digits in data units (intensities 0..16, shape (N, 1, 8, 8) or
(N, 64)), trained by ``scripts/train_digits_classifier.py`` on the training part of
:func:`probgen.data.digits.load_digits_split` only. Its 64-dimensional penultimate activations
are the features for FID, KID and precision/recall on digits (the role Inception-v3's pool
features play for natural images), and its softmax gives the Inception Score and the histogram
of generated classes. The weights load from the package; nothing is downloaded.
"""

from __future__ import annotations

from importlib import resources

import torch
from safetensors.torch import load_file
from torch import nn

from probgen.errors import DataError

WEIGHTS_FILE = "digits_classifier.safetensors"
FEATURE_DIM = 64
NUM_CLASSES = 10
MAX_INTENSITY = 16.0


class DigitsClassifier(nn.Module):
    """Conv(32) - Conv(64) - pool - Conv(64) - pool - Linear(64) - Linear(10) on 8x8 digits."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 2 * 2, FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        """Digits in data units, ``(N, 1, 8, 8)`` or ``(N, 64)``, as ``(N, 1, 8, 8)`` in 0..1."""
        if x.ndim == 2 and x.shape[1] == 64:
            x = x.reshape(-1, 1, 8, 8)
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise DataError(
                f"the digits classifier takes (N, 1, 8, 8) or (N, 64) images, got {tuple(x.shape)}"
            )
        return x.to(torch.float32) / MAX_INTENSITY

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations ``(N, 64)``."""
        return self.body(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, 10)``."""
        return self.head(self.features(x))


def load_digits_classifier(device: torch.device | str = "cpu") -> DigitsClassifier:
    """The shipped classifier in evaluation mode on ``device``."""
    model = DigitsClassifier()
    path = resources.files("probgen.metrics") / "weights" / WEIGHTS_FILE
    with resources.as_file(path) as file:
        model.load_state_dict(load_file(str(file)))
    return model.eval().to(device)
