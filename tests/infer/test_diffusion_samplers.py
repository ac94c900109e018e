"""Diffusion samplers, checked with the exact denoiser of Gaussian data.

For data x_0 ~ N(m, s^2) the denoiser is known in closed form,
E[x_0 | x_t] = m + sqrt(abar) s^2 / (abar s^2 + 1 - abar) (x_t - sqrt(abar) m), so every
sampler must return N(m, s^2) draws up to its discretisation error.
"""

import math

import pytest
import torch

from probgen.infer.diffusion_samplers import (
    Prediction,
    ancestral,
    ddim,
    ddim_encode,
    dpm_solver_2m,
    log_snr_timesteps,
    spaced_timesteps,
)
from probgen.infer.schedules import make_betas

M, S = 1.5, 0.5


def gaussian_predictor(alpha_bar, m=M, s=S, var_interp=None):
    def predict(x, k):
        ab = alpha_bar[k]
        gain = math.sqrt(ab) * s**2 / (ab * s**2 + 1 - ab)
        x0 = m + gain * (x - math.sqrt(ab) * m)
        interp = None if var_interp is None else torch.full_like(x, var_interp)
        return Prediction(x0, interp)

    return predict


def alpha_bar(T, name="linear"):
    return torch.cumprod(1 - make_betas(name, T), 0).tolist()


def noise(n, seed=0, shape=(1,)):
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))


def test_spaced_timesteps_start_at_T_and_keep_the_true_stride():
    assert spaced_timesteps(1000, 50) == list(range(999, 0, -20))
    assert spaced_timesteps(10, 3) == [9, 6, 2]
    assert spaced_timesteps(7, 7) == list(range(6, -1, -1))
    later = spaced_timesteps(1000, 50, start=994)
    assert later[0] == 994
    assert set(torch.tensor(later).diff().tolist()) <= {-19, -20}
    with pytest.raises(ValueError):
        spaced_timesteps(10, 11)


def test_log_snr_timesteps_are_even_in_log_snr_between_their_ends():
    ab = alpha_bar(1000, "cosine")
    steps = log_snr_timesteps(ab, 20, 995, 19)
    assert len(steps) == 20 and steps[0] == 995 and steps[-1] == 19
    assert all(a > b for a, b in zip(steps, steps[1:]))
    log_snr = [math.log(ab[k] / (1 - ab[k])) for k in steps]
    ideal = (log_snr[-1] - log_snr[0]) / 19
    gaps = torch.tensor(log_snr).diff()
    # even up to rounding to whole indices, which is coarse only near t = T
    assert (gaps - ideal).abs().max() < 0.25 * ideal
    assert (gaps[5:] - ideal).abs().max() < 0.05 * ideal
    # as many steps as indices: every index once, still decreasing
    assert log_snr_timesteps(ab, 977, 995, 19) == list(range(995, 18, -1))
    assert log_snr_timesteps(ab, 1, 995, 19) == [995]
    with pytest.raises(ValueError):
        log_snr_timesteps(ab, 978, 995, 19)
    with pytest.raises(ValueError):
        log_snr_timesteps(ab, 5, 10, 20)


def test_ddim_with_eta_one_is_the_ancestral_sampler():
    ab = alpha_bar(100)
    predict = gaussian_predictor(ab)
    steps = spaced_timesteps(100, 100)
    for subset in (steps, spaced_timesteps(100, 10)):
        x_anc = ancestral(
            predict, noise(500), ab, subset, "posterior", torch.Generator().manual_seed(1)
        )
        x_ddim = ddim(predict, noise(500), ab, subset, 1.0, torch.Generator().manual_seed(1))
        torch.testing.assert_close(x_anc, x_ddim, rtol=1e-4, atol=1e-5)


def test_learned_variance_interpolates_in_log_space_between_beta_and_posterior():
    ab = alpha_bar(50)
    steps = spaced_timesteps(50, 50)
    for interp, fixed in ((1.0, "beta"), (-1.0, "posterior")):
        learned = ancestral(
            gaussian_predictor(ab, var_interp=interp),
            noise(100),
            ab,
            steps,
            "learned",
            torch.Generator().manual_seed(2),
        )
        ref = ancestral(
            gaussian_predictor(ab), noise(100), ab, steps, fixed, torch.Generator().manual_seed(2)
        )
        torch.testing.assert_close(learned, ref, rtol=1e-4, atol=1e-5)


def exact_flow(x_T, ab_T, m=M, s=S):
    """The probability-flow ODE's map x_T -> x_0 for Gaussian data (a linear map)."""
    return m + s * (x_T - math.sqrt(ab_T) * m) / math.sqrt(ab_T * s**2 + 1 - ab_T)


@pytest.mark.parametrize(
    "run",
    [
        lambda p, x, ab: ancestral(p, x, ab, spaced_timesteps(1000, 1000), "posterior"),
        lambda p, x, ab: ancestral(p, x, ab, spaced_timesteps(1000, 1000), "beta"),
        lambda p, x, ab: ddim(p, x, ab, spaced_timesteps(1000, 200), 0.0),
        lambda p, x, ab: ddim(p, x, ab, spaced_timesteps(1000, 200), 0.5),
        lambda p, x, ab: dpm_solver_2m(p, x, ab, spaced_timesteps(1000, 20)),
    ],
    ids=["ancestral", "ancestral-beta", "ddim", "ddim-eta0.5", "dpm++2m"],
)
def test_samplers_return_the_data_distribution(run):
    torch.manual_seed(3)
    ab = alpha_bar(1000, "cosine")
    x = run(gaussian_predictor(ab), noise(20_000), ab)
    assert x.mean().item() == pytest.approx(M, abs=0.015)
    assert x.std().item() == pytest.approx(S, rel=0.03)


def test_dpm_solver_is_second_order_and_beats_ddim():
    ab = alpha_bar(1000, "cosine")
    predict = gaussian_predictor(ab)
    x_T = noise(2000)
    exact = exact_flow(x_T, ab[-1])

    def error(sampler, steps):
        return (sampler(predict, x_T, ab, spaced_timesteps(1000, steps)) - exact).abs().max()

    assert error(dpm_solver_2m, 10) < 0.5 * error(ddim, 10)
    # 20 second-order steps are more accurate than 80 first-order ones
    assert error(dpm_solver_2m, 20) < 0.3 * error(ddim, 80)


def test_ddim_encoding_follows_the_flow_and_inverts_decoding():
    ab = alpha_bar(1000, "cosine")
    predict = gaussian_predictor(ab)
    x0 = M + S * noise(5000, seed=4)
    steps = spaced_timesteps(1000, 1000)
    z = ddim_encode(predict, x0, ab, steps)
    a = ab[-1]
    z_exact = math.sqrt(a) * M + math.sqrt(a * S**2 + 1 - a) * (x0 - M) / S
    torch.testing.assert_close(z, z_exact, rtol=0, atol=0.03)
    torch.testing.assert_close(ddim(predict, z, ab, steps), x0, rtol=0, atol=0.02)


@pytest.mark.parametrize("shape", [(2,), (1, 8, 8)])
def test_every_sampler_keeps_shape_and_dtype(shape):
    ab = alpha_bar(20)
    predict = gaussian_predictor(ab, var_interp=0.0)
    x = noise(3, shape=shape)
    steps = spaced_timesteps(20, 5)
    outs = [
        ancestral(predict, x, ab, steps, "learned"),
        ddim(predict, x, ab, steps, 0.3),
        dpm_solver_2m(predict, x, ab, steps),
        ddim_encode(predict, x, ab, steps),
    ]
    for out in outs:
        assert out.shape == x.shape
        assert out.dtype == x.dtype
        assert torch.isfinite(out).all()
