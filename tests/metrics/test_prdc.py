import numpy as np
import prdc
import pytest
import torch

from probgen.metrics.prdc import knn_radii, precision_recall_density_coverage


@pytest.mark.parametrize(("n_real", "n_fake", "dim"), [(300, 250, 2), (400, 437, 32)])
def test_agrees_with_prdc_package_in_small_blocks(n_real, n_fake, dim):
    rng = np.random.default_rng(n_real)
    real = rng.standard_normal((n_real, dim)).astype(np.float32)
    fake = (0.8 * rng.standard_normal((n_fake, dim)) + 0.2).astype(np.float32)
    ours = precision_recall_density_coverage(real, fake, k=3, block_size=64)
    ref = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=3)
    for name in ("precision", "recall", "density", "coverage"):
        assert ours[name] == pytest.approx(float(ref[name]), rel=1e-12), name


def test_knn_radius_counts_the_point_itself_out():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    np.testing.assert_array_equal(knn_radii(torch.tensor(x), k=1).numpy(), [1.0, 1.0, 2.0, 4.0])
    np.testing.assert_array_equal(knn_radii(torch.tensor(x), k=2).numpy(), [3.0, 2.0, 3.0, 6.0])


def test_strict_inequality_on_the_ball_boundary():
    # Reals on a unit grid, k = 1: every radius is 1. A fake at distance exactly 1 from the last
    # real is outside its ball (strict <, as prdc); one at distance 0.5 is inside.
    real = np.arange(5.0)[:, None]
    fake = np.array([[0.5], [5.0], [50.0]])
    ours = precision_recall_density_coverage(real, fake, k=1)
    assert ours["precision"] == pytest.approx(1 / 3)
    assert ours["precision"] == float(prdc.compute_prdc(real, fake, 1)["precision"])


def test_collapsed_set_has_high_precision_low_recall():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((500, 2))
    collapsed = 0.05 * rng.standard_normal((500, 2)) + real[0]
    result = precision_recall_density_coverage(real, collapsed)
    assert result["precision"] > 0.9
    assert result["recall"] < 0.1
    assert result["coverage"] < 0.1


def test_identical_distribution_scores_near_one():
    rng = np.random.default_rng(1)
    result = precision_recall_density_coverage(
        rng.standard_normal((1000, 2)), rng.standard_normal((1000, 2))
    )
    assert result["precision"] > 0.9 and result["recall"] > 0.9
    assert result["density"] == pytest.approx(1.0, abs=0.1)
    # For k = 3 and matching distributions, coverage -> 1 - 2^-3 = 0.875 (Naeem et al. 2020).
    assert result["coverage"] == pytest.approx(0.875, abs=0.04)
