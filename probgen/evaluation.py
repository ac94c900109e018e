"""Scoring a fitted model: likelihoods on held-out data and sample metrics, in data units.

Likelihoods are converted from model space to the data's own units with the preprocessor's
Jacobian, log p_v(v) = log p_x(x) + log|dx/dv| (for models whose likelihood is a model-space
density), so numbers are comparable across preprocessing choices and with other libraries.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from probgen.data.datasets import DATASETS, Dataset
from probgen.errors import ConfigError
from probgen.metrics.features import default_feature_for
from probgen.metrics.likelihood import likelihood_summary
from probgen.metrics.suite import IMAGE_METRICS, SAMPLE_METRICS, VECTOR_METRICS, evaluate_samples
from probgen.models.base import GenerativeModel

LIKELIHOOD_METRICS = ("nll", "elbo", "nll_is", "sample_speed")
METRICS = LIKELIHOOD_METRICS + SAMPLE_METRICS
CHUNK = 256
SAMPLE_CHUNK = 10_000  # draws per call: a model's working memory stays bounded


def as_test_data(dataset: Dataset) -> Dataset:
    """``dataset`` with every row held out: a file given for evaluation is all test data
    (registered datasets keep their own test split)."""
    if dataset.name in DATASETS:
        return dataset
    both = np.concatenate([dataset.train, dataset.test])
    labels = None
    if dataset.train_labels is not None:
        labels = np.concatenate([dataset.train_labels, dataset.test_labels])
    return dataclasses.replace(dataset, test=both, test_labels=labels)


def chunked(
    fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    size: int = CHUNK,
) -> torch.Tensor:
    """``fn`` applied to ``x`` (and ``y``) in chunks of ``size`` rows, concatenated."""
    out = []
    for i in range(0, len(x), size):
        out.append(fn(x[i : i + size], None if y is None else y[i : i + size]))
    return torch.cat(out)


def _to_model_space(model: GenerativeModel, v: np.ndarray) -> torch.Tensor:
    # dequantised likelihoods are lower bounds averaged over the noise: draw it, as in training
    noisy = model.preprocessor.dequantize
    return model.preprocessor.forward(torch.as_tensor(v).to(model.device), train=noisy)


def likelihood_metrics(
    model: GenerativeModel, dataset: Dataset, names: Sequence[str], num_particles: int = 1000
) -> dict:
    """NLL / bits-per-dim (exact models), ELBO (latent models) and importance-sampled NLL."""
    out: dict = {}
    v = dataset.test
    y = (
        torch.as_tensor(dataset.test_labels).to(model.device)
        if dataset.test_labels is not None and model.data_info.num_classes
        else None
    )
    x = _to_model_space(model, v)
    dim = model.data_info.dim
    shift = model.log_abs_det_to_data()

    def summary(prefix: str, log_values: torch.Tensor) -> dict[str, float]:
        stats = likelihood_summary((log_values.double() + shift).cpu().numpy(), dim)
        return {
            prefix: stats["nll"],
            f"{prefix}_se": stats["nll_se"],
            f"{prefix}_bits_per_dim": stats["bits_per_dim"],
        }

    with torch.no_grad():
        if "nll" in names and model.supports("log_prob"):
            out.update(summary("nll", chunked(model.log_prob, x, y)))
        if "elbo" in names and model.supports("elbo"):
            stats = summary("neg_elbo", chunked(model.elbo, x, y))
            out["elbo"] = -stats["neg_elbo"]
            out["elbo_se"] = stats["neg_elbo_se"]
            out["elbo_bits_per_dim"] = stats["neg_elbo_bits_per_dim"]
        if "nll_is" in names and model.supports("log_marginal"):
            fn = lambda xb, yb: model.log_marginal(xb, yb, num_particles=num_particles)  # noqa: E731
            stats = summary("nll_is", chunked(fn, x, y, size=32))
            out.update(stats)
            out["nll_is_particles"] = num_particles
    if len(v) > 1:
        out["n_test"] = len(v)
    return out


def evaluate_model(
    model: GenerativeModel,
    dataset: Dataset,
    metrics: list[str] | None = None,
    n: int | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    feature: str | None = None,
    num_particles: int = 1000,
    seed: int = 0,
) -> tuple[dict, np.ndarray]:
    """All requested metrics of ``model`` against ``dataset``'s held-out split.

    Returns the metrics and the samples drawn for them (data units). ``n`` samples are drawn
    (default: as many as there are held-out examples; FID and KID depend on it).
    """
    names = list(metrics) if metrics else None
    if names:
        unknown = [m for m in names if m not in METRICS]
        if unknown:
            raise ConfigError(
                f"unknown metric(s) {', '.join(unknown)}; valid: {', '.join(METRICS)}"
            )
    wanted_likelihood = [m for m in LIKELIHOOD_METRICS if names is None or m in names]
    results: dict = {}
    torch.manual_seed(seed)
    results.update(likelihood_metrics(model, dataset, wanted_likelihood, num_particles))
    n = len(dataset.test) if n is None else n
    if n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}")
    options = {} if steps is None else {"steps": steps}
    start = time.perf_counter()
    samples = np.concatenate(
        [
            model.sample(min(SAMPLE_CHUNK, n - i), sampler=sampler, **options).cpu().numpy()
            for i in range(0, n, SAMPLE_CHUNK)
        ]
    )
    elapsed = time.perf_counter() - start
    if "sample_speed" in wanted_likelihood:
        results["samples_per_second"] = n / max(elapsed, 1e-9)
    results["n_samples"] = n
    valid = VECTOR_METRICS if dataset.kind == "vector" else IMAGE_METRICS
    sample_names = [m for m in (names or valid) if m in SAMPLE_METRICS]
    if names is None:
        sample_names = None  # the suite's defaults for the kind
    elif not sample_names:
        return results, samples
    results.update(score_samples(samples, dataset, sample_names, feature, seed))
    return {k: _plain(v) for k, v in results.items()}, samples


def score_samples(
    samples: np.ndarray,
    dataset: Dataset,
    metrics: Sequence[str] | None = None,
    feature: str | None = None,
    seed: int = 0,
) -> dict:
    """Sample metrics of ``samples`` (data units) against ``dataset``'s held-out split.

    Image features default to the shipped classifier for the images' shape (8x8 digits, 28x28
    MNIST digits), else pixels (:func:`~probgen.metrics.features.default_feature_for`); the
    memorisation ratio compares samples with the training images.
    """
    if dataset.kind == "image" and feature is None:
        feature = default_feature_for(dataset.event_shape)
    return evaluate_samples(
        samples,
        dataset.test,
        kind=dataset.kind,
        metrics=metrics,
        feature=feature,
        mixture=dataset.mixture,
        seed=seed,
        value_range=(0.0, float(dataset.levels - 1)) if dataset.levels else None,
        train=dataset.train if dataset.kind == "image" else None,
    )


def _plain(value: object) -> object:
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
