"""Per-point scores of a program against closed forms: PPCA's marginal, a mixture's density."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import config_enumerate

from probgen.programs.scoring import importance_bound, log_weights
from probgen.programs.structure import trace_structure

D, K = 3, 2
W = torch.tensor([[1.0, 0.5], [-0.3, 2.0], [0.7, -1.0]])
MU = torch.tensor([1.0, -2.0, 0.5])
SIGMA = 0.6


def ppca_model(x):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(K), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z @ W.T + MU, SIGMA).to_event(1), obs=x)


def exact_posterior_guide(x):
    """PPCA's exact posterior: N(M^-1 W^T (x - mu), sigma^2 M^-1), M = W^T W + sigma^2 I."""
    m = W.T @ W + SIGMA**2 * torch.eye(K)
    loc = (x - MU) @ W @ torch.linalg.inv(m).T
    cov = SIGMA**2 * torch.linalg.inv(m)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.MultivariateNormal(loc, covariance_matrix=cov))


def ppca_marginal(x):
    return dist.MultivariateNormal(MU, W @ W.T + SIGMA**2 * torch.eye(D)).log_prob(x)


def _structure(model, guide, x):
    return trace_structure(model, guide, (x,))


def test_exact_posterior_guide_gives_log_marginal_in_every_particle():
    x = MU + torch.randn(6, D) * 2
    s = _structure(ppca_model, exact_posterior_guide, x)
    log_w = log_weights(ppca_model, exact_posterior_guide, s, (x,), num_particles=4)
    assert log_w.shape == (4, 6)
    # with q = p(z | x), log p(x, z) - log q(z) = log p(x) whatever z is drawn
    assert torch.allclose(log_w, ppca_marginal(x).expand(4, 6), atol=1e-4)


def test_importance_bound_approaches_the_marginal_with_an_imperfect_guide():
    x = MU + torch.randn(5, D)
    m = W.T @ W + SIGMA**2 * torch.eye(K)

    def wide_guide(x):
        # the exact posterior mean and variances, 1.5 times too wide, without correlations
        loc = (x - MU) @ W @ torch.linalg.inv(m).T
        scale = 1.5 * (SIGMA**2 * torch.linalg.inv(m)).diagonal().sqrt()
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    # 4000 particles as 4000 copies of the batch: one vectorised pass
    k = 4000
    s = _structure(ppca_model, wide_guide, x)
    log_w = log_weights(ppca_model, wide_guide, s, (x.repeat(k, 1),), 1).reshape(k, len(x))
    elbo, bound = log_w.mean(0), importance_bound(log_w)
    exact = ppca_marginal(x)
    assert (elbo < exact - 0.05).all()  # the ELBO's gap is the KL to the true posterior
    assert torch.allclose(bound, exact, atol=0.02)


@config_enumerate
def mixture_model(x):
    weights = torch.tensor([0.2, 0.3, 0.5])
    locs = torch.tensor([[-3.0], [0.0], [2.0]])
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Categorical(weights))
        pyro.sample("x", dist.Normal(locs[c], 0.7).to_event(1), obs=x)


def test_enumeration_gives_the_exact_mixture_density():
    x = torch.linspace(-5, 4, 11)[:, None]
    s = _structure(mixture_model, None, x)
    assert s.enumerated == ("c",)
    log_p = log_weights(mixture_model, None, s, (x,), num_particles=1)[0]
    mixture = dist.MixtureSameFamily(
        dist.Categorical(torch.tensor([0.2, 0.3, 0.5])),
        dist.Normal(torch.tensor([[-3.0], [0.0], [2.0]]), 0.7).to_event(1),
    )
    assert torch.allclose(log_p, mixture.log_prob(x), atol=1e-5)


def test_terms_outside_the_data_plate_are_not_per_point():
    def model(x):
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(loc, 1.0), obs=x)

    def guide(x):
        pyro.sample("loc", dist.Delta(torch.tensor(0.5)))

    x = torch.tensor([0.0, 1.0, 2.0])
    s = _structure(model, guide, x)
    assert s.global_latents == ("loc",) and s.local_latents == ()
    log_w = log_weights(model, guide, s, (x,), 1)[0]
    expected = -0.5 * (x - 0.5) ** 2 - 0.5 * math.log(2 * math.pi)
    assert torch.allclose(log_w, expected)
