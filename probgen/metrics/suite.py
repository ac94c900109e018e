"""One call that scores a set of samples against reference data with the standard metrics.

Vectors ``(N, D)`` are compared directly in data units: ``mmd`` (unbiased Gaussian-kernel MMD^2,
median-heuristic bandwidths from the reference), ``swd`` (sliced 2-Wasserstein), ``precision``,
``recall``, ``density``, ``coverage`` (k = 3), and, given ``mixture=(centres, std)``, ``modes``,
``high_quality`` and ``reverse_kl``. Images ``(N, C, H, W)`` in data units are compared in the
feature space of an extractor (``feature``): ``fid``, ``kid`` (with ``kid_std``), ``is`` (with
``is_std``), ``confidence`` (mean top-class probability) and ``classes`` (classes covered; the
three need class probabilities), ``precision``, ``recall``, ``density``, ``coverage``, and on
the pixels themselves ``sharpness`` (variance of the Laplacian, samples), ``sharpness_real``
(the same for the reference) and, given the ``train`` images, ``memorisation`` (median
sample-to-train over median reference-to-train nearest-neighbour distance, with
``memorisation_copied``; the reference then plays the held-out set).

Every sample and every reference example given is used: N is the caller's choice (report it;
FID's bias depends on it). KID uses subsets of min(1000, N) in 100 draws; IS 10 splits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from probgen.errors import ConfigError, DataError
from probgen.metrics.classes import class_statistics
from probgen.metrics.features import load_feature_extractor
from probgen.metrics.fid import fid
from probgen.metrics.inception_score import inception_score
from probgen.metrics.kid import kid
from probgen.metrics.memorisation import memorisation
from probgen.metrics.modes import mode_statistics
from probgen.metrics.prdc import precision_recall_density_coverage
from probgen.metrics.sample_distances import mmd, sliced_wasserstein
from probgen.metrics.sharpness import sharpness

if TYPE_CHECKING:
    import numpy as np

    from probgen.metrics.features import FeatureExtractor

PRDC_METRICS = ("precision", "recall", "density", "coverage")
MODE_METRICS = ("modes", "high_quality", "reverse_kl")
VECTOR_METRICS = ("mmd", "swd", *PRDC_METRICS, *MODE_METRICS)
CLASS_METRICS = ("is", "confidence", "classes")
IMAGE_METRICS = (
    "fid",
    "kid",
    *CLASS_METRICS,
    *PRDC_METRICS,
    "sharpness",
    "sharpness_real",
    "memorisation",
)
SAMPLE_METRICS = tuple(dict.fromkeys(VECTOR_METRICS + IMAGE_METRICS))


def _as_tensor(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise DataError(f"{name} contain NaN or infinite values")
    return t


def _chosen(
    metrics: Sequence[str] | None,
    kind: str,
    mixture: tuple | None,
    has_probabilities: bool,
    has_train: bool,
) -> list[str]:
    valid = VECTOR_METRICS if kind == "vector" else IMAGE_METRICS
    if metrics is None:
        skipped = set()
        if mixture is None:
            skipped |= set(MODE_METRICS)
        if not has_probabilities:
            skipped |= set(CLASS_METRICS)
        if not has_train:
            skipped.add("memorisation")
        return [m for m in valid if m not in skipped]
    names = list(metrics)
    unknown = [m for m in names if m not in SAMPLE_METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; valid: {', '.join(SAMPLE_METRICS)}")
    wrong_kind = [m for m in names if m not in valid]
    if wrong_kind:
        raise ConfigError(f"metric(s) {wrong_kind} do not apply to {kind}s; valid: {valid}")
    if mixture is None and any(m in MODE_METRICS for m in names):
        raise ConfigError("modes, high_quality and reverse_kl need mixture=(centres, std)")
    if not has_train and "memorisation" in names:
        raise ConfigError("memorisation needs the training images (train=...)")
    return names


def _vector_metrics(
    names: list[str], x: torch.Tensor, ref: torch.Tensor, mixture: tuple | None, seed: int
) -> dict[str, float]:
    out = {}
    if "mmd" in names:
        out["mmd"] = mmd(x, ref)
    if "swd" in names:
        out["swd"] = sliced_wasserstein(x, ref, seed=seed)
    if any(m in names for m in MODE_METRICS):
        centres, std = mixture
        stats = mode_statistics(x, centres, std)
        out.update({m: float(stats[m]) for m in MODE_METRICS if m in names})
    return out


def _image_metrics(
    names: list[str],
    x: torch.Tensor,
    ref: torch.Tensor,
    features: tuple[torch.Tensor, torch.Tensor] | None,
    extractor: FeatureExtractor | None,
    seed: int,
    train: torch.Tensor | None,
    value_range: tuple[float, float] | None,
) -> dict:
    out = {}
    if "fid" in names:
        out["fid"] = fid(*features).value
    if "kid" in names:
        result = kid(*features, seed=seed)
        out.update(kid=result.mean, kid_std=result.std)
    probabilities = None
    if any(m in names for m in CLASS_METRICS):
        probabilities = extractor.probabilities(x)
    if "is" in names:
        result = inception_score(probabilities)
        out.update({"is": result.mean, "is_std": result.std})
    if "confidence" in names or "classes" in names:
        stats = class_statistics(probabilities)
        out.update({m: getattr(stats, m) for m in ("confidence", "classes") if m in names})
    if "sharpness" in names:
        out["sharpness"] = sharpness(x)
    if "sharpness_real" in names:
        out["sharpness_real"] = sharpness(ref)
    if "memorisation" in names:
        result = memorisation(x, train, ref, value_range=value_range)
        out.update(memorisation=result.ratio, memorisation_copied=result.copied)
    return out


def _checked_pair(
    samples: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor, kind: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples and reference as tensors of one example shape, ``(N, D)`` or ``(N, C, H, W)``."""
    if kind not in ("vector", "image"):
        raise ConfigError(f"kind must be 'vector' or 'image', got {kind!r}")
    x, ref = _as_tensor(samples, "samples"), _as_tensor(reference, "reference")
    expected_ndim = 2 if kind == "vector" else 4
    if x.ndim != expected_ndim or x.shape[1:] != ref.shape[1:]:
        raise DataError(
            f"{kind} samples {tuple(x.shape)} and reference {tuple(ref.shape)} must both be "
            f"{'(N, D)' if kind == 'vector' else '(N, C, H, W)'} with the same example shape"
        )
    return x, ref


def _checked_train(
    train: np.ndarray | torch.Tensor | None, ref: torch.Tensor
) -> torch.Tensor | None:
    """The training images for memorisation, refused unless shaped like the reference."""
    train = None if train is None else torch.as_tensor(train)
    if train is not None and train.shape[1:] != ref.shape[1:]:
        raise DataError(
            f"training images {tuple(train.shape)} and reference {tuple(ref.shape)} "
            "must have the same example shape"
        )
    return train


def evaluate_samples(
    samples: np.ndarray | torch.Tensor,
    reference: np.ndarray | torch.Tensor,
    *,
    kind: str,
    metrics: Sequence[str] | None = None,
    feature: str = "digits",
    mixture: tuple | None = None,
    seed: int = 0,
    value_range: tuple[float, float] | None = None,
    train: np.ndarray | torch.Tensor | None = None,
) -> dict[str, float]:
    """Metrics of ``samples`` against ``reference``, both in data units, as ``{name: value}``.

    Args:
        samples: array or tensor, ``(N, D)`` for ``kind="vector"``, ``(N, C, H, W)`` for
            ``kind="image"``; all rows are used.
        reference: the data to compare with, in the same shape and units.
        metrics: names from :data:`SAMPLE_METRICS`; ``None`` picks the defaults for the kind
            (images: all of :data:`IMAGE_METRICS`, ``is``, ``confidence`` and ``classes`` only
            if the extractor has classes, ``memorisation`` only given ``train``;
            vectors: mmd, swd and precision/recall/density/coverage, plus the mode metrics when
            ``mixture`` is given).
        feature: feature extractor spec for images (see :mod:`probgen.metrics.features`).
        mixture: ``(centres (K, D), std)`` of a Gaussian mixture, for the mode metrics.
        seed: seeds KID's subsets and the sliced Wasserstein projections.
        value_range: the images' intensity range, for Inception and memorisation's [0, 1]
            scaling; default: the reference's minimum and maximum.
        train: the training images ``(M, C, H, W)`` the model saw, for ``memorisation``; the
            ``reference`` should then be held-out data.

    Raises:
        ConfigError: an unknown metric, or one that does not apply to ``kind``.
    """
    x, ref = _checked_pair(samples, reference, kind)
    extractor = None
    if kind == "image":
        if value_range is None:
            value_range = (float(ref.min()), float(ref.max()))
        extractor = load_feature_extractor(feature, value_range=value_range)
    has_probabilities = extractor is not None and extractor.has_probabilities
    names = _chosen(metrics, kind, mixture, has_probabilities, train is not None)
    if kind == "vector":
        out = _vector_metrics(names, x, ref, mixture, seed)
        features = (x, ref)
    else:
        features = None
        if any(m in names for m in ("fid", "kid", *PRDC_METRICS)):
            features = (extractor.features(x), extractor.features(ref))
        train = _checked_train(train, ref)
        out = _image_metrics(names, x, ref, features, extractor, seed, train, value_range)
    if any(m in names for m in PRDC_METRICS):
        prdc = precision_recall_density_coverage(features[1], features[0])
        out.update({m: prdc[m] for m in PRDC_METRICS if m in names})
    return out
