import torch

from probgen.flows.elementwise import Affine, RationalQuadraticSpline
from probgen.flows.glow import ConvCoupling, Squeeze


def test_squeeze_moves_each_2x2_patch_into_channels(assert_bijection):
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    z, ladj = Squeeze()(x)
    assert z.shape == (1, 4, 2, 2) and ladj.item() == 0
    torch.testing.assert_close(z[0, :, 0, 0], torch.tensor([0.0, 1.0, 4.0, 5.0]))
    assert_bijection(Squeeze(), torch.randn(2, 2, 4, 2))


def test_conv_coupling_inverts_with_exact_log_det(perturb, assert_bijection):
    for elementwise in (Affine(), RationalQuadraticSpline(bins=4)):
        layer = perturb(ConvCoupling(3, elementwise, hidden=(8,)), scale=0.2)
        assert_bijection(layer, torch.randn(2, 3, 3, 2))


def test_conv_coupling_starts_as_identity():
    layer = ConvCoupling(4, Affine(), hidden=(8,))
    x = torch.randn(2, 4, 3, 3)
    z, ladj = layer(x)
    torch.testing.assert_close(z, x)
    torch.testing.assert_close(ladj, torch.zeros(2))
