"""Two-dimensional toy distributions, generated from a seed.

The mixtures follow the definitions used to measure mode collapse (Metz et al. 2017;
Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN): ``8gaussians`` is a ring of eight
Gaussians of radius 2 and variance 0.02; ``25gaussians`` a 5x5 grid at {-4, -2, 0, 2, 4}^2 with
standard deviation 0.05. The others (moons, circles, checkerboard, swissroll, pinwheel) are the
usual density-estimation toys (Grathwohl et al. 2019, FFJORD).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def _ring_centres() -> np.ndarray:
    angles = np.arange(8) * 2 * math.pi / 8
    return 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _grid_centres() -> np.ndarray:
    g = np.arange(-4.0, 5.0, 2.0)
    return np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)


# name -> (centres, standard deviation of each component)
MIXTURES: dict[str, tuple[np.ndarray, float]] = {
    "8gaussians": (_ring_centres(), math.sqrt(0.02)),
    "25gaussians": (_grid_centres(), 0.05),
}


def _mixture(name: str) -> Callable[[int, np.random.Generator], np.ndarray]:
    centres, std = MIXTURES[name]

    def draw(n: int, rng: np.random.Generator) -> np.ndarray:
        idx = rng.integers(len(centres), size=n)
        return centres[idx] + std * rng.standard_normal((n, 2))

    return draw


def _moons(n: int, rng: np.random.Generator, noise: float = 0.05) -> np.ndarray:
    n_out = n // 2
    n_in = n - n_out
    t_out = rng.uniform(0, math.pi, n_out)
    t_in = rng.uniform(0, math.pi, n_in)
    outer = np.stack([np.cos(t_out), np.sin(t_out)], 1)
    inner = np.stack([1 - np.cos(t_in), 0.5 - np.sin(t_in)], 1)
    x = np.concatenate([outer, inner])[rng.permutation(n)]
    return x + noise * rng.standard_normal(x.shape)


def _circles(
    n: int, rng: np.random.Generator, factor: float = 0.5, noise: float = 0.05
) -> np.ndarray:
    t = rng.uniform(0, 2 * math.pi, n)
    r = np.where(rng.random(n) < 0.5, 1.0, factor)
    x = np.stack([r * np.cos(t), r * np.sin(t)], 1)
    return x + noise * rng.standard_normal(x.shape)


def _checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    x1 = rng.uniform(-2, 2, n)
    x2 = rng.uniform(0, 1, n) + rng.integers(0, 2, n) * 2.0 - 2.0
    x2 = x2 + (np.floor(x1) % 2)
    return np.stack([x1, x2], 1)


def _swissroll(n: int, rng: np.random.Generator, noise: float = 0.25) -> np.ndarray:
    t = 1.5 * math.pi * (1 + 2 * rng.random(n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], 1) / 5.0
    return x + noise / 5.0 * rng.standard_normal(x.shape)


def _pinwheel(
    n: int,
    rng: np.random.Generator,
    num_classes: int = 5,
    radial_std: float = 0.3,
    tangential_std: float = 0.1,
    rate: float = 0.25,
) -> np.ndarray:
    angles = np.linspace(0, 2 * math.pi, num_classes, endpoint=False)
    labels = rng.integers(num_classes, size=n)
    feats = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    feats[:, 0] += 1.0
    rot = angles[labels] + rate * np.exp(feats[:, 0])
    c, s = np.cos(rot), np.sin(rot)
    x = np.stack([c * feats[:, 0] - s * feats[:, 1], s * feats[:, 0] + c * feats[:, 1]], 1)
    return 2.0 * x


TOYS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "8gaussians": _mixture("8gaussians"),
    "25gaussians": _mixture("25gaussians"),
    "moons": _moons,
    "circles": _circles,
    "checkerboard": _checkerboard,
    "swissroll": _swissroll,
    "pinwheel": _pinwheel,
}


def sample_toy(name: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` float32 points of the toy ``name`` drawn with ``numpy``'s generator from ``seed``."""
    rng = np.random.default_rng(seed)
    return TOYS[name](n, rng).astype(np.float32)
