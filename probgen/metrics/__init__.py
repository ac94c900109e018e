"""Evaluation metrics: sample quality and diversity, likelihoods, mode collapse, blur, speed.

One module per family of metrics, each importable on its own (``from probgen.metrics.fid import
fid``): :mod:`~probgen.metrics.fid`, :mod:`~probgen.metrics.kid`,
:mod:`~probgen.metrics.inception_score`, :mod:`~probgen.metrics.prdc`,
:mod:`~probgen.metrics.sample_distances`, :mod:`~probgen.metrics.modes`,
:mod:`~probgen.metrics.sharpness`, :mod:`~probgen.metrics.classes`,
:mod:`~probgen.metrics.memorisation`, :mod:`~probgen.metrics.likelihood`,
:mod:`~probgen.metrics.speed`, with the feature networks in :mod:`~probgen.metrics.features`.
:func:`evaluate_samples` runs the standard set on vectors or images in data units. The package
re-exports only names that do not shadow its modules. See docs/metrics.md.
"""

from probgen.metrics.suite import SAMPLE_METRICS, evaluate_samples

__all__ = ["SAMPLE_METRICS", "evaluate_samples"]
