import math

import pyro
import pytest
import torch

from probgen.data.preprocess import Standardize
from probgen.data.toys import sample_toy
from probgen.errors import ConfigError
from probgen.flows.check import dense_log_abs_det
from probgen.flows.coupling import Coupling
from probgen.models.base import Batch, DataInfo
from probgen.models.flows import Flow

VECTOR = DataInfo((2,))
IMAGE = DataInfo((1, 4, 4), kind="image", value_range=(0.0, 1.0), levels=17)

VECTOR_CONFIGS = [
    dict(flow="nsf"),
    dict(flow="nsf-coupling", mixing="lu"),
    dict(flow="maf", norm="batchnorm", mixing="random"),
    dict(flow="realnvp", norm="actnorm"),
]


def _flow(info=VECTOR, seed=0, **overrides):
    torch.manual_seed(seed)
    config = {"transforms": 2, "hidden": (16, 16)} | overrides
    return Flow(Flow.Config(**config), info)


def _perturbed(model, scale=0.2, seed=1):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator))
    return model.eval()


def _vector_data(n=64):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(2))


def _image_data(n=6):
    return torch.rand(n, *IMAGE.event_shape, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("overrides", VECTOR_CONFIGS, ids=lambda o: o["flow"])
def test_vector_flow_inverts_with_exact_log_det(overrides):
    model = _perturbed(_flow(**overrides)).double()
    x = _vector_data(5).double()
    z, ladj = model.bijection(x)
    torch.testing.assert_close(model.decode(model.encode(x)), x)
    torch.testing.assert_close(ladj, dense_log_abs_det(model.bijection, x))


@pytest.mark.parametrize("flow", ["glow", "nsf"])
def test_image_flow_inverts_with_exact_log_det(flow):
    model = _perturbed(_flow(IMAGE, flow=flow), scale=0.05).double()
    x = _image_data(2).double()
    z, ladj = model.bijection(x)
    assert z.shape == (2, 16)
    torch.testing.assert_close(model.decode(z), x)
    torch.testing.assert_close(ladj, dense_log_abs_det(model.bijection, x))


@pytest.mark.parametrize("overrides", [dict(flow="nsf"), dict(flow="realnvp")])
def test_two_dimensional_density_integrates_to_one(overrides):
    model = _perturbed(_flow(**overrides), scale=0.3)
    grid = torch.linspace(-9, 9, 361, dtype=torch.float64)
    cell = (grid[1] - grid[0]) ** 2
    points = torch.cartesian_prod(grid, grid).float()
    with torch.no_grad():
        mass = model.log_prob(points).double().exp().sum() * cell
    assert abs(mass.item() - 1) < 1e-2


@pytest.mark.parametrize("overrides", [*VECTOR_CONFIGS, dict(flow="glow")], ids=str)
def test_every_parameter_receives_a_gradient(overrides):
    info = IMAGE if overrides["flow"] == "glow" else VECTOR
    model = _perturbed(_flow(info, **overrides)).train()
    x = _image_data(8) if info is IMAGE else _vector_data()
    model.loss(Batch(x)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("overrides", [*VECTOR_CONFIGS, dict(flow="glow")], ids=str)
def test_state_dict_round_trip_gives_identical_outputs(overrides):
    info = IMAGE if overrides["flow"] == "glow" else VECTOR
    x = _image_data(8) if info is IMAGE else _vector_data()
    model = _flow(info, seed=0, **overrides)
    (optimizer,) = model.configure_optimizers(1e-2)
    for step in range(3):
        model.train_step(Batch(x), [optimizer], step)
    model.eval()
    rebuilt = _flow(info, seed=5, **overrides)
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    assert torch.equal(rebuilt.log_prob(x), model.log_prob(x))
    torch.manual_seed(3)
    expected = model.generate(4)
    torch.manual_seed(3)
    assert torch.equal(rebuilt.generate(4), expected)


def test_model_is_one_sample_site_scored_by_log_prob():
    model = _perturbed(_flow())
    x = _vector_data(7)
    trace = pyro.poutine.trace(model.model).get_trace(x)
    site = trace.nodes["x"]
    assert site["is_observed"] and torch.equal(site["value"], x)
    trace.compute_log_prob()
    torch.testing.assert_close(site["log_prob"], model.log_prob(x))
    elbo = pyro.infer.Trace_ELBO().differentiable_loss(model.model, model.guide, x)
    torch.testing.assert_close(elbo / 7, model.loss(Batch(x)))


def test_model_without_data_draws_from_the_flow():
    sample = _flow(IMAGE, flow="realnvp").model()
    assert sample.shape == (1, 1, 4, 4)


def test_generate_shapes_and_image_range():
    model = _perturbed(_flow(IMAGE, flow="maf"), scale=0.05)
    images = model.generate(5, sampler="exact")
    assert images.shape == (5, 1, 4, 4)
    margin = 0.05 / 0.9
    assert images.min() > -margin and images.max() < 1 + margin
    assert _flow().generate(3).shape == (3, 2)


def test_short_fit_lowers_held_out_nll_on_moons():
    data = torch.as_tensor(sample_toy("moons", 2000, seed=0))
    pre = Standardize.fit(data)
    train, test = pre.forward(data), pre.forward(torch.as_tensor(sample_toy("moons", 500, 1)))
    model = _flow(flow="nsf", hidden=(32, 32))
    (optimizer,) = model.configure_optimizers(1e-2)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        before = -model.log_prob(test).mean().item()
    for step in range(60):
        batch = train[torch.randint(len(train), (128,), generator=generator)]
        logs = model.train_step(Batch(batch), [optimizer], step)
    assert set(logs) == {"loss"} and not logs["loss"].requires_grad
    with torch.no_grad():
        after = -model.log_prob(test).mean().item()
    assert before == pytest.approx(math.log(2 * math.pi) + 1, abs=0.05)  # N(0, I) at start
    assert after < before - 1.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(flow="spline"), "unknown flow"),
        (dict(mixing="shuffle"), "unknown mixing"),
        (dict(norm="layer"), "unknown norm"),
        (dict(flow="glow"), "needs images"),
        (dict(transforms=0), "transforms"),
    ],
)
def test_bad_config_is_a_clear_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        _flow(**overrides)


def test_bad_sampler_or_option_is_a_clear_error():
    model = _flow()
    with pytest.raises(ConfigError, match="sampler"):
        model.generate(2, sampler="langevin")
    with pytest.raises(ConfigError, match="options"):
        model.generate(2, temperature=0.5)


def test_auto_picks_a_multiscale_glow_for_large_images_only():
    large = DataInfo((1, 16, 16), kind="image", value_range=(0.0, 1.0), levels=256)
    glow = _flow(large, hidden=(8,))
    assert glow.config.flow == "glow" and glow.samplers == ("exact",)
    assert glow.default_steps == Flow.default_glow_steps
    # the last level ends in dense couplings over its coordinates, unless asked otherwise
    dense = lambda model: sum(isinstance(m, Coupling) for m in model.modules())  # noqa: E731
    assert dense(glow) == glow.config.top_transforms == 4
    assert dense(_flow(large, hidden=(8,), top_transforms=0)) == 0
    with pytest.raises(ConfigError, match="top_transforms"):
        _flow(large, top_transforms=-1)
    small = _flow(IMAGE)  # 4x4: an autoregressive spline flow is cheap to invert there
    assert small.config.flow == "nsf"
    assert _flow().config.flow == "nsf"


def test_tempered_samples_are_base_draws_scaled_by_the_temperature():
    large = DataInfo((1, 16, 16), kind="image", value_range=(0.0, 1.0), levels=256)
    model = _flow(large, hidden=(8,), temperature=0.5).eval()
    assert model.samplers == ("tempered", "exact")
    torch.manual_seed(3)
    with torch.no_grad():
        z = model.encode(model.generate(16))
        exact = model.encode(model.generate(16, sampler="exact"))
    assert abs(float(z.std()) - 0.5) < 0.05
    assert abs(float(exact.std()) - 1.0) < 0.1
    with pytest.raises(ConfigError, match="temperature must be positive"):
        _flow(large, temperature=0.0)
