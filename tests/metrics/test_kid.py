import numpy as np
import pytest
import torch
from torchmetrics.image.kid import poly_mmd

from probgen.metrics.kid import kid, polynomial_mmd2


def test_subset_estimator_matches_torchmetrics():
    rng = np.random.default_rng(0)
    a = torch.tensor(rng.standard_normal((200, 8)))
    b = torch.tensor(rng.standard_normal((200, 8)) + 0.2)
    assert float(polynomial_mmd2(a, b)) == pytest.approx(float(poly_mmd(a, b)), rel=1e-10)


def test_centred_on_zero_for_two_draws_of_one_distribution():
    rng = np.random.default_rng(1)
    means = [
        kid(rng.standard_normal((400, 16)), rng.standard_normal((400, 16)), 20, 200, s).mean
        for s in range(20)
    ]
    # Unbiased: the average over independent draws sits within a few standard errors of 0.
    assert abs(np.mean(means)) < 3 * np.std(means) / np.sqrt(len(means)) + 1e-4
    assert min(means) < 0 < max(means)


def test_positive_and_growing_for_shifted_distributions():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((500, 16))
    small = kid(a, rng.standard_normal((500, 16)) + 0.3, 20, 200)
    large = kid(a, rng.standard_normal((500, 16)) + 1.0, 20, 200)
    assert 0 < small.mean < large.mean
    assert small.std > 0


def test_subset_size_capped_by_sample_size():
    rng = np.random.default_rng(3)
    result = kid(rng.standard_normal((50, 4)), rng.standard_normal((80, 4)), num_subsets=5)
    assert (result.subset_size, result.num_subsets) == (50, 5)
