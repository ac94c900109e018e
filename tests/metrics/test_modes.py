import math

import numpy as np
import pytest

from probgen.data.toys import MIXTURES, sample_toy
from probgen.metrics.modes import mode_statistics

CENTRES, STD = MIXTURES["25gaussians"]


def test_healthy_samples_capture_every_mode():
    stats = mode_statistics(sample_toy("25gaussians", 2500, seed=0), CENTRES, STD)
    assert stats["modes"] == 25
    # 3 std in 2-D holds 1 - exp(-9/2) = 98.9% of a Gaussian's mass.
    assert stats["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert stats["reverse_kl"] < 0.02


def test_collapsed_samples_capture_one_mode_with_reverse_kl_log_k():
    samples = np.repeat(CENTRES[7:8], 100, axis=0)
    stats = mode_statistics(samples, CENTRES, STD)
    assert stats == {
        "modes": 1,
        "high_quality": 1.0,
        "reverse_kl": pytest.approx(math.log(25)),
    }


def test_reverse_kl_of_balanced_half_coverage_is_log_two():
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    samples = np.repeat(centres[:2], 50, axis=0)
    stats = mode_statistics(samples, centres, 1.0)
    assert stats["modes"] == 2
    assert stats["reverse_kl"] == pytest.approx(math.log(2))


def test_capture_threshold_is_a_fifth_of_the_fair_share():
    # 2,500 samples on 25 modes: a mode needs 20 high-quality samples (PacGAN).
    samples = np.concatenate([np.repeat(CENTRES[:1], 2481, 0), np.repeat(CENTRES[1:2], 19, 0)])
    assert mode_statistics(samples, CENTRES, STD)["modes"] == 1
    samples = np.concatenate([np.repeat(CENTRES[:1], 2480, 0), np.repeat(CENTRES[1:2], 20, 0)])
    assert mode_statistics(samples, CENTRES, STD)["modes"] == 2
    assert mode_statistics(samples, CENTRES, STD, min_count=21)["modes"] == 1


def test_samples_between_modes_are_not_high_quality():
    samples = CENTRES[:10] + np.array([3.5 * STD, 0.0])
    stats = mode_statistics(samples, CENTRES, STD)
    assert stats["high_quality"] == 0.0
    assert stats["modes"] == 0
    assert math.isnan(stats["reverse_kl"])
