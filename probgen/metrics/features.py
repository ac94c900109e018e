"""Feature extractors for image metrics, chosen by a spec string.

==========================================  ==================================================
spec                                        features (and class probabilities, where any)
==========================================  ==================================================
``digits``                                  the shipped digits classifier's 64 penultimate
                                            activations; its softmax gives probabilities
``mnist``                                   the shipped MNIST classifier's 64 penultimate
                                            activations (28x28 digits, 0..255); its softmax
                                            gives probabilities
``pixels``                                  the flattened images in data units
``inception:/path/pt_inception-2015-12-05``  Inception-v3 pool features (2048) and softmax of
                                            its logits, the standard FID network, loaded from
                                            the local weights file through torch-fidelity
``package.module:function``                 ``function(images) -> (N, d)``, a user's own
==========================================  ==================================================

Images arrive as ``(N, C, H, W)`` in the data's own units (0..16 for digits, 0..255 for MNIST).
:func:`default_feature_for` picks the shipped network that reads an image shape, else pixels
(see :data:`PIXEL_FALLBACK`). Nothing is ever downloaded: Inception's weights must be a local
file (the standard ``pt_inception-2015-12-05-6726825d.pth`` of pytorch-fid / torch-fidelity).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from probgen.errors import ConfigError, DataError
from probgen.metrics.digits_classifier import load_digits_classifier
from probgen.metrics.mnist_classifier import load_mnist_classifier

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

FEATURE_SPECS = ("digits", "mnist", "pixels", "inception:PATH", "module:callable")
BATCH_SIZE = 500
SHIPPED_FEATURES = {(1, 8, 8): "digits", (1, 28, 28): "mnist"}
PIXEL_FALLBACK = (
    "images of other shapes are compared on their pixels: FID, KID, precision/recall/density/"
    "coverage, sharpness and memorisation apply; the Inception Score, classifier confidence and "
    "classes covered need class probabilities and are skipped (give --feature inception:PATH or "
    "module:callable for a network)"
)


def default_feature_for(event_shape: Sequence[int]) -> str:
    """The feature spec for images of ``event_shape`` ``(C, H, W)``: ``"digits"`` for
    ``(1, 8, 8)``, ``"mnist"`` for ``(1, 28, 28)``, else ``"pixels"`` (:data:`PIXEL_FALLBACK`)."""
    return SHIPPED_FEATURES.get(tuple(int(d) for d in event_shape), "pixels")


def _as_images(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(images).detach().to(torch.float32)
    if x.ndim != 4:
        raise DataError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    return x


class FeatureExtractor:
    """Maps images in data units to ``(N, d)`` features; some also give class probabilities."""

    name = "base"
    has_probabilities = False

    def features(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Float features ``(N, d)``."""
        raise NotImplementedError

    def probabilities(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, classes)``; only where :attr:`has_probabilities`."""
        raise ConfigError(f"feature extractor {self.name!r} gives no class probabilities")


class PixelFeatures(FeatureExtractor):
    """The images themselves, flattened."""

    name = "pixels"

    def features(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = _as_images(images)
        return x.reshape(x.shape[0], -1)


class NetworkFeatures(FeatureExtractor):
    """A network's features and softmax probabilities, evaluated in batches without gradients.

    ``run(batch) -> (features, logits)`` takes a float32 batch in data units.
    """

    has_probabilities = True

    def __init__(self, name: str, run: Callable, device: torch.device | str = "cpu") -> None:
        self.name = name
        self.run = run
        self.device = torch.device(device)

    def _outputs(self, images: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _as_images(images)
        feats, logits = [], []
        with torch.no_grad():
            for batch in x.split(BATCH_SIZE):
                f, lg = self.run(batch.to(self.device))
                feats.append(f.cpu())
                logits.append(lg.cpu())
        return torch.cat(feats), torch.cat(logits)

    def features(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self._outputs(images)[0]

    def probabilities(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self._outputs(images)[1].to(torch.float64).softmax(1)


def _classifier_features(
    name: str, model: nn.Module, device: torch.device | str
) -> NetworkFeatures:
    """A shipped classifier's penultimate ``features`` and the logits of its ``head``."""

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = model.features(x)
        return f, model.head(f)

    return NetworkFeatures(name, run, device)


def digits_features(device: torch.device | str = "cpu") -> NetworkFeatures:
    """The shipped digits classifier (8x8 digits, intensities 0..16)."""
    return _classifier_features("digits", load_digits_classifier(device), device)


def mnist_features(device: torch.device | str = "cpu") -> NetworkFeatures:
    """The shipped MNIST classifier (28x28 digits, intensities 0..255)."""
    return _classifier_features("mnist", load_mnist_classifier(device), device)


def inception_features(
    weights_path: str,
    value_range: tuple[float, float],
    device: torch.device | str = "cpu",
) -> NetworkFeatures:
    """Inception-v3 (FID weights from ``weights_path``); images are mapped from ``value_range``
    to 0..255 bytes and grey images repeated to three channels, as the network expects."""
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"Inception weights not found at {str(path)!r}: give the local path of "
            "pt_inception-2015-12-05-6726825d.pth (probgen never downloads weights)"
        )
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import (
            FeatureExtractorInceptionV3,
        )
    except ImportError as err:
        raise ConfigError(
            "Inception features need the torch-fidelity package: pip install torch-fidelity"
        ) from err
    net = FeatureExtractorInceptionV3(
        "inception-v3-compat",
        ["2048", "logits_unbiased"],
        feature_extractor_weights_path=str(path),
    ).to(device)
    low, high = value_range

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = ((x - low) / (high - low) * 255.0).round().clamp(0, 255).to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        feats, logits = net(x)
        return feats, logits

    return NetworkFeatures("inception", run, device)


class CallableFeatures(FeatureExtractor):
    """A user's ``module:callable``; it receives float32 images ``(N, C, H, W)`` in data units."""

    def __init__(self, spec: str) -> None:
        module_name, _, attr = spec.partition(":")
        try:
            self.fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"cannot load feature extractor {spec!r}: {err}") from err
        if not callable(self.fn):
            raise ConfigError(f"feature extractor {spec!r} is not callable")
        self.name = spec

    def features(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        out = torch.as_tensor(self.fn(_as_images(images))).detach()
        if out.ndim != 2:
            raise DataError(f"feature extractor {self.name!r} returned shape {tuple(out.shape)}")
        return out.cpu()


def load_feature_extractor(
    spec: str,
    *,
    value_range: tuple[float, float] | None = None,
    device: torch.device | str = "cpu",
) -> FeatureExtractor:
    """The extractor named by ``spec`` (see the module table); ``value_range`` is the data's
    intensity range, needed only by Inception."""
    if spec == "digits":
        return digits_features(device)
    if spec == "mnist":
        return mnist_features(device)
    if spec == "pixels":
        return PixelFeatures()
    if spec.startswith("inception:"):
        if value_range is None:
            raise ConfigError("Inception features need the data's value_range, e.g. (0, 255)")
        return inception_features(spec.removeprefix("inception:"), value_range, device)
    if ":" in spec:
        return CallableFeatures(spec)
    raise ConfigError(f"unknown feature extractor {spec!r}; valid: {', '.join(FEATURE_SPECS)}")
