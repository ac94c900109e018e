"""The diffusion model: its ELBO against closed forms, its Pyro programs, sampling, saving."""

import math

import pyro
import pytest
import safetensors.torch
import torch
from torch import nn

from probgen.errors import ConfigError
from probgen.models.base import Batch, DataInfo
from probgen.models.diffusion import Diffusion
from probgen.models.diffusion_parameterization import reverse_log_variance
from probgen.nn.time_mlp import TimeConditionedMLP

M, S = 0.5, 0.8  # data N(M, S^2) in every dimension
VECTOR = DataInfo((2,))
IMAGE = DataInfo((1, 8, 8), kind="image", value_range=(-1.0, 1.0), levels=17)
SMALL_NETS = dict(hidden=(16, 16), channels=8, channel_mults=(1, 2))
SMALL = dict(timesteps=20, **SMALL_NETS)


class GaussianDenoiser(nn.Module):
    """The exact E[target | x_t] for data N(M, S^2) per dimension; target eps, x0 or v."""

    def __init__(self, alpha_bar: torch.Tensor, target: str = "eps"):
        super().__init__()
        self.register_buffer("alpha_bar", alpha_bar.float())
        self.target = target

    def forward(self, x, t):
        ab = self.alpha_bar[t.long()].reshape(-1, *([1] * (x.dim() - 1)))
        eps = (1 - ab).sqrt() / (ab * S**2 + 1 - ab) * (x - ab.sqrt() * M)
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        return {"eps": eps, "x0": x0, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0}[self.target]


class Constant(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x, t):
        return torch.full_like(x, self.value)


def with_network(model: Diffusion, net: nn.Module) -> Diffusion:
    model.network = net
    model.ema.module = net
    return model


def gaussian_model(variance="posterior", parameterization="eps", **overrides) -> Diffusion:
    config = Diffusion.Config(parameterization=parameterization, variance=variance, **overrides)
    model = Diffusion(config, VECTOR)
    denoiser = GaussianDenoiser(model.schedule.alpha_bar64, parameterization)
    return with_network(model, denoiser)


def closed_form_negative_elbo(model: Diffusion, x0: torch.Tensor) -> torch.Tensor:
    """-ELBO per example of the optimal denoiser, term by term, in float64.

    With x0_hat = E[x_0 | x_t] = M + g (x_t - sqrt(A) M), g = sqrt(A) S^2 / (A S^2 + 1 - A),
    E_q (x_0 - x0_hat)^2 = (x_0 - M)^2 (1 - g sqrt(A))^2 + g^2 (1 - A) in closed form, and each
    L_{t-1} is a Gaussian KL whose mean gap is c0_t (x_0 - x0_hat).
    """
    sch = model.schedule
    x0 = x0.double()
    total = 0.5 * (
        sch.alpha_bar64[-1] * x0**2 - sch.alpha_bar64[-1] - math.log1p(-sch.alpha_bar64[-1].item())
    )
    for k in range(sch.num_steps):
        A = sch.alpha_bar64[k].item()
        g = math.sqrt(A) * S**2 / (A * S**2 + 1 - A)
        sq_err = (x0 - M) ** 2 * (1 - g * math.sqrt(A)) ** 2 + g**2 * (1 - A)
        if model.config.variance == "beta":
            var_p = sch.betas64[k].item()
        else:
            var_p = sch.posterior_log_variance[k].double().exp().item()
        if k == 0:
            total = total + 0.5 * (math.log(2 * math.pi * var_p) + sq_err / var_p)
        else:
            var_q = sch.posterior_variance[k].item()
            c0 = sch.posterior_coef_x0[k].item()
            total = total + 0.5 * (math.log(var_p / var_q) + (var_q + c0**2 * sq_err) / var_p - 1)
    return total.sum(-1)


def closed_form_simple_loss(model: Diffusion, x0: torch.Tensor) -> float:
    """E ||eps - eps_hat||^2 per dimension of the optimal denoiser, t uniform."""
    values = []
    for A in model.schedule.alpha_bar64.tolist():
        h = math.sqrt(1 - A) / (A * S**2 + 1 - A)
        values.append((1 - h * math.sqrt(1 - A)) ** 2 + h**2 * A * (x0.double() - M) ** 2)
    return torch.stack(values).mean().item()


X0 = torch.tensor([M + 2 * S, M - 0.5 * S])


@pytest.mark.parametrize(
    ("variance", "parameterization"), [("posterior", "eps"), ("beta", "x0"), ("posterior", "v")]
)
def test_elbo_equals_its_closed_form_on_gaussian_data(variance, parameterization):
    torch.manual_seed(0)
    model = gaussian_model(variance, parameterization, timesteps=30, schedule="linear")
    x = X0.expand(20_000, 2)
    values = model.elbo(x)
    expected = -closed_form_negative_elbo(model, X0).item()
    stderr = values.std().item() / math.sqrt(len(values))
    assert values.mean().item() == pytest.approx(expected, abs=4 * stderr + 1e-3)
    # the one-t estimates average to the same bound
    estimate = model.elbo(x, t_samples=4)
    stderr = estimate.std().item() / math.sqrt(len(estimate))
    assert estimate.mean().item() == pytest.approx(expected, abs=4 * stderr + 1e-3)


def test_elbo_objective_is_an_unbiased_estimate_of_the_negative_elbo():
    torch.manual_seed(1)
    model = gaussian_model("posterior", timesteps=30, schedule="cosine", objective="elbo")
    batch = Batch(X0.expand(4000, 2))
    losses = torch.stack([model.loss(batch) for _ in range(50)])
    expected = closed_form_negative_elbo(model, X0).item() / 2  # nats per dimension
    stderr = losses.std().item() / math.sqrt(len(losses))
    assert losses.mean().item() == pytest.approx(expected, abs=4 * stderr)


def test_simple_objective_equals_its_closed_form():
    torch.manual_seed(2)
    model = gaussian_model("posterior", timesteps=30, objective="simple")
    loss = model.loss(Batch(X0.expand(100_000, 2))).item()
    assert loss == pytest.approx(closed_form_simple_loss(model, X0), rel=0.02)


def test_pyro_program_elbo_matches_the_analytic_bound():
    """Pyro's Trace_ELBO on model/guide estimates the same bound as the closed form."""
    pyro.clear_param_store()
    torch.manual_seed(3)
    model = gaussian_model(
        "posterior", timesteps=5, schedule="given", betas=(0.1, 0.2, 0.3, 0.5, 0.7)
    )
    x = X0.expand(10, 2)
    elbo = pyro.infer.Trace_ELBO(num_particles=4000, vectorize_particles=True, max_plate_nesting=1)
    losses = torch.stack([elbo.differentiable_loss(model.model, model.guide, x) for _ in range(5)])
    expected = 10 * closed_form_negative_elbo(model, X0).item()
    assert losses.mean().item() == pytest.approx(expected, rel=0.003)


def test_pyro_model_is_the_reverse_chain():
    model = gaussian_model("posterior", timesteps=6)
    trace = pyro.poutine.trace(model.model).get_trace(num_samples=3)
    sites = [name for name in trace.nodes if name.startswith("x_")]
    assert sites == [f"x_{t}" for t in range(6, -1, -1)]
    assert trace.nodes["x_0"]["value"].shape == (3, 2)
    observed = pyro.poutine.trace(model.model).get_trace(X0.expand(4, 2))
    assert observed.nodes["x_0"]["is_observed"]
    guide = pyro.poutine.trace(model.guide).get_trace(X0.expand(4, 2))
    assert [n for n in guide.nodes if n.startswith("x_")] == [f"x_{t}" for t in range(1, 7)]
    assert not list(guide.param_nodes)


def test_ddim_with_eta_one_on_every_step_is_the_ancestral_sampler():
    model = gaussian_model("posterior", timesteps=100, schedule="linear")
    model.min_log_snr = -30.0  # DDIM starts at t = T too
    anc = model.generate(2000, sampler="ancestral", generator=torch.Generator().manual_seed(0))
    ddim = model.generate(
        2000, sampler="ddim", steps=100, eta=1.0, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(anc, ddim, rtol=1e-4, atol=1e-5)
    other = model.generate(20_000, sampler="ddim", steps=100, eta=1.0)
    assert other.mean().item() == pytest.approx(M, abs=0.03)
    assert other.std().item() == pytest.approx(S, rel=0.05)


@pytest.mark.parametrize("parameterization", ["eps", "x0", "v"])
def test_every_parameterization_samples_the_data_with_the_exact_denoiser(parameterization):
    torch.manual_seed(4)
    model = gaussian_model("posterior", parameterization, timesteps=1000)
    for sampler, steps in (("ddim", 100), ("dpm++2m", 20)):
        x = model.generate(20_000, sampler=sampler, steps=steps)
        assert x.mean().item() == pytest.approx(M, abs=0.02)
        assert x.std().item() == pytest.approx(S, rel=0.03)


def test_encode_decode_round_trip():
    model = gaussian_model("posterior", timesteps=200, schedule="linear")
    model.min_log_snr = -30.0
    x = M + S * torch.randn(500, 2, generator=torch.Generator().manual_seed(5))
    z = model.encode(x, steps=200)
    assert z.shape == x.shape
    torch.testing.assert_close(model.decode(z, steps=200), x, rtol=0, atol=0.05)


@pytest.mark.parametrize("info", [VECTOR, IMAGE], ids=["vector", "image"])
@pytest.mark.parametrize("parameterization", ["eps", "x0", "v"])
def test_every_sampler_gives_the_event_shape_on_the_model_device(info, parameterization):
    model = Diffusion(Diffusion.Config(parameterization=parameterization, **SMALL), info)
    for sampler in model.samplers:
        for steps in (None, 4):
            out = model.generate(3, sampler=sampler, steps=steps)
            assert out.shape == (3, *info.event_shape)
            assert out.device == model.device
            assert torch.isfinite(out).all()


def test_only_images_are_clipped_to_their_range():
    config = Diffusion.Config(
        parameterization="x0", variance="posterior", objective="simple", **SMALL
    )
    vector = with_network(Diffusion(config, VECTOR), Constant(5.0))
    image = with_network(Diffusion(config, IMAGE), Constant(5.0))
    for sampler in Diffusion.samplers:
        assert vector.generate(4, sampler=sampler).min().item() == pytest.approx(5.0, rel=1e-4)
        assert image.generate(4, sampler=sampler).max().item() <= 1.0


def test_the_image_elbo_bounds_the_clipped_chain_and_training_does_not_clip():
    config = Diffusion.Config(
        parameterization="x0", variance="posterior", objective="simple", **SMALL
    )
    beyond = with_network(Diffusion(config, IMAGE), Constant(5.0))
    at_edge = with_network(Diffusion(config, IMAGE), Constant(1.0))
    x = torch.rand(3, 1, 8, 8) * 2 - 1

    def seeded(fn):
        torch.manual_seed(0)
        return fn()

    # x0_hat = 5 clipped to the range is x0_hat = 1: the same chain, the same bound
    assert torch.allclose(seeded(lambda: beyond.elbo(x)), seeded(lambda: at_edge.elbo(x)))
    vlb = {m: seeded(lambda m=m: m.losses(Batch(x))["vlb"]) for m in (beyond, at_edge)}
    assert vlb[beyond] > vlb[at_edge]


@pytest.mark.parametrize("info", [VECTOR, IMAGE], ids=["vector", "image"])
def test_train_step_logs_terms_and_moves_the_average(info):
    torch.manual_seed(6)
    model = Diffusion(Diffusion.Config(**SMALL), info)
    optimizers = model.configure_optimizers(1e-3)
    before = [p.clone() for p in model.ema.module.parameters()]
    x = torch.rand(8, *info.event_shape) * 2 - 1
    logs = model.train_step(Batch(x), optimizers, step=0)
    assert set(logs) == {"loss", "mse", "vlb"}
    assert all(v.dim() == 0 and not v.requires_grad for v in logs.values())
    moved = [not torch.equal(a, b) for a, b in zip(before, model.ema.module.parameters())]
    assert any(moved)


@pytest.mark.parametrize("input_dim", [0, 6])
def test_the_vector_network_reads_x_its_per_coordinate_features_and_the_time(input_dim):
    net = TimeConditionedMLP(3, (8,), 3, 4, input_embedding_dim=input_dim, input_scale=25.0)
    seen = []
    net.mlp.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    x, t = torch.randn(5, 3), torch.arange(5.0)
    assert net(x, t).shape == (5, 3)
    freqs = 25.0 * 10000.0 ** (-torch.arange(input_dim // 2) / (input_dim // 2))
    angles = x[..., None] * freqs  # (5, 3, input_dim / 2): each coordinate on its own
    per_coordinate = torch.cat([angles.sin(), angles.cos()], -1).reshape(5, -1)
    expected = torch.cat([x, net.embedding(t), per_coordinate], -1)
    assert seen[0].shape == (5, 3 * (1 + input_dim) + 4)
    assert torch.allclose(seen[0], expected, atol=1e-6)


def test_state_dict_round_trip_through_safetensors():
    torch.manual_seed(7)
    config = Diffusion.Config(**SMALL)
    model = Diffusion(config, VECTOR)
    optimizers = model.configure_optimizers(1e-2)
    for step in range(3):
        model.train_step(Batch(torch.randn(16, 2)), optimizers, step)
    state = safetensors.torch.load(safetensors.torch.save(model.state_dict()))
    assert not any(key.startswith("schedule.") for key in state)
    rebuilt = Diffusion(config, VECTOR)
    rebuilt.load_state_dict(state)
    x = torch.randn(5, 2)
    for sampler in Diffusion.samplers:
        a = model.generate(5, sampler=sampler, generator=torch.Generator().manual_seed(1))
        b = rebuilt.generate(5, sampler=sampler, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(a, b)
    torch.manual_seed(8)
    bound = model.elbo(x)
    torch.manual_seed(8)
    torch.testing.assert_close(rebuilt.elbo(x), bound)


def test_learned_variance_interpolates_between_beta_and_posterior_in_log_space():
    model = Diffusion(Diffusion.Config(variance="learned", **SMALL), VECTOR)
    k = torch.arange(20)
    log_var = reverse_log_variance("learned", model.schedule, k, torch.full((20, 2), 1.0), 2)
    torch.testing.assert_close(log_var, model.schedule.log_betas[:, None].expand(20, 2))
    log_var = reverse_log_variance("learned", model.schedule, k, torch.full((20, 2), -1.0), 2)
    expected = model.schedule.posterior_log_variance[:, None].expand(20, 2)
    torch.testing.assert_close(log_var, expected)


def test_ode_samplers_start_where_the_log_snr_reaches_its_floor():
    model = Diffusion(Diffusion.Config(timesteps=1000, schedule="cosine", **SMALL_NETS), VECTOR)
    start = model.schedule.last_index_above(Diffusion.min_log_snr)
    ab = model.schedule.alpha_bar64
    assert math.log(ab[start] / (1 - ab[start])) >= Diffusion.min_log_snr
    assert math.log(ab[start + 1] / (1 - ab[start + 1])) < Diffusion.min_log_snr
    assert model._sampler_steps("ddim", 50)[0] == start
    assert model._sampler_steps("ancestral", None) == list(range(999, -1, -1))


class GridDenoiser(nn.Module):
    """The exact noise prediction E[eps | x_t] for a 5x5 grid of sharp Gaussians (25gaussians in
    standardised units: spacing 0.707, std 0.0177 per mode)."""

    CENTRES = torch.cartesian_prod(*2 * [torch.arange(-2.0, 3.0)]).double() / math.sqrt(2)
    STD = 0.05 / (2 * math.sqrt(2))

    def __init__(self, alpha_bar: torch.Tensor):
        super().__init__()
        self.register_buffer("alpha_bar", alpha_bar.double())

    def forward(self, x, t):
        ab = self.alpha_bar[t.long()].reshape(-1, 1, 1)
        x = x.double()[:, None, :]  # (N, 1, 2) against (25, 2) centres
        var = ab * self.STD**2 + 1 - ab
        diff = x - ab.sqrt() * self.CENTRES
        weights = torch.softmax(-0.5 * diff.square().sum(-1) / var[..., 0], dim=1)
        eps = (1 - ab).sqrt() / var * diff  # per component, then averaged by responsibility
        return (weights[..., None] * eps).sum(1).float()


def test_dpm_solver_keeps_sharp_modes_apart_with_its_log_snr_steps():
    """With the exact denoiser, 20 DPM-Solver++ steps put (almost) no draw between modes.

    Evenly spaced in t, the 20 steps ended at sigma = 0.09 and returned x0_hat there, where a
    draw near the border of two modes is still an average of both: 3% of draws landed between
    modes. Evenly spaced in log-SNR down to ``max_log_snr`` (sigma = 0.04) they do not.
    """
    from probgen.metrics.modes import mode_statistics

    config = Diffusion.Config(variance="posterior", objective="simple", **SMALL_NETS)
    model = Diffusion(config, VECTOR)
    with_network(model, GridDenoiser(model.schedule.alpha_bar64))
    steps = model._sampler_steps("dpm++2m", None)
    assert len(steps) == 20
    assert steps[0] == model.schedule.last_index_above(Diffusion.min_log_snr)
    assert steps[-1] == model.schedule.last_index_above(Diffusion.max_log_snr)
    x = model.generate(4000, sampler="dpm++2m", generator=torch.Generator().manual_seed(0))
    stats = mode_statistics(x.numpy(), GridDenoiser.CENTRES.numpy(), GridDenoiser.STD)
    assert stats["modes"] == 25
    assert stats["high_quality"] >= 0.99


def test_vector_data_train_twice_as_long_by_default():
    assert Diffusion(Diffusion.Config(**SMALL), VECTOR).default_steps == 20000
    assert Diffusion(Diffusion.Config(**SMALL), IMAGE).default_steps == Diffusion.default_steps


def test_large_images_are_patched_and_sampled_in_50_ancestral_steps_by_default():
    mnist = DataInfo((1, 28, 28), kind="image", value_range=(-1.0, 1.0), levels=256)
    small, large = (
        Diffusion(Diffusion.Config(**SMALL), IMAGE),
        Diffusion(Diffusion.Config(**SMALL), mnist),
    )
    assert (small.config.patch_size, large.config.patch_size) == (1, 2)
    assert (small.config.dropout, large.config.dropout) == (0.1, 0.0)
    assert Diffusion(Diffusion.Config(**SMALL, dropout=0.2), mnist).config.dropout == 0.2
    assert large.network.patch_size == 2
    assert small.samplers[0] == large.samplers[0] == "ancestral"
    # all 1,000 steps for small images, 50 respaced ones for large images
    assert len(small._sampler_steps("ancestral", None)) == small.schedule.num_steps
    long_chain = Diffusion(Diffusion.Config(**{**SMALL, "timesteps": 200}), mnist)
    ancestral = long_chain._sampler_steps("ancestral", None)
    assert len(ancestral) == Diffusion.large_image_ancestral_steps and ancestral[0] == 199
    assert len(long_chain._sampler_steps("ddim", None)) == 50
    assert large.default_steps == Diffusion.default_large_image_steps < small.default_steps
    assert large.generate(2, steps=3).shape == (2, 1, 28, 28)
    odd = DataInfo((1, 27, 27), kind="image", value_range=(-1.0, 1.0), levels=256)
    assert Diffusion(Diffusion.Config(**SMALL), odd).config.patch_size == 1
    with pytest.raises(ConfigError, match="must divide the image sides"):
        Diffusion(Diffusion.Config(**SMALL, patch_size=3), mnist)
    with pytest.raises(ConfigError, match="at least 1"):
        Diffusion(Diffusion.Config(**SMALL, patch_size=0), mnist)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="parameterization"):
        Diffusion(Diffusion.Config(parameterization="score"), VECTOR)
    with pytest.raises(ConfigError, match="learned"):
        Diffusion(Diffusion.Config(variance="learned", objective="simple"), VECTOR)
    model = Diffusion(Diffusion.Config(**SMALL), VECTOR)
    with pytest.raises(ConfigError, match="steps"):
        model.generate(2, sampler="ddim", steps=21)
    with pytest.raises(ConfigError, match="sampler"):
        model.generate(2, sampler="euler")
    with pytest.raises(ConfigError, match="unconditional"):
        model.generate(2, y=torch.zeros(2, dtype=torch.long))


@pytest.mark.slow
@pytest.mark.parametrize("toy, steps", [("8gaussians", 6000), ("25gaussians", 8000)])
def test_fits_the_mixtures_and_covers_every_mode(toy, steps):
    """The benchmark's setting (benchmarks/results/diffusion.md): batch 512, lr 1e-3."""
    from probgen.data.preprocess import Standardize
    from probgen.data.toys import MIXTURES, sample_toy
    from probgen.metrics.modes import mode_statistics

    torch.manual_seed(0)
    data = torch.from_numpy(sample_toy(toy, 50_000, seed=0))
    pre = Standardize.fit(data)
    x = pre.forward(data)
    model = Diffusion(Diffusion.Config(), VECTOR)
    optimizers = model.configure_optimizers(1e-3)
    for step in range(steps):
        model.train_step(Batch(x[torch.randint(len(x), (512,))]), optimizers, step)
    centres, std = MIXTURES[toy]
    samples = pre.inverse(model.generate(2500, sampler="ddim", steps=50))
    stats = mode_statistics(samples.numpy(), centres, std)
    assert stats["modes"] == len(centres)
    assert stats["high_quality"] >= 0.9
