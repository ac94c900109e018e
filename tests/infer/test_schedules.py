"""Schedules: forward marginals, the forward posterior and the schedules' shapes."""

import math

import pytest
import torch

from probgen.errors import ConfigError
from probgen.infer.schedules import NoiseSchedule, cosine_betas, linear_betas, make_betas


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_marginals_equal_composed_one_step_kernels(name):
    schedule = NoiseSchedule(make_betas(name, 200))
    mean_coef, var = 1.0, 0.0
    for k, beta in enumerate(schedule.betas64.tolist()):
        # compose x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps with x_{t-1} | x_0 Gaussian
        mean_coef = math.sqrt(1 - beta) * mean_coef
        var = (1 - beta) * var + beta
        assert schedule.sqrt_alpha_bar[k].item() == pytest.approx(mean_coef, rel=1e-5, abs=1e-9)
        assert schedule.sqrt_one_minus_alpha_bar[k].item() ** 2 == pytest.approx(var, rel=1e-5)


def test_q_sample_has_the_marginal_moments():
    schedule = NoiseSchedule(make_betas("linear", 100))
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000, 1), 1.5)
    k = torch.full((200_000,), 30)
    xt = schedule.q_sample(x0, k, torch.randn(x0.shape, generator=g))
    ab = schedule.alpha_bar64[30].item()
    assert xt.mean().item() == pytest.approx(1.5 * math.sqrt(ab), abs=0.01)
    assert xt.var().item() == pytest.approx(1 - ab, rel=0.01)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_posterior_equals_gaussian_conditioning(name):
    """q(x_{t-1} | x_t, x_0) from the joint Gaussian of (x_{t-1}, x_t) given x_0."""
    schedule = NoiseSchedule(make_betas(name, 50))
    betas = schedule.betas64
    abar = schedule.alpha_bar64
    x0, xt = torch.tensor([[0.7]]), torch.tensor([[-0.4]])
    for k in range(1, 50):
        a_prev, beta = abar[k - 1], betas[k]
        # joint covariance of (x_{t-1}, x_t) given x_0, then Schur complement
        cov = torch.tensor(
            [
                [1 - a_prev, math.sqrt(1 - beta) * (1 - a_prev)],
                [math.sqrt(1 - beta) * (1 - a_prev), (1 - beta) * (1 - a_prev) + beta],
            ],
            dtype=torch.float64,
        )
        means = torch.stack([a_prev.sqrt(), abar[k].sqrt()]) * x0.item()
        gain = torch.linalg.solve(cov[1:, 1:], cov[1:, :1])[0, 0]
        mean_ref = means[0] + gain * (xt.item() - means[1])
        var_ref = cov[0, 0] - gain * cov[1, 0]
        mean, var = schedule.q_posterior(x0, xt, torch.tensor([k]))
        assert mean.item() == pytest.approx(mean_ref.item(), rel=1e-4, abs=1e-6)
        assert var.item() == pytest.approx(var_ref.item(), rel=1e-4, abs=1e-9)


def test_linear_schedule_matches_ho_et_al_and_rescales_with_T():
    betas = linear_betas(1000)
    assert betas[0].item() == pytest.approx(1e-4)
    assert betas[-1].item() == pytest.approx(0.02)
    assert bool((betas.diff() > 0).all())
    ab_1000 = torch.cumprod(1 - betas, 0)[-1].item()
    ab_100 = torch.cumprod(1 - linear_betas(100), 0)[-1].item()
    assert ab_1000 < 1e-4
    assert math.log(ab_100) == pytest.approx(math.log(ab_1000), rel=0.1)


def test_cosine_schedule_follows_its_alpha_bar():
    T, s = 1000, 0.008
    betas = cosine_betas(T)
    abar = torch.cumprod(1 - betas, 0)
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (1, 10, 500, 990):
        assert abar[t - 1].item() == pytest.approx(f(t) / f(0), rel=1e-9)
    assert bool((betas.diff() >= 0).all())
    assert betas.max().item() <= 0.999
    assert abar[-1].item() < 1e-6


def test_tables_are_consistent_and_finite():
    schedule = NoiseSchedule(make_betas("cosine", 100))
    torch.testing.assert_close(
        schedule.posterior_log_variance[1:], schedule.posterior_variance[1:].log()
    )
    assert schedule.posterior_variance[0].item() == 0.0
    assert schedule.posterior_log_variance[0] == schedule.posterior_log_variance[1]
    assert torch.isfinite(schedule.posterior_log_variance).all()
    # the posterior mean is x_0 at t = 1
    assert schedule.posterior_coef_x0[0].item() == pytest.approx(1.0)
    assert schedule.posterior_coef_xt[0].item() == 0.0
    assert schedule.state_dict() == {}  # derived from the config, never saved


def test_given_schedule_is_validated():
    betas = (0.1, 0.2, 0.3)
    torch.testing.assert_close(
        make_betas("given", 3, betas), torch.tensor(betas, dtype=torch.float64)
    )
    with pytest.raises(ConfigError, match="entries"):
        make_betas("given", 4, betas)
    with pytest.raises(ConfigError, match="0, 1"):
        make_betas("given", 2, (0.5, 1.0))
    with pytest.raises(ConfigError, match="unknown schedule"):
        make_betas("quadratic", 10)
