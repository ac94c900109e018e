"""Objectives of a program: the N/B scaling of mini-batches and the ELBO by name."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import (
    RenyiELBO,
    Trace_ELBO,
    TraceEnum_ELBO,
    TraceGraph_ELBO,
    TraceMeanField_ELBO,
)

from probgen.programs.objectives import ScaleDataPlate, make_elbo


def model(x):
    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(loc, 1.0), obs=x)


def guide(x):
    pyro.sample("loc", dist.Delta(torch.tensor(0.25)))


def test_data_plate_counts_a_batch_n_over_b_times():
    x_batch, n = torch.tensor([0.0, 1.0, -1.0, 2.0]), 100
    scale = ScaleDataPlate("data", n / len(x_batch))
    loss = Trace_ELBO().differentiable_loss(scale(model), scale(guide), x_batch)
    log_lik = dist.Normal(0.25, 1.0).log_prob(x_batch).sum()
    # the prior of the global latent counts once, the batch's likelihood N/B times
    expected = -(dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.25)) + n / 4 * log_lik)
    assert torch.allclose(loss, expected)


@pytest.mark.parametrize(
    "name, enumerated, cls",
    [
        ("auto", False, Trace_ELBO),
        ("auto", True, TraceEnum_ELBO),
        ("trace", False, Trace_ELBO),
        ("tracegraph", False, TraceGraph_ELBO),
        ("meanfield", False, TraceMeanField_ELBO),
        ("renyi", False, RenyiELBO),
        ("iwae", False, RenyiELBO),
    ],
)
def test_elbo_by_name(name, enumerated, cls):
    elbo = make_elbo(name, enumerated, particles=3, max_plate_nesting=1)
    assert type(elbo) is cls and elbo.num_particles == 3 and elbo.vectorize_particles
    if name == "iwae":
        assert elbo.alpha == 0.0


def test_enumerated_models_need_traceenum():
    with pytest.raises(ValueError, match="cannot sum out"):
        make_elbo("trace", True, 1, 1)


def test_iwae_bound_is_tighter_than_the_elbo():
    x = torch.tensor([3.0, 3.5])

    def wide(x):
        pyro.sample("loc", dist.Normal(0.0, 2.0))

    torch.manual_seed(0)
    elbo = -Trace_ELBO(num_particles=2000, vectorize_particles=True).loss(model, wide, x)
    iwae = -make_elbo("iwae", False, 2000, 1).loss(model, wide, x)
    exact = dist.MultivariateNormal(torch.zeros(2), torch.eye(2) + 1).log_prob(x)
    assert elbo < iwae < float(exact) + 0.05
    assert math.isfinite(iwae)
