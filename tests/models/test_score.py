"""The score model: the DSM/SSM minimiser, likelihood and samplers with exact scores, saving."""

import math

import numpy as np
import pyro
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from probgen.cli.main import main as cli
from probgen.errors import ConfigError
from probgen.infer.sde import VPSDE
from probgen.models.base import Batch, DataInfo
from probgen.models.score import NoiseConditionalScoreNet, ScoreModel
from probgen.nn.unet import UNet

VECTOR = DataInfo((2,))
IMAGE = DataInfo((1, 8, 8), kind="image", value_range=(-1.0, 1.0), levels=17)
SMALL = dict(hidden=(16, 16), embedding_dim=8, num_scales=5)
S = 1.5  # data N(0, S^2) in every dimension


class PerLevelLinear(nn.Module):
    """``sigma * s(x, sigma) = w[level] * x`` for a ladder of ``num_scales`` levels."""

    def __init__(self, num_scales: int):
        super().__init__()
        self.num_scales = num_scales
        self.w = nn.Parameter(torch.zeros(num_scales))

    def forward(self, x, c):
        level = torch.round(c * (self.num_scales - 1)).long()
        return self.w[level][:, None] * x


class ExactVPScaled(nn.Module):
    """``std(t) * grad log p_t`` for data N(0, S^2) under the VP SDE."""

    def __init__(self, sde: VPSDE):
        super().__init__()
        self.sde = sde

    def forward(self, x, t):
        a, std = self.sde.mean_scale(t)[:, None], self.sde.std(t)[:, None]
        return -std * x / (a**2 * S**2 + std**2)


class ExactLadderScaled(nn.Module):
    """``sigma * grad log p_sigma`` for data N(0, S^2) on the model's log-sigma scale."""

    def __init__(self, model: ScoreModel):
        super().__init__()
        self.log_min = math.log(model.config.sigma_min)
        self.log_ratio = math.log(float(model.sigma_max) / model.config.sigma_min)

    def forward(self, x, c):
        sigma = torch.exp(self.log_min + c * self.log_ratio)[:, None]
        return -sigma * x / (S**2 + sigma**2)


def with_network(model: ScoreModel, net: nn.Module) -> ScoreModel:
    model.net = net
    model.ema = None
    return model


def draws_match_a_rebuilt_copy(model, config, data_info, n, seed):
    """Every sampler draws the same ``n`` examples from ``model`` and from a model rebuilt
    from its state dict; returns the draws."""
    rebuilt = ScoreModel(config, data_info)
    rebuilt.load_state_dict(model.state_dict())
    draws = []
    for sampler in model.samplers:
        torch.manual_seed(seed)
        a = model.generate(n, sampler=sampler, steps=2)
        torch.manual_seed(seed)
        b = rebuilt.generate(n, sampler=sampler, steps=2)
        assert a.shape == (n, *data_info.event_shape) and torch.equal(a, b)
        draws.append(a)
    return draws


@pytest.mark.parametrize("objective", ["dsm", "ssm"])
def test_score_matching_minimiser_is_the_true_score_of_gaussian_data(objective):
    torch.manual_seed(0)
    config = ScoreModel.Config(
        objective=objective, sigma_min=0.1, sigma_max=2.0, num_scales=3, ema_decay=0
    )
    model = with_network(ScoreModel(config, VECTOR), PerLevelLinear(3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for step in range(300):
        model.train_step(Batch(S * torch.randn(2048, 2)), [optimizer], step)
    # p_sigma = N(0, S^2 + sigma^2): sigma * score = -sigma x / (S^2 + sigma^2)
    sigmas = torch.tensor([0.1, math.sqrt(0.2), 2.0])
    expected = -sigmas / (S**2 + sigmas**2)
    assert torch.allclose(model.net.w.detach(), expected, atol=0.03)


def test_sigma_max_is_the_largest_pairwise_distance_of_the_first_batch():
    model = ScoreModel(ScoreModel.Config(**SMALL), VECTOR)
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    model.loss(Batch(x))
    assert float(model.sigma_max) == pytest.approx(5.0)
    model.loss(Batch(10 * x))
    assert float(model.sigma_max) == pytest.approx(5.0)
    assert torch.allclose(model.sigmas()[[0, -1]], torch.tensor([5.0, 0.01]))


@pytest.mark.parametrize("exact_trace", [True, False])
def test_log_prob_through_the_ode_matches_the_gaussian_density(exact_trace):
    torch.manual_seed(1)
    config = ScoreModel.Config(sde="vp", exact_trace=exact_trace, likelihood_steps=30, **SMALL)
    model = ScoreModel(config, VECTOR)
    with_network(model, ExactVPScaled(model.sde()))
    x = S * torch.randn(400, 2)
    expected = torch.distributions.Normal(0.0, S).log_prob(x).sum(1)
    log_prob = model.log_prob(x)
    assert log_prob.shape == (400,)
    if exact_trace:
        assert torch.allclose(log_prob, expected, atol=0.03)
    else:  # unbiased: right on average, noisy per point
        assert float((log_prob - expected).mean()) == pytest.approx(0.0, abs=0.1)


def langevin_variance(variance: float, target: float, alpha: float, steps: int) -> float:
    """Variance after ``x <- x + (alpha/2) s(x) + sqrt(alpha) z`` with s = -x / target."""
    for _ in range(steps):
        variance = (1 - alpha / (2 * target)) ** 2 * variance + alpha
    return variance


@pytest.mark.parametrize("sampler", ["annealed", "langevin"])
def test_ladder_samplers_with_the_exact_score(sampler):
    torch.manual_seed(2)
    config = ScoreModel.Config(sigma_max=10.0, num_scales=10, n_steps_each=30, step_lr=2e-5)
    model = ScoreModel(config, VECTOR)
    with_network(model, ExactLadderScaled(model))
    x = model.generate(4000, sampler=sampler, steps=30 if sampler == "annealed" else 300)
    assert x.shape == (4000, 2)
    # the exact Gaussian recursion of the variance, from the start N(0, sigma_max^2)
    variance, sigmas = 10.0**2, model.sigmas().tolist()
    if sampler == "annealed":
        for sigma in sigmas:
            alpha = 2e-5 * sigma**2 / sigmas[-1] ** 2
            variance = langevin_variance(variance, S**2 + sigma**2, alpha, 30)
    else:
        variance = langevin_variance(variance, S**2 + sigmas[-1] ** 2, 2e-5, 300)
    # the final denoising step x + sigma_L^2 s(x) scales by S^2 / (S^2 + sigma_L^2)
    std = math.sqrt(variance) * S**2 / (S**2 + sigmas[-1] ** 2)
    assert torch.allclose(x.std(0), torch.full((2,), std), rtol=0.04)


@pytest.mark.parametrize("sampler", ["pc", "ode"])
def test_sde_samplers_with_the_exact_score(sampler):
    torch.manual_seed(3)
    model = ScoreModel(ScoreModel.Config(sde="vp", **SMALL), VECTOR)
    with_network(model, ExactVPScaled(model.sde()))
    x = model.generate(3000, sampler=sampler, steps=100 if sampler == "pc" else 40)
    assert torch.allclose(x.std(0), torch.full((2,), S), rtol=0.06)


def test_options_that_do_not_apply_are_config_errors():
    with pytest.raises(ConfigError, match="sde"):
        ScoreModel(ScoreModel.Config(sde="ddpm"), VECTOR)
    with pytest.raises(ConfigError, match="objective"):
        ScoreModel(ScoreModel.Config(objective="ism"), VECTOR)
    model = ScoreModel(ScoreModel.Config(sigma_max=3.0, **SMALL), VECTOR)
    assert model.samplers == ("annealed", "langevin")
    with pytest.raises(ConfigError, match="does not apply"):
        model.generate(4, sampler="pc")
    with pytest.raises(ConfigError, match="unknown sampler option"):
        model.generate(4, step_size=0.1)
    with pytest.raises(ConfigError, match="sde=ve, vp or subvp"):
        model.log_prob(torch.zeros(3, 2))
    with pytest.raises(ConfigError, match="not trained"):
        ScoreModel(ScoreModel.Config(sde="ve", **SMALL), VECTOR).generate(2)
    assert ScoreModel(ScoreModel.Config(sde="subvp"), VECTOR).samplers == ("pc", "ode")


@pytest.mark.parametrize("sde", ["ncsn", "ve", "vp", "subvp"])
@pytest.mark.parametrize("objective", ["dsm", "ssm"])
def test_training_steps_images_and_state_dict_round_trip(sde, objective):
    torch.manual_seed(4)
    config = ScoreModel.Config(sde=sde, objective=objective, ema_decay=0.9, **SMALL)
    model = ScoreModel(config, IMAGE)
    optimizers = model.configure_optimizers(1e-3)
    for step in range(3):
        logs = model.train_step(Batch(torch.rand(16, 1, 8, 8) * 2 - 1), optimizers, step)
    assert torch.isfinite(logs["loss"])
    ema_weight = model.ema.module.mlp[0].weight
    assert not torch.equal(ema_weight, model.net.mlp[0].weight)  # EMA lags the raw weights

    for a in draws_match_a_rebuilt_copy(model, config, IMAGE, n=3, seed=5):
        assert a.min() >= -1 and a.max() <= 1


LARGE = DataInfo((1, 16, 16), kind="image", value_range=(-1.0, 1.0), levels=256)
TINY_UNET = dict(channels=8, channel_mults=(1,))


def test_large_images_take_the_vp_sde_and_a_patched_unet_by_default():
    model = ScoreModel(ScoreModel.Config(**TINY_UNET), LARGE)
    assert (model.config.sde, model.config.net) == ("vp", "unet")
    assert isinstance(model.net, UNet) and model.net.patch_size == model.config.patch_size == 2
    assert model.samplers[0] == "pc" and model.config.pc_steps == model.large_image_pc_steps
    assert model.config.n_corrector == 0  # reverse diffusion alone
    assert model.default_steps == model.default_large_image_steps
    # small images and vectors keep the NCSN ladder, the MLP and 500 PC steps
    small = ScoreModel(ScoreModel.Config(**SMALL), IMAGE)
    assert (small.config.sde, small.config.net) == ("ncsn", "mlp")
    assert isinstance(small.net, NoiseConditionalScoreNet)
    vector = ScoreModel(ScoreModel.Config(sde="ve"), VECTOR).config
    assert (vector.pc_steps, vector.n_corrector) == (500, 1)
    # what the user names wins over the size
    chosen = ScoreModel(
        ScoreModel.Config(sde="ve", net="mlp", pc_steps=7, n_corrector=2, **SMALL), LARGE
    ).config
    assert (chosen.sde, chosen.net, chosen.pc_steps, chosen.n_corrector) == ("ve", "mlp", 7, 2)
    with pytest.raises(ConfigError, match="U-Net needs images"):
        ScoreModel(ScoreModel.Config(net="unet"), VECTOR)
    with pytest.raises(ConfigError, match="must divide"):
        ScoreModel(ScoreModel.Config(patch_size=3, **TINY_UNET), LARGE)


def test_unet_score_model_trains_samples_and_round_trips():
    torch.manual_seed(0)
    config = ScoreModel.Config(ema_decay=0.9, **TINY_UNET)
    model = ScoreModel(config, LARGE)
    optimizers = model.configure_optimizers(1e-3)
    x = torch.rand(8, 1, 16, 16) * 2 - 1
    losses = [float(model.train_step(Batch(x), optimizers, step)["loss"]) for step in range(3)]
    # the zero-initialised head predicts sigma * s = 0 at first: DSM loss is E||z||^2 / 2
    assert losses[0] == pytest.approx(0.5 * 256, rel=0.2)
    draws_match_a_rebuilt_copy(model, config, LARGE, n=2, seed=1)


def test_pyro_model_is_an_implicit_program_over_the_prior():
    model = ScoreModel(ScoreModel.Config(sde="vp", pc_steps=2, **SMALL), VECTOR)
    trace = pyro.poutine.trace(model.model).get_trace(torch.zeros(5, 2))
    assert trace.nodes["x_T"]["value"].shape == (5, 2)
    assert trace.nodes["x"]["value"].shape == (5, 2)
    assert trace.nodes["x_T"]["fn"].base_dist.scale.max() == 1.0  # VP's prior N(0, I)


def test_command_line_fit_and_sample_on_a_toy(tmp_path):
    run = tmp_path / "run"
    sets = ["--set", "hidden=16,16", "--set", "num_scales=4", "--set", "sde=ve"]
    fit = ["fit", "score", "-d", "8gaussians", "--steps", "20", "-o", str(run), "-q", *sets]
    result = CliRunner().invoke(cli, fit)
    assert result.exit_code == 0, result.output
    for sampler in ("pc", "ode", "annealed"):
        out = tmp_path / f"{sampler}.npy"
        args = ["sample", str(run), "-n", "30", "-o", str(out), "--sampler", sampler]
        result = CliRunner().invoke(cli, [*args, "--steps", "3"])
        assert result.exit_code == 0, result.output
        assert np.load(out).shape == (30, 2)
