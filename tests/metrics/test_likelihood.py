import math

import numpy as np
import pytest

from probgen.metrics.likelihood import likelihood_summary


def test_nll_bits_per_dim_and_standard_errors():
    ll = np.array([-10.0, -12.0, -14.0, -16.0])
    out = likelihood_summary(ll, dim=4)
    se = np.std(ll, ddof=1) / 2.0
    assert out["nll"] == 13.0
    assert out["nll_se"] == pytest.approx(se)
    assert out["bits_per_dim"] == pytest.approx(13.0 / (4 * math.log(2)))
    assert out["bits_per_dim_se"] == pytest.approx(se / (4 * math.log(2)))


def test_uniform_density_on_bytes_is_eight_bits_per_dim():
    # A uniform distribution over 256 levels in each of 64 dimensions: log p = -64 ln 256.
    ll = np.full(10, -64 * math.log(256.0))
    out = likelihood_summary(ll, dim=64)
    assert out["bits_per_dim"] == pytest.approx(8.0)
    assert out["bits_per_dim_se"] == 0.0
