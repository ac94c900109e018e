import numpy as np
import pytest
import torch

from probgen.errors import DataError
from probgen.metrics.memorisation import COPYING_THRESHOLD, memorisation, nearest_distances


def brute_nearest(q, r):
    return np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)).min(1)


def test_nearest_distances_match_brute_force_across_blocks():
    rng = np.random.default_rng(0)
    q, r = rng.standard_normal((53, 5)), rng.standard_normal((41, 5))
    got = nearest_distances(q, r, block_size=7)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), brute_nearest(q, r), rtol=1e-10)
    np.testing.assert_array_equal(nearest_distances(r[:9], r, block_size=4).numpy(), 0.0)


def test_ratio_is_the_ratio_of_interpolated_medians():
    rng = np.random.default_rng(1)
    train, test = rng.standard_normal((60, 4)), rng.standard_normal((20, 4))
    samples = rng.standard_normal((30, 4)) * 1.5
    result = memorisation(samples, train, test, block_size=16)
    d_x, d_t = brute_nearest(samples, train), brute_nearest(test, train)
    assert result.sample_median == pytest.approx(np.median(d_x), rel=1e-10)
    assert result.test_median == pytest.approx(np.median(d_t), rel=1e-10)
    assert result.ratio == pytest.approx(np.median(d_x) / np.median(d_t), rel=1e-10)
    assert result.copied == pytest.approx(np.mean(d_x < np.quantile(d_t, 0.01)))


def test_copies_noisy_copies_fresh_data_and_noise(digits):
    train_x, _, test_x, _ = digits
    rng = np.random.default_rng(2)
    copies = memorisation(train_x[:200], train_x, test_x, value_range=(0, 16))
    assert copies.ratio == 0.0 and copies.copying and copies.copied == 1.0
    jitter = np.clip(train_x[:200] + rng.normal(0, 0.5, (200, 1, 8, 8)), 0, 16)
    noisy = memorisation(jitter, train_x, test_x, value_range=(0, 16))
    assert 0.0 < noisy.ratio < COPYING_THRESHOLD and noisy.copying
    fresh = memorisation(test_x[:150], train_x, test_x[150:], value_range=(0, 16))
    assert 0.8 < fresh.ratio < 1.25 and not fresh.copying
    assert fresh.copied < 0.05
    pure_noise = memorisation(rng.uniform(0, 16, (200, 1, 8, 8)), train_x, test_x)
    assert pure_noise.ratio > 2.0


def test_value_range_scales_the_medians_not_the_ratio(digits):
    train_x, _, test_x, _ = digits
    samples = np.clip(test_x[:100] + 1.0, 0, 16)
    raw = memorisation(samples, train_x, test_x[100:])
    scaled = memorisation(samples, train_x, test_x[100:], value_range=(0, 16))
    assert scaled.ratio == pytest.approx(raw.ratio, rel=1e-12)
    assert scaled.test_median == pytest.approx(raw.test_median / 16, rel=1e-12)


def test_mismatched_sizes_and_bad_inputs_are_data_errors():
    x = np.zeros((5, 1, 4, 4))
    with pytest.raises(DataError, match="sizes differ"):
        memorisation(x, np.zeros((5, 1, 3, 3)), x)
    with pytest.raises(DataError, match="NaN"):
        memorisation(x + np.nan, x, x)
    with pytest.raises(DataError, match="copies"):
        memorisation(x, x, x)
    with pytest.raises(DataError, match="high > low"):
        memorisation(x, x + 1, x, value_range=(1, 1))
