"""Langevin samplers against analytic targets; the Pyro kernels under MCMC and in ArviZ."""

import math

import arviz as az
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC

from probgen.infer.langevin import MALA, ULA, AnnealedLangevin
from probgen.infer.langevin_particles import (
    annealed_langevin_dynamics,
    langevin_dynamics,
    mala,
    score_of,
)

# two chains on a machine with few cores run one after the other, as Pyro warns
pytestmark = pytest.mark.filterwarnings("ignore:num_chains=2 is more than available_cpu")

MU = torch.tensor([1.0, -2.0])
COV = torch.tensor([[1.0, 0.8], [0.8, 1.0]])

# NCSN's classic test: 0.8 N((5, 5), I) + 0.2 N((-5, -5), I)
WEIGHTS = torch.tensor([0.8, 0.2])
CENTRES = torch.tensor([[5.0, 5.0], [-5.0, -5.0]])


def mixture_score(x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
    """Exact score of the mixture blurred by N(0, sigma^2 I): components N(mu_k, (1+sigma^2) I)."""
    var = 1.0 + sigma**2
    diff = x[:, None, :] - CENTRES  # (N, K, 2)
    logits = WEIGHTS.log() - 0.5 * (diff**2).sum(-1) / var
    resp = torch.softmax(logits, dim=1)
    return -(resp[..., None] * diff).sum(1) / var


def positive_fraction(x: torch.Tensor) -> float:
    return float((x.sum(1) > 0).float().mean())


def gaussian_score(x):
    return -(x - MU)


def test_ula_stationary_variance_has_the_step_size_bias():
    # for N(mu, 1), x' = (1-h) x + h mu + sqrt(2h) z has stationary variance 2 / (2 - h)
    g = torch.Generator().manual_seed(0)
    h = 0.2
    x = langevin_dynamics(torch.zeros(20000, 2), gaussian_score, 200, h, generator=g)
    assert torch.allclose(x.mean(0), MU, atol=0.03)
    assert torch.allclose(x.var(0), torch.full((2,), 2 / (2 - h)), atol=0.04)


def test_langevin_noise_and_clamp_options():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(100, 2, generator=g) * 3
    ascent = langevin_dynamics(x0, gaussian_score, 200, 0.1, noise_std=0.0)
    assert torch.allclose(ascent, MU.expand(100, 2), atol=1e-4)
    boxed = langevin_dynamics(x0, gaussian_score, 50, 0.1, clamp=(-0.5, 0.5), generator=g)
    assert boxed.min() >= -0.5 and boxed.max() <= 0.5
    per_particle_box = langevin_dynamics(
        x0, gaussian_score, 50, 0.1, clamp=(torch.tensor([0.0, -3.0]), 2.0), generator=g
    )
    assert per_particle_box[:, 0].min() >= 0.0 and per_particle_box[:, 1].min() >= -3.0


def test_score_of_matches_the_analytic_gradient_under_no_grad():
    x = torch.randn(5, 2)
    with torch.no_grad():
        score = score_of(lambda x: -0.5 * ((x - MU) ** 2).sum(1))(x)
    assert torch.allclose(score, gaussian_score(x))


def test_mala_removes_the_step_size_bias():
    # at h = 0.5 ULA's variance would be 2 / 1.5 = 1.33; MALA's is exactly 1
    g = torch.Generator().manual_seed(1)

    def log_prob(x):
        return -0.5 * ((x - MU) ** 2).sum(1)

    x, rate = mala(torch.zeros(10000, 2), log_prob, 150, 0.5, generator=g)
    assert rate.shape == (10000,)
    assert 0.5 < float(rate.mean()) < 1.0
    assert torch.allclose(x.mean(0), MU, atol=0.04)
    assert torch.allclose(x.var(0), torch.ones(2), atol=0.05)
    steps = torch.full((10000,), 0.5)
    x, _ = mala(torch.zeros(10000, 2), log_prob, 150, steps, generator=g)
    assert torch.allclose(x.var(0), torch.ones(2), atol=0.05)


def test_mala_rejects_every_move_out_of_the_support():
    def log_prob(x):
        return torch.where(x[:, 0] > 0, -0.5 * (x**2).sum(1), -math.inf)

    x, _ = mala(torch.full((500, 2), 0.5), log_prob, 50, 0.3)
    assert bool((x[:, 0] > 0).all())


def test_annealed_langevin_recovers_mixture_weights_and_plain_langevin_does_not():
    g = torch.Generator().manual_seed(0)
    sigmas = torch.exp(torch.linspace(math.log(20.0), math.log(1.0), 10))
    init = (torch.rand(2000, 2, generator=g) * 16 - 8).to(torch.float32)
    annealed = annealed_langevin_dynamics(
        init, mixture_score, sigmas, n_steps_each=100, eps=0.1, final_denoise=False, generator=g
    )
    plain = langevin_dynamics(init, mixture_score, 1000, 0.05, generator=g)
    assert abs(positive_fraction(annealed) - 0.8) < 0.05
    assert abs(positive_fraction(plain) - 0.8) > 0.15
    # both land on the modes: the failure is in the weights only
    assert float(torch.cdist(plain, CENTRES).min(1).values.median()) < 1.5


def test_final_denoising_is_tweedie_posterior_mean():
    # data N(0, 1) blurred by sigma: E[x0 | x] = x / (1 + sigma^2) = x + sigma^2 * score(x)
    sigma = 0.5
    x = torch.randn(10, 2)

    def score(x, s):
        return -x / (1 + s**2)

    out = annealed_langevin_dynamics(x, score, [sigma], n_steps_each=0, eps=0.1)
    assert torch.allclose(out, x / (1 + sigma**2))


PRECISION = torch.linalg.inv(COV)


def correlated_potential(params):
    diff = params["z"] - MU
    return 0.5 * diff @ PRECISION @ diff


def correlated_model():
    pyro.sample("z", dist.MultivariateNormal(MU, COV))


def test_mala_kernel_with_adaptation_two_chains_and_arviz():
    pyro.set_rng_seed(0)
    kernel = MALA(potential_fn=correlated_potential, step_size=1.0)
    mcmc = MCMC(
        kernel,
        num_samples=1500,
        warmup_steps=300,
        num_chains=2,
        initial_params={"z": torch.tensor([[3.0, 0.0], [-1.0, -4.0]])},
        disable_progbar=True,
    )
    mcmc.run()
    chains = mcmc.get_samples(group_by_chain=True)["z"]
    assert chains.shape == (2, 1500, 2)
    z = chains.reshape(-1, 2)
    # loose bounds: ~300 effective draws; the benchmark runs the long chains
    assert torch.allclose(z.mean(0), MU, atol=0.25)
    assert torch.allclose(torch.cov(z.T), COV, atol=0.25)
    diag = mcmc.diagnostics()
    for chain in ("chain 0", "chain 1"):
        assert 0.4 < diag["acceptance rate"][chain] < 0.75  # adapted towards 0.574
        assert diag["step size"][chain] < 1.0
        assert diag["divergences"][chain] == []
    idata = az.from_pyro(mcmc)
    assert idata.posterior["z"].shape == (2, 1500, 2)
    assert idata.sample_stats["diverging"].shape == (2, 1500)
    assert float(az.rhat(idata)["z"].max()) < 1.1


def test_mala_kernel_draws_each_chain_its_own_start_from_a_model():
    pyro.set_rng_seed(5)
    starts = []
    mcmc = MCMC(
        MALA(correlated_model, step_size=0.5),
        num_samples=150,
        warmup_steps=50,
        num_chains=2,
        disable_progbar=True,
        hook_fn=lambda kernel, params, stage, i: starts.append(params["z"]) if i == 0 else None,
    )
    mcmc.run()
    assert not torch.equal(starts[0], starts[1])
    assert torch.allclose(mcmc.get_samples()["z"].mean(0), MU, atol=0.6)
    assert len(az.from_pyro(mcmc).posterior.chain) == 2


def test_ula_kernel_with_potential_and_initial_params_per_chain():
    pyro.set_rng_seed(1)

    def potential(params):
        return 0.5 * ((params["z"] - MU) ** 2).sum()

    initial = {"z": torch.tensor([[10.0, 10.0], [-10.0, -10.0]])}
    mcmc = MCMC(
        ULA(potential_fn=potential, step_size=0.2),
        num_samples=2000,
        warmup_steps=100,
        num_chains=2,
        initial_params=initial,
        disable_progbar=True,
    )
    mcmc.run()
    z = mcmc.get_samples()["z"]
    assert torch.allclose(z.mean(0), MU, atol=0.2)
    # the kernel is unadjusted: ULA's biased variance 2 / (2 - h)
    assert torch.allclose(z.var(0), torch.full((2,), 2 / 1.8), atol=0.2)
    assert mcmc.diagnostics()["acceptance rate"]["chain 1"] == 1.0


def test_ula_kernel_with_score_and_constrained_model():
    pyro.set_rng_seed(2)
    mcmc = MCMC(
        ULA(score_fn=lambda p: {"z": gaussian_score(p["z"])}, step_size=0.2),
        num_samples=1000,
        warmup_steps=100,
        initial_params={"z": torch.zeros(2)},
        disable_progbar=True,
    )
    mcmc.run()
    assert torch.allclose(mcmc.get_samples()["z"].mean(0), MU, atol=0.35)

    def positive_model():
        pyro.sample("rate", dist.Gamma(4.0, 2.0))

    mcmc = MCMC(ULA(positive_model, step_size=0.1), 800, warmup_steps=50, disable_progbar=True)
    mcmc.run()
    rate = mcmc.get_samples()["rate"]
    assert bool((rate > 0).all())  # moved in unconstrained space, returned constrained
    assert abs(float(rate.mean()) - 2.0) < 0.3


def test_divergences_are_recorded_and_the_chain_stays_put():
    def potential(params):
        return (params["z"] ** 4).sum()

    mcmc = MCMC(
        ULA(potential_fn=potential, step_size=5.0),
        num_samples=20,
        warmup_steps=0,
        initial_params={"z": torch.tensor([3.0])},
        disable_progbar=True,
    )
    mcmc.run()
    divergences = mcmc.diagnostics()["divergences"]["chain 0"]
    assert len(divergences) > 0
    assert bool(torch.isfinite(mcmc.get_samples()["z"]).all())
    assert az.from_pyro(mcmc).sample_stats["diverging"].values.any()


def test_annealed_kernel_mixes_between_modes_in_proportion():
    pyro.set_rng_seed(3)
    sigmas = torch.exp(torch.linspace(math.log(20.0), math.log(1.0), 4)).tolist()
    kernel = AnnealedLangevin(
        score_fn=lambda p, s: {"z": mixture_score(p["z"][None], s)[0]},
        sigmas=sigmas,
        n_steps_each=50,
        eps=0.1,
    )
    mcmc = MCMC(
        kernel,
        num_samples=100,
        warmup_steps=0,
        initial_params={"z": torch.tensor([5.0, 5.0])},
        disable_progbar=True,
    )
    mcmc.run()
    z = mcmc.get_samples()["z"]
    assert abs(positive_fraction(z) - 0.8) < 0.15  # 3.75 binomial standard errors
    assert mcmc.diagnostics()["step size"]["chain 0"] == 0.1


def test_annealed_kernel_tempers_a_potential_and_ends_at_its_target():
    pyro.set_rng_seed(4)

    def potential(params):
        return 0.5 * ((params["z"] - MU) ** 2).sum()

    kernel = AnnealedLangevin(
        potential_fn=potential, sigmas=[2.0, 1.4, 1.0], n_steps_each=30, eps=0.1
    )
    mcmc = MCMC(
        kernel,
        num_samples=120,
        warmup_steps=0,
        initial_params={"z": torch.zeros(2)},
        disable_progbar=True,
    )
    mcmc.run()
    z = mcmc.get_samples()["z"]
    assert torch.allclose(z.mean(0), MU, atol=0.35)
    assert torch.allclose(z.var(0), torch.ones(2), atol=0.45)


def test_kernels_check_their_target():
    with pytest.raises(ValueError, match="exactly one"):
        ULA()
    with pytest.raises(ValueError, match="exactly one"):
        ULA(correlated_model, potential_fn=lambda p: p["z"].sum())
    with pytest.raises(ValueError, match="decreasing"):
        AnnealedLangevin(correlated_model, sigmas=[1.0, 2.0])
    mcmc = MCMC(ULA(potential_fn=lambda p: p["z"].sum()), 5, disable_progbar=True)
    with pytest.raises(ValueError, match="initial_params"):
        mcmc.run()
