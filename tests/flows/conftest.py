import pytest
import torch

from probgen.flows.check import dense_log_abs_det


@pytest.fixture
def assert_bijection():
    """Check ``f^{-1}(f(x)) == x`` and ``f``'s log-determinant against the dense Jacobian."""

    def check(bijection, x, atol=1e-6):
        bijection = bijection.double()
        x = x.double()
        z, ladj = bijection(x)
        assert ladj.shape == (x.shape[0],)
        torch.testing.assert_close(bijection.inverse(z), x, atol=atol, rtol=0)
        torch.testing.assert_close(ladj, dense_log_abs_det(bijection, x), atol=atol, rtol=1e-6)

    return check


@pytest.fixture
def perturb():
    """Move every parameter away from its (often identity-map) initial value, reproducibly."""

    def apply(module, scale=0.3, seed=0):
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in module.parameters():
                p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))
        return module

    return apply
