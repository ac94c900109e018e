"""What the digit classifiers shipped with probgen share: input checks, features, logits and
loading their weights from the package (never downloaded).

Every one is the same small CNN (:func:`conv_body`, then a linear ``head`` to the class logits);
a subclass says which images it reads (``side``, ``max_intensity``, ``name``) and after which
convolutions the network pools (``pools``).
"""

from __future__ import annotations

from importlib import resources
from typing import ClassVar, TypeVar

import torch
from safetensors.torch import load_file
from torch import nn

from probgen.errors import DataError

FEATURE_DIM = 64
NUM_CLASSES = 10

Classifier = TypeVar("Classifier", bound="ShippedClassifier")


def conv_body(side: int, pools: tuple[bool, ...]) -> nn.Sequential:
    """``(N, 1, side, side) -> (N, FEATURE_DIM)``: 3x3 convolutions of 32, 64 and 64 channels
    with ReLU, each followed by a 2x2 max-pool where ``pools`` says, then a linear layer of the
    flattened map to ``FEATURE_DIM`` with ReLU (the penultimate activations)."""
    layers: list[nn.Module] = []
    channels = 1
    for width, pool in zip((32, 64, 64), pools, strict=True):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        if pool:
            layers.append(nn.MaxPool2d(2))
            side //= 2
        channels = width
    layers += [nn.Flatten(), nn.Linear(channels * side * side, FEATURE_DIM), nn.ReLU()]
    return nn.Sequential(*layers)


class ShippedClassifier(nn.Module):
    """A CNN on ``(N, 1, side, side)`` digits in data units (0..``max_intensity``)."""

    side: ClassVar[int]
    max_intensity: ClassVar[float]
    name: ClassVar[str]
    pools: ClassVar[tuple[bool, bool, bool]]

    def __init__(self) -> None:
        super().__init__()
        self.body = conv_body(self.side, self.pools)
        self.head = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Digits in data units, ``(N, 1, side, side)`` or ``(N, side**2)``, as
        ``(N, 1, side, side)`` in 0..1."""
        s = self.side
        if x.ndim == 2 and x.shape[1] == s * s:
            x = x.reshape(-1, 1, s, s)
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, s, s):
            raise DataError(
                f"the {self.name} classifier takes (N, 1, {s}, {s}) or (N, {s * s}) images, "
                f"got {tuple(x.shape)}"
            )
        return x.to(torch.float32) / self.max_intensity

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations ``(N, FEATURE_DIM)``."""
        return self.body(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, NUM_CLASSES)``."""
        return self.head(self.features(x))


def weights_path(weights_file: str) -> resources.abc.Traversable:
    """The shipped weights file ``weights_file`` inside the package."""
    return resources.files("probgen.metrics") / "weights" / weights_file


def load_shipped(
    cls: type[Classifier], weights_file: str, device: torch.device | str = "cpu"
) -> Classifier:
    """``cls()`` with its shipped weights, in evaluation mode on ``device``."""
    model = cls()
    with resources.as_file(weights_path(weights_file)) as file:
        model.load_state_dict(load_file(str(file)))
    return model.eval().to(device)
