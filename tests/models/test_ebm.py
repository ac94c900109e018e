import math

import arviz as az
import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import MCMC

from probgen.errors import ConfigError, TrainingDiverged
from probgen.infer.quadrature import grid_centres
from probgen.models.base import Batch, DataInfo
from probgen.models.ebm import EBM

VECTORS = DataInfo((2,))
IMAGES = DataInfo((1, 8, 8), kind="image", num_classes=10, value_range=(0.0, 1.0), levels=17)
SMALL = dict(hidden=(16, 16), langevin_steps=3, buffer_size=64, quadrature_points=64)


def make(data_info=VECTORS, **overrides):
    torch.manual_seed(0)
    return EBM(EBM.Config(**{**SMALL, **overrides}), data_info)


def trained(model, steps=2, n=32):
    data = torch.randn(n, *model.data_info.event_shape)
    if model.data_info.kind == "image":
        data = data.sigmoid()
    optimizers = model.configure_optimizers(1e-3)
    logs = [model.train_step(Batch(data), optimizers, step) for step in range(steps)]
    return data, logs


def test_the_program_weighs_a_uniform_site_on_the_box_by_the_energy():
    model = make()
    trained(model)
    x = torch.tensor([[0.1, -0.2], [0.5, 0.3]])
    trace = poutine.trace(model.model).get_trace(x)
    log_volume = (model.box_high - model.box_low).log().sum()
    expected = (-model.energy(x) - log_volume).sum()
    assert torch.allclose(trace.log_prob_sum(), expected, atol=1e-5)
    assert trace.nodes["x"]["is_observed"]


def test_the_box_is_the_first_batch_widened_by_the_margin_and_then_fixed():
    model = make(box_margin=0.5)
    data, _ = trained(model, steps=1)
    assert torch.allclose(model.box_low, data.min(0).values - 0.5)
    assert torch.allclose(model.box_high, data.max(0).values + 0.5)
    box = model.box_low.clone()
    model.train_step(Batch(10 * data), model.configure_optimizers(1e-3), 1)
    assert torch.equal(model.box_low, box)


LARGE = DataInfo((1, 16, 16), kind="image", value_range=(0.0, 1.0), levels=256)


def test_large_images_train_in_the_reduced_noise_regime_and_sample_from_their_chains():
    small, large = make(IMAGES, channels=(4, 8)), make(LARGE, channels=(4, 8))
    c = small.config
    assert (c.step_size, c.noise_std, c.energy_l2, c.sample_steps) == (0.001, None, 0.01, 500)
    assert (c.sample_init, c.patch_size) == ("noise", 1)
    c = large.config
    assert (c.step_size, c.noise_std, c.energy_l2, c.sample_steps) == (1.0, 0.01, 0.1, 50)
    assert (c.sample_init, c.patch_size) == ("buffer", 2)
    assert large.default_steps == EBM.default_large_image_steps
    assert large.bf16_default_steps == EBM.bf16_large_image_steps
    assert small.bf16_default_steps is None
    # what the user sets is kept
    chosen = make(LARGE, channels=(4, 8), step_size=0.5, noise_std=0.02, sample_init="noise")
    assert (chosen.config.step_size, chosen.config.noise_std) == (0.5, 0.02)
    assert chosen.config.sample_init == "noise"
    assert make(LARGE, channels=(4, 8), chains="short-run").config.sample_init == "noise"
    with pytest.raises(ConfigError, match="must divide"):
        make(LARGE, channels=(4, 8), patch_size=3)


def test_buffer_draws_continue_distinct_persistent_chains():
    model = make(LARGE, channels=(4, 8))
    trained(model, steps=2, n=16)
    states = model.negatives.buffer.states
    starts = model._chain_starts(len(states), "buffer")
    # every chain once: the same states, reordered
    assert torch.equal(
        starts.flatten(1).sum(1).sort().values, states.flatten(1).sum(1).sort().values
    )
    x = model.generate(6, steps=2)
    assert x.shape == (6, 1, 16, 16) and x.min() >= 0 and x.max() <= 1


def test_images_live_on_their_value_range():
    model = make(IMAGES, channels=(4, 8))
    assert (model.box_low == 0).all() and (model.box_high == 1).all()
    _, logs = trained(model, steps=1, n=8)
    assert torch.isfinite(logs[0]["loss"])
    x = model.generate(5, steps=3)
    assert x.shape == (5, 1, 8, 8) and x.min() >= 0 and x.max() <= 1
    with pytest.raises(NotImplementedError):
        model.log_prob(x)
    assert not model.supports("log_prob")
    assert make().supports("log_prob")


def test_train_step_logs_the_energies_and_marks_log_z_stale():
    model = make()
    model.on_fit_end(torch.zeros(1, 2))
    _, logs = trained(model, steps=1)
    log = logs[0]
    assert set(log) == {
        "loss",
        "energy_pos",
        "energy_neg",
        "energy_gap",
        "energy_abs",
        "jump_acceptance",
    }
    assert 0 <= log["jump_acceptance"] <= 1
    assert log["energy_gap"] == pytest.approx((log["energy_pos"] - log["energy_neg"]).item())
    assert torch.isnan(model.log_z)
    model.on_fit_end(torch.zeros(1, 2))
    assert torch.isfinite(model.log_z)


@pytest.mark.parametrize(
    "data_info, setting, expected",
    [(VECTORS, None, True), (IMAGES, None, False), (VECTORS, False, False), (IMAGES, True, True)],
)
def test_data_jumps_default_to_low_dimensional_vectors(data_info, setting, expected):
    model = make(data_info, channels=(4, 8), data_jumps=setting)
    assert model.negatives.data_jumps is expected


def test_log_prob_is_normalised_on_the_box_and_minus_infinity_outside():
    model = make()
    trained(model)
    low, high = model.box_low, model.box_high
    axes = grid_centres(low, high, 300)  # a finer grid than the model's own quadrature
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        mass = model.log_prob(grid).exp().sum() * ((high - low) / 300).prod()
        outside = model.log_prob(torch.stack([high + 0.1, low]))
    assert mass.item() == pytest.approx(1.0, abs=2e-3)
    assert outside[0] == -math.inf and torch.isfinite(outside[1])


def test_log_prob_equals_minus_energy_minus_log_z():
    model = make()
    trained(model)
    x = torch.zeros(3, 2)
    log_p = model.log_prob(x)
    assert torch.allclose(log_p, -model.energy(x) - model.log_z)


def test_a_diverging_step_raises_and_leaves_the_weights_untouched():
    model = make(max_abs_energy=1e-9)
    before = {k: v.clone() for k, v in model.energy_net.state_dict().items()}
    with pytest.raises(TrainingDiverged, match="max_abs_energy"):
        trained(model, steps=1)
    after = model.energy_net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("sampler", ["langevin", "mala"])
@pytest.mark.parametrize("init", ["noise", "buffer"])
def test_langevin_samplers_stay_in_the_box(sampler, init):
    model = make()
    trained(model)
    x = model.generate(20, sampler=sampler, steps=5, init=init)
    assert x.shape == (20, 2)
    assert ((x >= model.box_low) & (x <= model.box_high)).all()


def test_unknown_sampler_options_are_refused():
    model = make()
    trained(model)
    with pytest.raises(ConfigError):
        model.generate(4, sampler="langevin", steps=1, temperature=2.0)
    with pytest.raises(ConfigError):
        model.generate(4, sampler="gibbs")


@pytest.mark.filterwarnings("ignore:num_chains=2 is more than available_cpu")
@pytest.mark.parametrize("kernel", ["hmc", "nuts", "ula", "mala"])
def test_mcmc_kernels_run_on_the_ebm_program_and_read_into_arviz(kernel):
    model = make()
    trained(model)
    options = {"step_size": 0.05} if kernel in ("ula", "mala") else {}
    runner = MCMC(
        model.mcmc_kernel(kernel, **options),
        num_samples=6,
        warmup_steps=4,
        num_chains=2,
        initial_params=model.mcmc_initial_params(2),
        disable_progbar=True,
    )
    runner.run()
    x = runner.get_samples(group_by_chain=True)["x"]
    assert x.shape == (2, 6, 1, 2)
    assert ((x > model.box_low) & (x < model.box_high)).all()
    assert az.from_pyro(runner, log_likelihood=False).posterior["x"].shape == (2, 6, 1, 2)


@pytest.mark.parametrize("sampler", ["hmc", "nuts"])
def test_generate_with_pyro_mcmc_returns_n_draws(sampler):
    model = make(mcmc_chains=4)
    trained(model)
    pyro.set_rng_seed(1)
    with torch.no_grad():  # as sample() calls it
        x = model.generate(10, sampler=sampler, steps=3)
    assert x.shape == (10, 2) and torch.isfinite(x).all()


@pytest.mark.parametrize("overrides", [{}, {"spectral_norm": True}, {"chains": "short-run"}])
def test_a_rebuilt_model_loads_the_state_dict_and_gives_the_same_outputs(overrides):
    model = make(**overrides)
    trained(model)
    model.on_fit_end(torch.zeros(1, 2))
    rebuilt = EBM(EBM.Config(**{**SMALL, **overrides}), VECTORS)
    rebuilt.load_state_dict(model.state_dict())
    model.eval()
    rebuilt.eval()
    x = torch.randn(7, 2)
    assert torch.equal(rebuilt.box_low, model.box_low) and torch.equal(rebuilt.log_z, model.log_z)
    assert torch.allclose(rebuilt.log_prob(x), model.log_prob(x))
    if model.negatives.buffer is not None:
        assert torch.equal(rebuilt.negatives.buffer.states, model.negatives.buffer.states)
        torch.manual_seed(3)
        a = model.generate(5, init="buffer", steps=2)
        torch.manual_seed(3)
        assert torch.equal(rebuilt.generate(5, init="buffer", steps=2), a)


def test_bad_configs_are_config_errors():
    with pytest.raises(ConfigError):
        make(chains="gibbs")
    with pytest.raises(ConfigError):
        make(activation="sigmoidish")
    with pytest.raises(ConfigError):
        make(reinit_fraction=1.5)
