import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from probgen.metrics.fid import (
    fid,
    frechet_distance,
    mean_and_covariance,
    trace_sqrt_product,
)


def random_spd(rng, d, scale=1.0):
    a = rng.standard_normal((d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def scipy_route(mu1, s1, mu2, s2):
    """The pytorch-fid formula: sqrtm of the product."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_closed_form_for_commuting_covariances():
    # Diagonal covariances: FID = ||mu1 - mu2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = 5.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_closed_form_for_rotated_isotropic_and_scaled():
    # S2 = c^2 S1 gives Tr((S1 S2)^{1/2}) = c Tr(S1), so FID = (1 - c)^2 Tr(S1).
    rng = np.random.default_rng(0)
    s1 = random_spd(rng, 6)
    value = frechet_distance(np.zeros(6), s1, np.zeros(6), 9.0 * s1)
    assert value == pytest.approx(4.0 * np.trace(s1), rel=1e-10)


def test_agrees_with_scipy_sqrtm_route():
    rng = np.random.default_rng(1)
    for d in (2, 10, 64):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = random_spd(rng, d), random_spd(rng, d, scale=2.0)
        expected = scipy_route(mu1, s1, mu2, s2)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)


def test_agrees_with_torchmetrics_custom_feature_module():
    class Features(torch.nn.Module):
        num_features = 16

        def forward(self, x):
            return x

    rng = np.random.default_rng(2)
    a = torch.tensor(rng.standard_normal((400, 16)))
    b = torch.tensor(rng.standard_normal((300, 16)) @ rng.standard_normal((16, 16)) * 0.5 + 0.3)
    metric = FrechetInceptionDistance(feature=Features())
    metric.update(a, real=True)
    metric.update(b, real=False)
    assert fid(a, b).value == pytest.approx(float(metric.compute()), rel=1e-6)


def test_sample_fid_approaches_closed_form_and_reports_sizes():
    rng = np.random.default_rng(3)
    d = 4
    s2 = random_spd(rng, d)
    a = rng.standard_normal((20000, d))
    b = rng.multivariate_normal(np.ones(d), s2, size=30000)
    result = fid(a, b)
    assert (result.n_a, result.n_b, result.dim) == (20000, 30000, d)
    assert result.value == pytest.approx(
        frechet_distance(np.zeros(d), np.eye(d), np.ones(d), s2), rel=0.02
    )


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(4).standard_normal((500, 20))
    assert abs(fid(x, x).value) < 1e-9


@pytest.mark.parametrize("dim", [3, 1100])  # 1100 > 512: the blockwise upper-triangle Gram
def test_unbiased_covariance_matches_numpy(dim):
    x = np.random.default_rng(5).standard_normal((50, dim)) + 3.0
    mu, sigma = mean_and_covariance(x)
    np.testing.assert_allclose(sigma.numpy(), np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mu.numpy(), x.mean(0), rtol=1e-12)


def test_warns_when_samples_do_not_exceed_dimension():
    rng = np.random.default_rng(6)
    with pytest.warns(UserWarning, match="feature dimension"):
        fid(rng.standard_normal((10, 10)), rng.standard_normal((100, 10)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fid(rng.standard_normal((11, 10)), rng.standard_normal((100, 10)))


def test_singular_covariances_take_the_eigh_route():
    # N <= d: the sample covariance is singular, Cholesky fails, and eigh must still agree.
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((6, 10)), rng.standard_normal((30, 10))
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert torch.linalg.cholesky_ex(torch.tensor(s1)).info != 0
    assert trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-6)


def test_scipy_fallback_when_both_decompositions_fail(monkeypatch):
    rng = np.random.default_rng(8)
    s1 = np.cov(rng.standard_normal((4, 5)), rowvar=False)  # singular: no Cholesky factor
    s2 = random_spd(rng, 5)
    expected = trace_sqrt_product(s1, s2)

    def failing_eigh(_):
        raise torch.linalg.LinAlgError("forced")

    monkeypatch.setattr(torch.linalg, "eigh", failing_eigh)
    assert trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-6)
