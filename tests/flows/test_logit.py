import pytest
import torch

from probgen.flows.logit import Logit


@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_logit_inverts_with_exact_log_det(alpha, assert_bijection):
    x = torch.rand(4, 1, 2, 3) * 0.98 + 0.01
    assert_bijection(Logit(0.0, 1.0, alpha=alpha), x)


def test_logit_maps_the_range_ends_to_finite_values():
    layer = Logit(-1.0, 1.0, alpha=0.05)
    z, ladj = layer(torch.tensor([[-1.0, 1.0]]))
    assert torch.isfinite(z).all() and torch.isfinite(ladj).all()
    torch.testing.assert_close(z, torch.tensor([[-1.0, 1.0]]) * torch.tensor(0.95 / 0.05).log())


def test_logit_rejects_a_margin_of_one_half():
    with pytest.raises(ValueError, match="alpha"):
        Logit(0.0, 1.0, alpha=0.5)
