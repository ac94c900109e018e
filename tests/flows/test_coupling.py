import pytest
import torch

from probgen.flows.coupling import Coupling
from probgen.flows.elementwise import Affine, RationalQuadraticSpline


@pytest.mark.parametrize("elementwise", [Affine(), RationalQuadraticSpline(bins=4)])
@pytest.mark.parametrize("features", [2, 5])
def test_coupling_inverts_with_exact_log_det(features, elementwise, perturb, assert_bijection):
    layer = perturb(Coupling(features, elementwise, hidden=[16]))
    assert_bijection(layer, torch.randn(6, features))


def test_coupling_leaves_first_half_unchanged(perturb):
    layer = perturb(Coupling(5, Affine(), hidden=[8]))
    x = torch.randn(4, 5)
    z, _ = layer(x)
    torch.testing.assert_close(z[:, :2], x[:, :2])
    assert not torch.allclose(z[:, 2:], x[:, 2:])


def test_coupling_needs_two_features():
    with pytest.raises(ValueError, match="two features"):
        Coupling(1, Affine(), hidden=[8])
