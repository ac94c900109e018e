import math

import pyro
import pyro.distributions as dist
import torch

from probgen.infer.importance import iwae_bound, log_importance_weights, log_marginal_estimate


def model(x, y=None):
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=x)


def exact_guide(x, y=None):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(x / 2, math.sqrt(0.5)))


def poor_guide(x, y=None):
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))


def test_exact_posterior_gives_constant_weights_equal_to_log_marginal():
    x = torch.tensor([-1.0, 0.5, 2.0])
    log_w = log_importance_weights(model, exact_guide, x, num_particles=7)
    exact = dist.Normal(0.0, math.sqrt(2.0)).log_prob(x)
    assert log_w.shape == (7, 3)
    torch.testing.assert_close(log_w, exact.expand(7, 3))


def test_bound_tightens_with_particles():
    torch.manual_seed(0)
    x = torch.tensor([2.5, -3.0])
    exact = dist.Normal(0.0, math.sqrt(2.0)).log_prob(x)
    elbo = log_importance_weights(model, poor_guide, x, num_particles=20_000).mean(0)
    k10 = iwae_bound(log_importance_weights(model, poor_guide, x, num_particles=10))
    k5000 = log_marginal_estimate(model, poor_guide, x, num_particles=5000, chunk=700)
    assert (elbo < k5000).all() and (k5000 <= exact + 0.02).all()
    torch.testing.assert_close(k5000, exact, atol=0.05, rtol=0)
    assert k10.shape == (2,)
