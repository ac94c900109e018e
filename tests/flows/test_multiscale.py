import pytest
import torch

from probgen.flows.core import Compose, Flatten
from probgen.flows.coupling import Coupling
from probgen.flows.elementwise import Affine
from probgen.flows.glow import Squeeze
from probgen.flows.linear import ActNorm
from probgen.flows.multiscale import FactorOut, multiscale_flow, possible_scales


def test_factor_out_transforms_only_the_kept_channels(perturb, assert_bijection):
    inner = Compose(Squeeze(), Flatten((8, 1, 2)))
    layer = FactorOut(inner, keep=2, event_shape=(3, 2, 4))
    x = torch.randn(2, 3, 2, 4)
    z, _ = layer(x)
    torch.testing.assert_close(z[:, 16:], x[:, 2:].flatten(1))  # the factored-out channel
    assert_bijection(layer, x)


@pytest.mark.parametrize("scales", [1, 2, 3])
def test_multiscale_flow_inverts_with_exact_log_det(scales, perturb, assert_bijection):
    flow = perturb(multiscale_flow((1, 8, 8), scales, steps=1, hidden=(4,)), scale=0.1)
    x = torch.randn(2, 1, 8, 8)
    z, _ = flow(x)
    assert z.shape == (2, 64)
    assert_bijection(flow, x)


def test_a_dense_top_acts_on_the_last_level_flattened(perturb, assert_bijection):
    seen = []

    def top(features):
        seen.append(features)
        return Compose(ActNorm(features), Coupling(features, Affine(), (8,)))

    flow = perturb(multiscale_flow((1, 8, 8), 2, steps=1, hidden=(4,), top=top), scale=0.1)
    assert seen == [32]  # 8x8 -> (4, 4, 4), two channels kept and squeezed -> (8, 2, 2)
    assert_bijection(flow, torch.randn(3, 1, 8, 8))


def test_possible_scales_counts_even_halvings():
    assert possible_scales(28, 28) == 2  # 28 -> 14 -> 7
    assert possible_scales(32, 32) == 3  # capped
    assert possible_scales(8, 6, most=5) == 1
    with pytest.raises(ValueError, match="do not halve"):
        multiscale_flow((1, 28, 28), 3, steps=1, hidden=(4,))
