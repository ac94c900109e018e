import dataclasses

import pyro
import pytest
import torch

from probgen.errors import ConfigError
from probgen.infer.adversarial import nonsaturating_generator_loss, pack
from probgen.models.base import Batch, DataInfo
from probgen.models.gan import GAN
from probgen.models.gan_networks import image_stages

VECTORS = DataInfo((2,))
IMAGES = DataInfo((1, 8, 8), kind="image", value_range=(-1.0, 1.0), levels=17)
SMALL = {"latent_dim": 4, "hidden": (16, 16), "disc_hidden": (16, 16), "channels": 4}


def small_gan(data_info=VECTORS, **overrides):
    return GAN(GAN.Config(**{**SMALL, **overrides}), data_info)


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(module, before):
    return any(not torch.equal(p, q) for p, q in zip(module.parameters(), before))


def test_model_is_an_implicit_pyro_program():
    gan = small_gan()
    trace = pyro.poutine.trace(gan.model).get_trace(num_samples=5)
    z, x = trace.nodes["z"], trace.nodes["x"]
    assert z["type"] == "sample" and z["value"].shape == (5, 4)
    assert x["infer"].get("_deterministic") and x["value"].shape == (5, 2)
    torch.testing.assert_close(x["value"], gan.generator(z["value"]) / gan.config.data_scale)
    # Observed data only sets the size of the plate: there is no likelihood to condition on.
    assert gan.model(torch.zeros(7, 2)).shape == (7, 2)


def test_generate_shapes_and_sampler_names():
    assert small_gan().generate(6).shape == (6, 2)
    images = small_gan(IMAGES).generate(3, sampler="generator")
    assert images.shape == (3, 1, 8, 8) and images.abs().max() <= 1.0
    with pytest.raises(ConfigError, match="sampler"):
        small_gan().generate(2, sampler="langevin")


def test_generate_uses_the_ema_generator():
    gan = small_gan(ema_decay=0.5, jacobian_truncation=None)
    with torch.no_grad():
        gan.generator_ema.module[0].weight.add_(1.0)
    torch.manual_seed(0)
    averaged = gan.generate(4)
    torch.manual_seed(0)
    raw = gan.model(num_samples=4)
    torch.manual_seed(0)
    torch.testing.assert_close(averaged, gan.model(num_samples=4, averaged=True))
    assert not torch.allclose(averaged, raw)


@pytest.mark.parametrize(
    "overrides",
    [
        {"loss": "minimax", "pack": 1},
        {"loss": "nonsaturating", "minibatch_std": True, "r1_weight": 1.0},
        {"loss": "wgan-gp", "spectral_norm": True},
        {"loss": "hinge", "pack": 2},
    ],
)
def test_one_adversarial_step_updates_both_networks(overrides):
    gan = small_gan(**overrides)
    optimizers = gan.configure_optimizers(1e-3)
    g0, d0 = snapshot(gan.generator), snapshot(gan.discriminator)
    logs = gan.train_step(Batch(torch.randn(16, 2)), optimizers, step=0)
    assert changed(gan.generator, g0) and changed(gan.discriminator, d0)
    assert {"loss", "loss_d", "d_real", "d_fake"} <= set(logs)
    assert all(v.dim() == 0 and not v.requires_grad for v in logs.values())
    if overrides["loss"] == "wgan-gp":
        assert logs["gradient_penalty"] >= 0
    if overrides.get("r1_weight"):
        assert logs["r1"] >= 0


def test_image_step_updates_both_networks():
    gan = small_gan(IMAGES, pack=2, minibatch_std=True)
    optimizers = gan.configure_optimizers(1e-3)
    g0, d0 = snapshot(gan.generator), snapshot(gan.discriminator)
    gan.train_step(Batch(torch.rand(8, 1, 8, 8) * 2 - 1), optimizers, step=0)
    assert changed(gan.generator, g0) and changed(gan.discriminator, d0)


def test_n_critic_steps_the_generator_every_nth_call():
    gan = small_gan(n_critic=3, ema_decay=0.0)
    optimizers = gan.configure_optimizers(1e-3)
    g0, d0 = snapshot(gan.generator), snapshot(gan.discriminator)
    gan.train_step(Batch(torch.randn(16, 2)), optimizers, step=1)
    assert changed(gan.discriminator, d0) and not changed(gan.generator, g0)
    gan.train_step(Batch(torch.randn(16, 2)), optimizers, step=3)
    assert changed(gan.generator, g0)


@pytest.mark.parametrize(("step", "decay"), [(0, 0.1), (100, 0.75)])
def test_ema_tracks_the_generator_with_the_warmed_up_decay(step, decay):
    gan = small_gan(ema_decay=0.75)
    optimizers = gan.configure_optimizers(1e-2)
    before = snapshot(gan.generator_ema.module)
    gan.train_step(Batch(torch.randn(16, 2)), optimizers, step=step)
    for ema, old, new in zip(
        gan.generator_ema.module.parameters(), before, gan.generator.parameters()
    ):
        torch.testing.assert_close(ema, decay * old + (1 - decay) * new.detach())


def test_train_step_drops_the_remainder_that_does_not_pack():
    gan = small_gan(pack=4)
    logs = gan.train_step(Batch(torch.randn(10, 2)), gan.configure_optimizers(1e-3), step=0)
    assert torch.isfinite(logs["loss"])


def test_loss_is_the_generators_objective():
    gan = small_gan(pack=1, data_scale=1.0)
    batch = Batch(torch.randn(8, 2))
    torch.manual_seed(3)
    loss = gan.loss(batch)
    torch.manual_seed(3)
    expected = nonsaturating_generator_loss(gan.discriminator(gan.model(num_samples=8)))
    torch.testing.assert_close(loss, expected)


def test_data_scale_is_seen_by_the_networks_only():
    gan = small_gan(pack=2, data_scale=4.0, jacobian_truncation=None)
    torch.manual_seed(0)
    samples = gan.generate(6)
    torch.manual_seed(0)
    z = pyro.poutine.trace(gan.model).get_trace(num_samples=6).nodes["z"]["value"]
    torch.testing.assert_close(samples, gan.generator(z) / 4.0)
    x = torch.randn(6, 2)
    torch.testing.assert_close(gan._judge(x), gan.discriminator(pack(4.0 * x, 2)))
    # Images keep their fixed range: the scale applies to vectors only.
    images = small_gan(IMAGES, data_scale=4.0)
    assert images.network_scale == 1.0 and images.generate(3).abs().max() <= 1.0


def test_latent_stretch_is_the_frobenius_norm_of_the_generators_jacobian():
    gan = small_gan(latent_dim=3, data_scale=2.0)
    z = torch.randn(5, 3)
    jacobian = torch.func.vmap(torch.func.jacrev(lambda v: gan.generator(v[None])[0] / 2.0))(z)
    expected = jacobian.flatten(1).norm(dim=1)
    torch.testing.assert_close(gan.latent_stretch(z, averaged=False), expected)


def test_hutchinson_stretch_estimates_the_frobenius_norm():
    gan = small_gan(latent_dim=3, data_scale=2.0)
    z = torch.randn(4, 3)
    exact = gan.latent_stretch(z, averaged=False)
    estimate = gan.latent_stretch(
        z, averaged=False, probes=4000, generator=torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(estimate, exact, rtol=0.05, atol=0.0)


class Bridge(torch.nn.Module):
    """A generator with two flat modes at -1 and 1 joined by a steep ramp: the bridge draws."""

    def forward(self, z):
        x = torch.clamp(20.0 * z[:, :1], -1.0, 1.0) + 0.01 * z[:, 1:]
        return torch.cat([x, 0.01 * z[:, 1:]], dim=1)


def test_jacobian_truncation_drops_the_draws_between_modes():
    """Draws from the ramp between the two modes (|x| < 0.9) have a stretch ~20 / 0.014 times
    the median; the default truncation removes them and keeps both modes."""
    gan = small_gan(latent_dim=2, ema_decay=0.0, data_scale=1.0)
    gan.generator = Bridge()
    torch.manual_seed(0)
    untruncated = gan.model(num_samples=4000)
    between = lambda x: (x[:, 0].abs() < 0.9).float().mean().item()  # noqa: E731
    assert between(untruncated) > 0.02
    torch.manual_seed(0)
    x = gan.generate(4000)
    assert x.shape == (4000, 2)
    assert between(x) == 0.0
    assert 0.4 < (x[:, 0] > 0).float().mean().item() < 0.6
    off = small_gan(latent_dim=2, ema_decay=0.0, data_scale=1.0, jacobian_truncation=None)
    off.generator = Bridge()
    assert between(off.generate(4000)) > 0.02
    # images keep every draw
    assert small_gan(IMAGES).generate(5).shape == (5, 1, 8, 8)


def test_the_latent_dimension_follows_the_data_unless_given():
    assert GAN(GAN.Config(), VECTORS).config.latent_dim == 2
    images = GAN(GAN.Config(channels=4), IMAGES)
    assert images.config.latent_dim == 64
    assert images.generator.project.in_features == 64
    assert small_gan(IMAGES, latent_dim=3).generator.project.in_features == 3
    assert images.default_steps == GAN.default_image_steps[1] < GAN.default_steps
    assert small_gan().default_steps == GAN.default_steps


def test_image_networks_and_budget_follow_the_image_size():
    mnist = DataInfo((1, 28, 28), kind="image", value_range=(-1.0, 1.0), levels=256)
    assert image_stages(IMAGES) == 1 and image_stages(mnist) == 2 and image_stages(VECTORS) == 1
    small, large = GAN(GAN.Config(), IMAGES), GAN(GAN.Config(), mnist)
    assert small.config.channels == 32 and large.config.channels == 16
    assert small.generator.start_shape == (64, 4, 4) and large.generator.start_shape == (64, 7, 7)
    assert large.default_steps == GAN.default_image_steps[2] < small.default_steps
    assert large.generate(3).shape == (3, 1, 28, 28)
    assert large.discriminator(large.generate(3)).shape == (3,)
    assert GAN(GAN.Config(channels=8), mnist).config.channels == 8


def test_optimizers_two_time_scales_and_betas():
    opt_g, opt_d = small_gan(lr_g_scale=0.5, lr_d_scale=2.0).configure_optimizers(1e-3)
    assert opt_g.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(2e-3)
    assert opt_g.param_groups[0]["betas"] == (0.5, 0.999)
    opt_g, _ = small_gan(loss="wgan-gp").configure_optimizers(1e-3)
    assert opt_g.param_groups[0]["betas"] == (0.0, 0.9)
    opt_g, _ = small_gan(loss="wgan-gp", beta1=0.5).configure_optimizers(1e-3)
    assert opt_g.param_groups[0]["betas"] == (0.5, 0.9)
    gan = small_gan()
    opt_g, opt_d = gan.configure_optimizers(1e-3)
    assert {id(p) for g in opt_g.param_groups for p in g["params"]} == {
        id(p) for p in gan.generator.parameters()
    }
    assert {id(p) for g in opt_d.param_groups for p in g["params"]} == {
        id(p) for p in gan.discriminator.parameters()
    }


@pytest.mark.parametrize("data_info", [VECTORS, IMAGES])
def test_state_dict_round_trip_rebuilt_from_config(data_info):
    overrides = {"spectral_norm": True, "minibatch_std": True, "pack": 2, "ema_decay": 0.9}
    gan = small_gan(data_info, **overrides)
    optimizers = gan.configure_optimizers(1e-2)
    x = torch.rand(8, *data_info.event_shape) * 2 - 1
    for step in range(3):
        gan.train_step(Batch(x), optimizers, step)
    rebuilt = GAN(dataclasses.replace(gan.config), data_info)
    rebuilt.load_state_dict(gan.state_dict())
    torch.manual_seed(1)
    expected = gan.generate(5)
    torch.manual_seed(1)
    torch.testing.assert_close(rebuilt.generate(5), expected)
    gan.eval()
    rebuilt.eval()
    torch.testing.assert_close(rebuilt.discriminator(pack(x, 2)), gan.discriminator(pack(x, 2)))


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown loss"):
        small_gan(loss="least-squares")
    with pytest.raises(ConfigError, match="pack"):
        small_gan(pack=0)
    with pytest.raises(ConfigError, match="data_scale"):
        small_gan(data_scale=0.0)
    with pytest.raises(ConfigError, match="jacobian_truncation"):
        small_gan(jacobian_truncation=0.5)
    with pytest.raises(ConfigError, match="jacobian_truncation must be a number"):
        small_gan(jacobian_truncation="median")
    with pytest.raises(ConfigError, match="even"):
        small_gan(DataInfo((1, 7, 7), kind="image"))


def test_fit_loop_trains_saves_and_reloads_a_gan(tmp_path):
    from probgen.runs import load_model
    from probgen.train import fit

    options = {**SMALL, "spectral_norm": True, "pack": 2}
    model = fit("gan", "8gaussians", tmp_path / "run", steps=4, quiet=True, options=options)
    assert [row["step"] for row in model_history(tmp_path / "run")] == [1, 2, 3, 4]
    reloaded = load_model(tmp_path / "run")
    torch.manual_seed(0)
    expected = model.sample(5)
    torch.manual_seed(0)
    torch.testing.assert_close(reloaded.sample(5), expected)
    assert expected.shape == (5, 2)


def model_history(path):
    from probgen.runs import Run

    return Run(path).read_history()


def test_lazy_r1_is_added_every_kth_step_weighted_k_times():
    assert small_gan().config.r1_every == 1
    gan = small_gan(IMAGES, ema_decay=0.0, r1_every=16)
    real, fake = torch.rand(8, 1, 8, 8) * 2 - 1, torch.rand(8, 1, 8, 8) * 2 - 1
    plain, *_, terms = gan._discriminator_loss(real, fake, step=3)
    assert "r1" not in terms
    lazy, *_, terms = gan._discriminator_loss(real, fake, step=32)
    torch.testing.assert_close(lazy - plain, 0.5 * gan.config.r1_weight * 16 * terms["r1"])


@pytest.mark.parametrize("upsampling", ["nearest", "transpose"])
def test_both_upsamplings_draw_images_of_the_data_shape(upsampling):
    mnist = DataInfo((1, 28, 28), kind="image", value_range=(-1.0, 1.0), levels=256)
    gan = small_gan(mnist, upsampling=upsampling)
    x = gan.generate(3)
    assert x.shape == (3, 1, 28, 28) and x.abs().max() <= 1.0
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in gan.generator.modules()) == (
        upsampling == "transpose"
    )


class ImageBridge(torch.nn.Module):
    """Images of two flat modes (all pixels -1 or 1) joined by a steep ramp in ``z_0``."""

    def forward(self, z):
        level = torch.clamp(20.0 * z[:, :1], -1.0, 1.0)
        texture = 0.01 * z[:, 1:].sum(1, keepdim=True)
        return (level + texture).expand(-1, 64).reshape(-1, 1, 8, 8)


def test_images_truncate_at_their_own_multiple_of_the_median_stretch():
    """On images the stretch is estimated from 8 random directions and the default keeps
    draws within 1.3 times the median: the ramp's draws go, both flat modes stay."""
    gan = small_gan(IMAGES, ema_decay=0.0)
    assert gan.config.jacobian_truncation == GAN.default_jacobian_truncation["image"]
    assert small_gan().config.jacobian_truncation == GAN.default_jacobian_truncation["vector"]
    gan.generator = ImageBridge()
    gan.stretch_estimate = {**GAN.stretch_estimate, "image": (8, 256)}
    torch.manual_seed(0)
    x = gan.generate(1000)
    assert x.shape == (1000, 1, 8, 8)
    level = x.mean((1, 2, 3))
    assert (level.abs() < 0.9).sum() == 0
    assert 0.4 < (level > 0).float().mean().item() < 0.6
