import math

import pytest
import torch

from probgen.data.preprocess import Identity, ImageScaling, Preprocessor, Standardize


def test_standardize_round_trip_far_from_origin():
    v = torch.randn(500, 3, dtype=torch.float64) * torch.tensor([1e4, 1.0, 1e-3]) + 1e6
    p = Standardize.fit(v.float())
    x = p.forward(v.float())
    assert x.abs().mean() < 2
    torch.testing.assert_close(p.inverse(x).double(), v, rtol=1e-6, atol=0)


def test_standardize_constant_dimension_keeps_unit_scale():
    v = torch.stack([torch.randn(50), torch.full((50,), 3.0)], 1)
    p = Standardize.fit(v)
    assert torch.isfinite(p.forward(v)).all()
    assert p.std[1] == 1.0


def test_standardize_log_det_is_minus_sum_log_std():
    p = Standardize([0.0, 0.0], [2.0, 0.5])
    assert p.log_abs_det_jacobian(2) == pytest.approx(-math.log(2.0) - math.log(0.5))


def test_image_scaling_levels_round_trip_and_ends():
    p = ImageScaling(-1.0, 1.0, levels=17)
    v = torch.arange(17.0)
    x = p.forward(v)
    assert x[0] == -1.0 and x[-1] == 1.0
    torch.testing.assert_close(p.inverse(x), v)


def test_dequantised_scaling_stays_in_bins():
    p = ImageScaling(0.0, 1.0, levels=256, dequantize=True)
    v = torch.randint(0, 256, (1000,)).float()
    x = p.forward(v, train=True)
    assert (x >= 0).all() and (x < 1).all()
    torch.testing.assert_close(p.inverse(x), v)
    assert p.log_abs_det_jacobian(10) == pytest.approx(-10 * math.log(256))


@pytest.mark.parametrize(
    "p",
    [
        Identity(),
        Standardize([1.0, 2.0], [3.0, 4.0]),
        ImageScaling(-1, 1, 17, dequantize=True),
        ImageScaling(0, 1, None, 0.0, 5.0),
    ],
)
def test_json_round_trip(p):
    q = Preprocessor.from_dict(p.to_dict())
    v = torch.rand(4, 2) * 5
    torch.testing.assert_close(q.forward(v), p.forward(v))
    assert q.to_dict() == p.to_dict()
