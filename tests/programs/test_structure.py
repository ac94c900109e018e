"""Reading a program's sites and plates from one trace."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import config_enumerate

from probgen.errors import ConfigError
from probgen.programs.structure import analyse


def _analyse(model, guide=None, x=None):
    x = torch.zeros(5, 2) if x is None else x
    guide_trace = poutine.trace(guide).get_trace(x) if guide else None
    return analyse(poutine.trace(model).get_trace(x), guide_trace, x)


def test_local_global_and_enumerated_sites():
    @config_enumerate
    def model(x):
        scale = pyro.sample("scale", dist.LogNormal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Bernoulli(0.5))
            z = pyro.sample("z", dist.Normal(c, 1.0))
            pyro.deterministic("shifted", z + 1)
            pyro.sample("x", dist.Normal(z[:, None], scale).to_event(1), obs=x)

    s = _analyse(model)
    assert s.observed == "x" and s.data_plate == "data" and s.data_dim == -1
    assert s.global_latents == ("scale",) and s.local_latents == ("z",)
    assert s.enumerated == ("c",) and s.deterministic == ("shifted",)
    assert s.max_plate_nesting == 1 and not s.subsampled


def test_the_data_site_is_the_one_observing_the_batch():
    def model(x):
        pyro.sample("prior_obs", dist.Normal(0.0, 1.0), obs=torch.tensor(0.3))
        with pyro.plate("rows", x.shape[0], dim=-2):
            with pyro.plate("cols", x.shape[1], dim=-1):
                pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)

    s = _analyse(model)
    assert s.observed == "x" and s.data_plate == "rows" and s.data_dim == -2
    assert s.max_plate_nesting == 2


def test_subsampled_plate_is_recognised():
    def model(x, idx=torch.arange(5)):
        with pyro.plate("data", size=100, subsample=idx):
            pyro.sample("x", dist.Normal(0.0, 1.0).expand([2]).to_event(1), obs=x)

    assert _analyse(model).subsampled


@pytest.mark.parametrize(
    "model, guide, message",
    [
        (lambda x: pyro.sample("z", dist.Normal(0.0, 1.0)), None, "no observed site"),
        (
            lambda x: pyro.sample("x", dist.Normal(0.0, 1.0).expand(x.shape).to_event(2), obs=x),
            lambda x: pyro.sample("w", dist.Normal(0.0, 1.0)),
            "the guide samples w, which the model lacks",
        ),
    ],
)
def test_programs_that_cannot_be_fitted(model, guide, message):
    with pytest.raises(ConfigError, match=message):
        _analyse(model, guide)


def test_a_guide_must_not_sample_an_enumerated_site():
    @config_enumerate
    def model(x):
        c = pyro.sample("c", dist.Bernoulli(0.5))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(c, 1.0).expand([2]).to_event(1), obs=x)

    def guide(x):
        pyro.sample("c", dist.Bernoulli(0.5))

    with pytest.raises(ConfigError, match="enumerated in the model and sampled by the guide"):
        _analyse(model, guide)
