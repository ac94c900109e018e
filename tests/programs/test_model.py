"""User programs through probgen's fit loop: the numbers their maths fixes, and reloads."""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import constraints

import probgen
from probgen.errors import ConfigError
from probgen.programs.guides import AUTOGUIDES
from probgen.programs.model import PyroProgram
from probgen.runs import load_model
from probgen.train import fit


def _points(path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1)


def test_ppca_scores_match_its_closed_form_marginal(program_file, points_csv):
    path = program_file("ppca")
    net = fit(f"{path}:model,guide", str(points_csv), steps=600, lr=0.05, batch_size=400)
    assert isinstance(net, PyroProgram) and net.capabilities() >= {"elbo", "log_marginal"}
    x = torch.as_tensor(_points(points_csv)[:50], dtype=torch.float32)
    w, mu, sigma = net.param("W"), net.param("mu"), net.param("sigma")
    exact = dist.MultivariateNormal(mu, w @ w.T + sigma**2 * torch.eye(2)).log_prob(x)
    elbo, nll_is = net.elbo(x, num_particles=50), net.log_marginal(x, num_particles=2000)
    assert (elbo.mean() < exact.mean() + 0.02) and torch.allclose(nll_is, exact, atol=0.05)
    # the data sit near (100, -20) with unequal scales: the program saw them as they are
    assert torch.allclose(mu, torch.tensor([100.0, -20.0]), atol=1.0)


def test_minibatches_count_as_the_whole_data_set(program_file, tmp_path):
    """A Normal mean with known unit variance: the posterior sd is 1/sqrt(N + 1/100), which
    a guide reaches only if each batch of B counts N/B times (1/sqrt(B) otherwise)."""
    data = np.random.default_rng(0).normal([5.0, -3.0], 1.0, size=(400, 2))
    np.save(tmp_path / "unit.npy", data)
    path = program_file("gaussian_mean")
    net = fit(f"{path}:model", str(tmp_path / "unit.npy"), steps=1500, lr=0.03, batch_size=40)
    n = int(net.num_train)
    data_mean = data.mean(0)
    scale = net.autoguide.scales.loc.detach()
    assert torch.allclose(scale, torch.full((2,), (n + 0.01) ** -0.5), rtol=0.25)
    loc = net.autoguide.locs.loc.detach().numpy()
    assert np.allclose(loc, data_mean, atol=0.3)


def test_enumerated_mixture_learns_weights_and_scores_exactly(program_file, clusters_csv):
    path = program_file("gmm")
    net = fit(f"{path}:model", str(clusters_csv), steps=300, lr=0.05, batch_size=540)
    assert net.structure.enumerated == ("c",) and "log_prob" in net.capabilities()
    assert np.allclose(net.param("weights").numpy(), [0.2, 0.3, 0.5], atol=0.06)
    x = torch.randn(7, 2) * 3
    mixture = dist.MixtureSameFamily(
        dist.Categorical(net.param("weights")),
        dist.Normal(net.param("locs"), net.param("scale")).to_event(1),
    )
    assert torch.allclose(net.log_prob(x), mixture.log_prob(x), atol=1e-4)


def test_nuts_chains_converge_and_predict_the_data(program_file, points_csv, tmp_path):
    path = program_file("gaussian_mean")
    options = {"mcmc": "nuts", "chains": 2, "num_samples": 150, "warmup": 150}
    net = fit(f"{path}:model", str(points_csv), tmp_path / "run", options=options, quiet=True)
    chains = net.chains()["loc"]
    assert chains.shape == (2, 150, 2)
    from probgen.programs.mcmc import chain_summary

    assert chain_summary({"loc": chains})["max_r_hat"] <= 1.05
    data = _points(points_csv)
    assert np.allclose(chains.mean((0, 1)).numpy(), data[:360].mean(0), atol=0.3)
    reloaded = load_model(tmp_path / "run", trust_code=True)
    assert torch.equal(reloaded.chains()["loc"], chains)
    predictive = reloaded.sample(4000).numpy()
    assert np.allclose(predictive.mean(0), data.mean(0), atol=0.4)
    assert np.allclose(predictive.std(0), 1.0, atol=0.1)  # the model's unit noise


@pytest.mark.parametrize("elbo", ["trace", "tracegraph", "meanfield", "renyi", "iwae"])
def test_every_elbo_trains(program_file, elbo):
    path = program_file("ppca")
    options = {"elbo": elbo, "particles": 2}
    net = fit(f"{path}:model,guide", "moons", steps=3, options=options, quiet=True)
    assert np.isfinite(net.elbo(torch.zeros(3, 2)).numpy()).all()


@pytest.mark.parametrize("guide", AUTOGUIDES)
def test_every_autoguide_trains(program_file, guide):
    path = program_file("gaussian_mean")
    net = fit(f"{path}:model", "moons", steps=3, options={"guide": guide}, quiet=True)
    assert net.autoguide is not None and net.sample(5).shape == (5, 2)


def test_reload_draws_the_same_samples(program_file, tmp_path):
    path = program_file("ppca")
    net = fit(f"{path}:model,guide", "moons", tmp_path / "run", steps=20, quiet=True)
    reloaded = load_model(tmp_path / "run", trust_code=True)
    for model in (net, reloaded):
        torch.manual_seed(7)
        model.draws_ = model.sample(6)
    assert torch.equal(net.draws_, reloaded.draws_)
    x = torch.randn(4, 2)
    torch.manual_seed(1)
    a = net.elbo(x)
    torch.manual_seed(1)
    assert torch.equal(reloaded.elbo(x), a)


def test_autoguide_refuses_local_latents_on_minibatches(program_file):
    path = program_file("ppca")
    with pytest.raises(ConfigError, match="AutoGuide cannot follow mini-batches of the local"):
        fit(f"{path}:model", "moons", steps=1, quiet=True)


def test_program_errors_name_the_file_and_line(program_file, tmp_path):
    path = program_file("broken")
    with pytest.raises(ConfigError, match=rf"{path}:7: running the model on the first batch"):
        fit(f"{path}:model", "moons", tmp_path / "run", steps=1)
    with pytest.raises(ConfigError, match="no observed site"):
        fit(f"{path}:unobserved", "moons", tmp_path / "run", steps=1)
    assert not (tmp_path / "run").exists()  # nothing written before the program ran


class Scaled(torch.nn.Module):
    """A class program with constructor keywords (``--set``)."""

    def __init__(self, prior_scale: float = 10.0, dims: int = 2):
        super().__init__()
        self.prior_scale, self.dims = prior_scale, dims

    def model(self, x):
        loc = pyro.sample("loc", dist.Normal(torch.zeros(self.dims), self.prior_scale).to_event(1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

    def guide(self, x):
        loc = pyro.param("q_loc", torch.zeros(self.dims))
        scale = pyro.param("q_scale", torch.ones(self.dims), constraint=constraints.positive)
        pyro.sample("loc", dist.Normal(loc, scale).to_event(1))


def test_class_programs_take_keywords_and_reload(tmp_path):
    fitted = probgen.fit(
        Scaled, data="moons", out=tmp_path / "run", steps=5, options={"prior_scale": "2.5"}
    )
    assert fitted.model.program.prior_scale == 2.5
    reloaded = probgen.load(tmp_path / "run", trust_code=True)
    assert reloaded.model.program.prior_scale == 2.5
    assert torch.equal(reloaded.model.param("q_loc"), fitted.model.param("q_loc"))
    with pytest.raises(ConfigError, match="unknown option 'nope'"):
        probgen.fit(Scaled, data="moons", steps=1, options={"nope": 1})


def plain_model(x):
    loc = pyro.param("loc", torch.zeros(2))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)


def test_python_api_fits_samples_evaluates_and_converts(tmp_path):
    fitted = probgen.fit(plain_model, data="moons", out=tmp_path / "run", steps=200, lr=0.05)
    assert fitted.capabilities() >= {"sample", "log_prob"}
    assert fitted.sample(3).shape == (3, 2)
    results = fitted.evaluate(metrics=["nll"])
    assert np.isfinite(results["nll"])
    idata = fitted.to_arviz(draws=10)
    assert {"posterior_predictive", "log_likelihood", "observed_data"} <= set(idata.groups())
    reloaded = probgen.load(tmp_path / "run", trust_code=True)
    assert torch.equal(reloaded.model.param("loc"), fitted.model.param("loc"))


def test_per_point_guides_get_batch_indices_and_pyro_scales_them():
    from examples.program_per_point_guide import guide, model

    fitted = probgen.fit(model, guide, data="moons", steps=40, batch_size=100, lr=0.05)
    net = fitted.model
    assert net.structure.subsampled and "elbo" not in net.capabilities()
    loc = net.param("loc")
    assert loc.shape == (int(net.num_train),)
    assert 0 < int((loc != 0).sum()) <= 40 * 100  # only rows seen in batches moved
    # the subsampled plate scales by N/B itself: probgen adds no second factor
    model_fn, guide_fn = net._scaled(100)
    assert model_fn == net.model and guide_fn == net.guide
