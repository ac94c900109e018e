import math

import pytest
import torch

from probgen.latent import linear_path, spherical_path


@pytest.mark.parametrize("path", [linear_path, spherical_path])
def test_paths_start_and_end_at_the_encoded_points(path):
    a, b = torch.randn(16), torch.randn(16)
    p = path(a, b, 7)
    assert p.shape == (7, 16)
    torch.testing.assert_close(p[0], a)
    torch.testing.assert_close(p[-1], b)


def test_slerp_keeps_the_norm_between_equal_norm_points():
    a = torch.tensor([1.0, 0.0])
    b = torch.tensor([0.0, 1.0])
    p = spherical_path(a, b, 5)
    torch.testing.assert_close(p.norm(dim=1), torch.ones(5))
    assert p[2].tolist() == pytest.approx([math.sqrt(0.5)] * 2)
    assert linear_path(a, b, 5)[2].norm() < 0.75


def test_slerp_of_parallel_points_is_the_straight_line():
    a = torch.tensor([1.0, 2.0])
    torch.testing.assert_close(spherical_path(a, 3 * a, 4), linear_path(a, 3 * a, 4))


def test_vae_rate_is_the_kl_in_bits():
    from probgen.latent import latent_rate_bits
    from probgen.models.base import DataInfo
    from probgen.models.vae import VAE, VAEConfig

    torch.manual_seed(0)
    vae = VAE(VAEConfig(hidden=(8,), latent_dim=2, likelihood="gaussian"), DataInfo((3,)))
    x = torch.randn(4, 3)
    with torch.no_grad():
        loc, scale, _ = vae._encode(x)
        kl = torch.distributions.kl_divergence(
            torch.distributions.Normal(loc, scale), torch.distributions.Normal(0.0, 1.0)
        ).sum(-1)
        rate = latent_rate_bits(vae, x, num_particles=20_000)
    torch.testing.assert_close(rate, kl / math.log(2), atol=0.03, rtol=0)


def test_flow_code_is_lossless():
    from probgen.latent import latent_rate_bits
    from probgen.train import fit

    flow = fit(
        "flow", "moons", None, steps=5, quiet=True, options={"transforms": 2, "hidden": (8, 8)}
    )
    x = flow.preprocessor.forward(torch.as_tensor(flow_moons()))
    with torch.no_grad():
        torch.testing.assert_close(flow.decode(flow.encode(x)), x, atol=1e-5, rtol=0)
        rate = latent_rate_bits(flow, x)
    assert rate.shape == (len(x),) and torch.isfinite(rate).all()


def flow_moons():
    from probgen.data import load_dataset

    return load_dataset("moons").test[:50]
