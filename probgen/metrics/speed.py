"""Sampling speed: samples per second of a sampling callable.

The callable is run ``warmup`` times untimed (first-call costs: allocation, kernel compilation,
caches), then ``repeats`` times timed; the rate is ``n / t`` of the median run. Work queued on a
GPU is waited for before the clock stops.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from probgen.errors import ConfigError


def _synchronize(out: object) -> None:
    if isinstance(out, torch.Tensor) and out.is_cuda:
        torch.cuda.synchronize(out.device)


def samples_per_second(
    sample: Callable[[int], object], n: int, warmup: int = 1, repeats: int = 3
) -> float:
    """Samples per second of ``sample(n)`` (median of ``repeats`` timed calls after ``warmup``)."""
    if n < 1 or repeats < 1 or warmup < 0:
        raise ConfigError(f"need n >= 1, repeats >= 1, warmup >= 0; got {n}, {repeats}, {warmup}")
    for _ in range(warmup):
        _synchronize(sample(n))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _synchronize(sample(n))
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)
