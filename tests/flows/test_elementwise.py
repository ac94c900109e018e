import pytest
import torch

from probgen.flows.elementwise import Affine, RationalQuadraticSpline


def _derivative(fn, x, theta):
    x = x.clone().requires_grad_(True)
    z, _ = fn(x, theta)
    (grad,) = torch.autograd.grad(z.sum(), x)
    return grad


@pytest.mark.parametrize("bins", [2, 8])
def test_spline_inverts_and_log_derivative_matches_autograd(bins):
    spline = RationalQuadraticSpline(bins=bins, bound=3.0)
    generator = torch.Generator().manual_seed(0)
    x = 4 * torch.rand(200, 3, generator=generator, dtype=torch.float64) - 2
    theta = torch.randn(200, 3, spline.num_params, generator=generator, dtype=torch.float64)
    z, ladj = spline.forward(x, theta)
    torch.testing.assert_close(spline.inverse(z, theta), x, atol=1e-9, rtol=0)
    grad = _derivative(spline.forward, x, theta)
    assert (grad > 0).all()
    torch.testing.assert_close(ladj, grad.log().sum(-1))


def test_spline_is_identity_outside_bound_and_maps_bound_to_itself():
    spline = RationalQuadraticSpline(bins=5, bound=2.0)
    theta = torch.randn(4, 1, spline.num_params, dtype=torch.float64)
    x = torch.tensor([[-3.0], [-2.0], [2.0], [7.5]], dtype=torch.float64)
    z, ladj = spline.forward(x, theta)
    torch.testing.assert_close(z, x)
    torch.testing.assert_close(ladj, torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(spline.inverse(x, theta), x)


def test_spline_with_zero_parameters_is_identity():
    spline = RationalQuadraticSpline(bins=8)
    x = torch.linspace(-4.9, 4.9, 50, dtype=torch.float64)[:, None]
    z, ladj = spline.forward(x, torch.zeros(50, 1, spline.num_params, dtype=torch.float64))
    torch.testing.assert_close(z, x)
    torch.testing.assert_close(ladj, torch.zeros(50, dtype=torch.float64))


def test_spline_interior_knot_is_interpolated_with_its_derivative():
    # two equal bins on [-1, 1] put the middle knot at (0, 0): g(0) = 0 and g'(0) = d_1
    spline = RationalQuadraticSpline(bins=2, bound=1.0)
    theta = torch.zeros(1, 1, spline.num_params, dtype=torch.float64)
    theta[..., -1] = 2.0  # interior derivative softplus(2 + offset) + min_derivative
    d = torch.nn.functional.softplus(torch.tensor(2.0 + spline.offset, dtype=torch.float64))
    d = d + spline.min_derivative
    z, ladj = spline.forward(torch.zeros(1, 1, dtype=torch.float64), theta)
    assert z.abs().item() < 1e-12
    torch.testing.assert_close(ladj, d.log().reshape(1))


def test_affine_closed_form():
    affine = Affine(max_log_scale=3.0)
    x = torch.randn(10, 4, dtype=torch.float64)
    theta = torch.randn(10, 4, 2, dtype=torch.float64)
    s = 3.0 * torch.tanh(theta[..., 0] / 3.0)
    z, ladj = affine.forward(x, theta)
    torch.testing.assert_close(z, x * s.exp() + theta[..., 1])
    torch.testing.assert_close(ladj, s.sum(-1))
    torch.testing.assert_close(affine.inverse(z, theta), x)
    assert s.abs().max() < 3.0
