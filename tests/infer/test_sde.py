"""Score SDEs against closed forms: marginals, samplers and the ODE log-likelihood."""

import pytest
import torch

from probgen.infer.sde import (
    VESDE,
    VPSDE,
    SubVPSDE,
    divergence_exact,
    divergence_hutchinson,
    ode_log_prob,
    ode_sample,
    pc_sample,
)

M = torch.tensor([0.5, -1.0])
S = torch.tensor([0.7, 1.3])  # data N(M, diag(S^2))

SDES = [VPSDE(), SubVPSDE(), VESDE(0.01, 20.0)]
IDS = ["vp", "subvp", "ve"]


def exact_score(sde):
    """grad log p_t for Gaussian data: p_t = N(m(t) M, m(t)^2 S^2 + s(t)^2) per dimension."""

    def score(x, t):
        a = sde.mean_scale(t)[:, None]
        var = a**2 * S**2 + sde.std(t)[:, None] ** 2
        return -(x - a * M) / var

    return score


def data_log_prob(sde, x):
    # p_{t=0}: VE's time 0 is the data blurred by sigma_min
    var = S**2 + sde.std(torch.zeros(1)) ** 2
    return torch.distributions.Normal(M, var.sqrt()).log_prob(x).sum(1)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_marginals_solve_the_moment_equations(sde):
    # a linear SDE's mean and variance obey dm/dt = f m and d(s^2)/dt = 2 f s^2 + g^2
    t = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    h = 1e-5
    dm = (sde.mean_scale(t + h) - sde.mean_scale(t - h)) / (2 * h)
    dv = (sde.std(t + h) ** 2 - sde.std(t - h) ** 2) / (2 * h)
    f, g2 = sde.drift_coefficient(t), sde.diffusion_squared(t)
    assert torch.allclose(dm, f * sde.mean_scale(t), rtol=1e-5)
    assert torch.allclose(dv, 2 * f * sde.std(t) ** 2 + g2, rtol=1e-4)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_euler_maruyama_simulation_matches_the_marginal(sde):
    g = torch.Generator().manual_seed(0)
    n, steps, t_end = 20000, 400, 0.6
    x0 = torch.full((n, 2), 1.5)
    x = x0 + sde.std(torch.zeros(1)) * torch.randn(n, 2, generator=g)
    dt = t_end / steps
    for i in range(steps):
        t = torch.full((n,), i * dt)
        x = x + sde.drift_coefficient(t)[:, None] * x * dt
        x = x + (sde.diffusion_squared(t)[:, None] * dt).sqrt() * torch.randn(n, 2, generator=g)
    t = torch.full((1,), t_end)
    mean, std = sde.mean_scale(t) * 1.5, sde.std(t)
    assert torch.allclose(x.mean(0), mean.expand(2), atol=0.03 * float(std) + 0.01)
    assert torch.allclose(x.std(0), std.expand(2), rtol=0.03)
    z = torch.randn(n, 2, generator=g)
    perturbed, _ = sde.perturb(x0, torch.full((n,), t_end), z)
    assert torch.allclose(perturbed.std(0), std.expand(2), rtol=0.03)


@pytest.mark.parametrize("sde", SDES[:2], ids=IDS[:2])
def test_ode_log_likelihood_of_a_gaussian_is_exact(sde):
    g = torch.Generator().manual_seed(1)
    x = M + S * torch.randn(8, 2, generator=g)
    exact = ode_log_prob(sde, exact_score(sde), x, n_steps=50, exact_trace=True)
    assert torch.allclose(exact, data_log_prob(sde, x), atol=0.03)
    # 200 probes per point in one batch
    hutchinson = ode_log_prob(sde, exact_score(sde), x.repeat(200, 1), n_steps=20, generator=g)
    assert torch.allclose(hutchinson.reshape(200, 8).mean(0), exact, atol=0.05)


def test_ve_ode_log_likelihood_with_a_wide_prior():
    # VE's prior N(0, sigma_max^2) is exact only as sigma_max grows; data centred at 0
    sde = VESDE(0.01, 200.0)

    def score(x, t):
        return -x / (S**2 + sde.std(t)[:, None] ** 2)

    x = S * torch.randn(8, 2)
    expected = torch.distributions.Normal(0.0, (S**2 + 1e-4).sqrt()).log_prob(x).sum(1)
    assert torch.allclose(ode_log_prob(sde, score, x, 60, exact_trace=True), expected, atol=0.02)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_samplers_with_the_exact_score_recover_the_data(sde):
    g = torch.Generator().manual_seed(2)
    prior = sde.prior_sample((4000, 2), M, generator=g)
    for x in (
        pc_sample(sde, exact_score(sde), prior, 200, generator=g),
        ode_sample(sde, exact_score(sde), prior, 50),
    ):
        assert torch.allclose(x.mean(0), M, atol=0.07)
        assert torch.allclose(x.std(0), S, rtol=0.06)


def test_hutchinson_divergence_is_unbiased_for_a_linear_map():
    a = torch.tensor([[2.0, 1.0, 0.0], [0.5, -1.0, 3.0], [1.0, 0.0, 0.25]])
    x = torch.randn(4, 3)
    exact, out = divergence_exact(lambda z: z @ a.T, x)
    assert torch.allclose(exact, torch.full((4,), float(a.trace())))
    assert torch.allclose(out, x @ a.T)
    probes = torch.randint(0, 2, (5000 * 4, 3)).float() * 2 - 1
    estimates, _ = divergence_hutchinson(lambda z: z @ a.T, x.repeat(5000, 1), probes)
    assert torch.allclose(estimates.reshape(5000, 4).mean(0), exact, atol=0.1)
