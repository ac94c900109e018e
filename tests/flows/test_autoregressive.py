import pytest
import torch

from probgen.flows.autoregressive import MADE, MaskedAutoregressive
from probgen.flows.elementwise import Affine, RationalQuadraticSpline


def test_made_output_i_depends_only_on_inputs_before_i(perturb):
    made = perturb(MADE(5, 3, hidden=[16, 16])).double()
    x = torch.randn(5, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: made(v[None])[0], x)  # (5, 3, 5)
    dependence = jacobian.abs().sum(1) > 0
    assert torch.equal(dependence, torch.ones(5, 5, dtype=torch.bool).tril(-1))


def test_made_starts_with_zero_output():
    made = MADE(3, 4, hidden=[8])
    assert torch.equal(made(torch.randn(6, 3)), torch.zeros(6, 3, 4))


@pytest.mark.parametrize("elementwise", [Affine(), RationalQuadraticSpline(bins=4)])
def test_masked_autoregressive_inverts_with_exact_log_det(elementwise, perturb, assert_bijection):
    layer = perturb(MaskedAutoregressive(4, elementwise, hidden=[16, 16]))
    assert_bijection(layer, torch.randn(6, 4))
