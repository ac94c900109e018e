import numpy as np
import pytest
import torch

from probgen.metrics.sample_distances import (
    BANDWIDTH_SCALES,
    median_distance,
    mmd,
    sliced_wasserstein,
    wasserstein_1d_squared,
)


def brute_force_mmd(a, b, h):
    def k(x, y):
        sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
        return sum(np.exp(-sq / (2 * (s * h) ** 2)) for s in BANDWIDTH_SCALES)

    n, m = len(a), len(b)
    kaa, kbb = k(a, a), k(b, b)
    return (
        (kaa.sum() - np.trace(kaa)) / (n * (n - 1))
        + (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
        - 2 * k(a, b).mean()
    )


def test_mmd_matches_brute_force_with_blocks():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((70, 3)), rng.standard_normal((50, 3)) + 0.5
    h = median_distance(torch.tensor(b))
    assert mmd(a, b, block_size=16) == pytest.approx(brute_force_mmd(a, b, h), rel=1e-10)


def test_mmd_near_zero_for_same_distribution_and_positive_for_shift():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((800, 2))
    same = mmd(rng.standard_normal((800, 2)), ref)
    shifted = mmd(rng.standard_normal((800, 2)) + 1.0, ref)
    assert abs(same) < 0.01
    assert shifted > 0.1


def test_mmd_bandwidth_is_the_reference_median_distance():
    x = torch.tensor([[0.0], [1.0], [3.0]])
    assert median_distance(x) == 2.0


def test_one_dimensional_wasserstein_with_unequal_sizes():
    # W2^2 between n and m atoms equals that between their lcm(n, m)-fold replicates.
    rng = np.random.default_rng(2)
    x, y = np.sort(rng.standard_normal(4)), np.sort(rng.standard_normal(6))
    expected = ((np.repeat(x, 3) - np.repeat(y, 2)) ** 2).mean()
    got = wasserstein_1d_squared(torch.tensor(x)[None], torch.tensor(y)[None])
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_sliced_wasserstein_of_a_translation_in_one_dimension_is_the_shift():
    x = np.random.default_rng(3).standard_normal((300, 1))
    assert sliced_wasserstein(x + 2.5, x) == pytest.approx(2.5, rel=1e-12)


def test_sliced_wasserstein_of_a_translation_averages_projected_shifts():
    x = np.random.default_rng(4).standard_normal((300, 2))
    t = np.array([3.0, 4.0])
    # Every projection moves by theta . t; for many random directions E[(theta . t)^2] = |t|^2/2.
    got = sliced_wasserstein(x + t, x, num_projections=4096)
    assert got == pytest.approx(np.sqrt(12.5), rel=0.03)
    assert sliced_wasserstein(x, x) == 0.0
