import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from probgen.models.base import Batch, DataInfo
from probgen.models.likelihoods import DiscretizedLogistic
from probgen.models.vae import VAE, VAEConfig
from probgen.nn.conv import ConvDecoder

D, Z = 3, 2


def linear_gaussian_vae(objective="elbo", num_particles=1):
    """A VAE whose encoder and decoder are affine, so its ELBO has a closed form."""
    torch.manual_seed(0)
    config = VAEConfig(
        latent_dim=Z,
        hidden=(4,),
        likelihood="gaussian",
        objective=objective,
        num_particles=num_particles,
    )
    vae = VAE(config, DataInfo(event_shape=(D,)))
    vae.encoder_body = nn.Identity()
    vae.encoder_head = nn.Linear(D, 2 * Z)
    vae.decoder_net = nn.Linear(Z, D)
    with torch.no_grad():
        vae.obs_log_scale.copy_(torch.tensor([0.3, -0.5, 0.1]))
    return vae


def closed_form(vae, x):
    """ELBO and log p(x) of z ~ N(0, I), x | z ~ N(W z + c, diag(s^2)), q = N(m(x), diag(v(x)))."""
    loc, raw = vae.encoder_head(x).chunk(2, -1)
    v = (F.softplus(raw) + 1e-5) ** 2
    W, c = vae.decoder_net.weight, vae.decoder_net.bias
    s2 = (F.softplus(vae.obs_log_scale) + 1e-4) ** 2
    mean = loc @ W.T + c
    spread = (W**2 @ v.T).T  # diag(W diag(v) W^T) per example
    expected_loglik = (
        -0.5 * torch.log(2 * math.pi * s2) - ((x - mean) ** 2 + spread) / (2 * s2)
    ).sum(-1)
    kl = 0.5 * (v + loc**2 - 1 - torch.log(v)).sum(-1)
    marginal = torch.distributions.MultivariateNormal(c, W @ W.T + torch.diag(s2))
    return expected_loglik - kl, marginal.log_prob(x)


@torch.no_grad()
def test_elbo_matches_closed_form_on_linear_gaussian():
    vae = linear_gaussian_vae()
    x = torch.randn(4, D)
    elbo, _ = closed_form(vae, x)
    log_w = vae.log_weights_per_point(x, None, 40_000)
    standard_error = log_w.std(0) / 200
    assert ((log_w.mean(0) - elbo).abs() < 4 * standard_error).all()
    torch.testing.assert_close(vae.elbo(x, num_particles=40_000), elbo, rtol=0.01, atol=0)


@torch.no_grad()
def test_analytic_kl_loss_matches_closed_form():
    vae = linear_gaussian_vae("analytic", num_particles=20_000)
    x = torch.randn(5, D)
    elbo, _ = closed_form(vae, x)
    loss = vae.loss(Batch(x))
    assert loss.item() == pytest.approx(-elbo.mean().item(), abs=0.03)


@torch.no_grad()
def test_iwae_bound_lies_between_elbo_and_log_marginal():
    vae = linear_gaussian_vae()
    # a guide wider than the posterior keeps the weights light-tailed, so K = 4000 converges
    vae.encoder_head.weight.mul_(0.2)
    vae.encoder_head.bias[Z:] = 0.55
    x = torch.randn(6, D)
    elbo, log_px = closed_form(vae, x)
    iwae = vae.log_marginal(x, num_particles=4000)
    assert (elbo < iwae).all()
    # an estimate of a bound: above log p(x) only by Monte Carlo noise
    assert (iwae <= log_px + 0.05).all()
    assert ((log_px - iwae).abs() < 0.5 * (log_px - elbo)).all()
    # the IWAE objective with K samples is the negative mean bound
    iwae_vae = linear_gaussian_vae("iwae", num_particles=4000)
    iwae_vae.load_state_dict(vae.state_dict())
    assert iwae_vae.loss(Batch(x)).item() == pytest.approx(-iwae.mean().item(), abs=0.05)


def test_beta_scales_only_the_kl_and_warms_up():
    vae = linear_gaussian_vae("analytic", num_particles=20_000)
    x = torch.randn(8, D)
    vae.kl_weight = 0.25
    with torch.no_grad():
        loss = vae.loss(Batch(x)).item()
        elbo, _ = closed_form(vae, x)
        loc, raw = vae.encoder_head(x).chunk(2, -1)
        v = (F.softplus(raw) + 1e-5) ** 2
        kl = 0.5 * (v + loc**2 - 1 - torch.log(v)).sum(-1)
    # -(E_q log p(x|z) - beta KL) with E_q log p(x|z) = ELBO + KL
    assert loss == pytest.approx(-(elbo + kl - 0.25 * kl).mean().item(), abs=0.03)
    vae.config.warmup_steps = 10
    opt = vae.configure_optimizers(1e-3)
    logs = vae.train_step(Batch(x), opt, step=4)
    assert logs["kl_weight"].item() == pytest.approx(0.5)
    assert vae.kl_weight == 1.0


def digits_info(classes=None):
    return DataInfo(
        event_shape=(1, 8, 8), kind="image", num_classes=classes, value_range=(0.0, 1.0), levels=17
    )


@pytest.mark.parametrize("net", ["mlp", "conv"])
@pytest.mark.parametrize("sampler", VAE.samplers)
def test_generate_shapes_and_range(net, sampler):
    vae = VAE(VAEConfig(hidden=(32,), net=net), digits_info())
    x = vae.generate(5, sampler=sampler)
    assert x.shape == (5, 1, 8, 8)
    assert (x >= 0).all() and (x <= 1).all()


def test_net_auto_is_convolutional_for_large_images_only():
    mnist = DataInfo((1, 28, 28), kind="image", value_range=(0.0, 1.0), levels=256)
    assert isinstance(VAE(VAEConfig(hidden=(32,)), mnist).decoder_net, ConvDecoder)
    for small in (digits_info(), DataInfo(event_shape=(2,))):
        assert not isinstance(VAE(VAEConfig(hidden=(32,)), small).decoder_net, ConvDecoder)
    assert isinstance(
        VAE(VAEConfig(hidden=(32,), net="conv"), digits_info()).decoder_net, ConvDecoder
    )


def test_conditional_vae_draws_the_chosen_class():
    vae = VAE(VAEConfig(hidden=(32,), conditional=True), digits_info(10))
    x = torch.rand(6, 1, 8, 8)
    y = torch.arange(6)
    assert torch.isfinite(vae.loss(Batch(x, y)))
    torch.manual_seed(0)
    a = vae.generate(3, y=torch.tensor(2), sampler="prior")
    torch.manual_seed(0)
    b = vae.generate(3, y=torch.tensor(7), sampler="prior")
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="labelled data"):
        VAE(VAEConfig(conditional=True), digits_info(None))


def test_aggregate_posterior_is_fitted_saved_and_sampled():
    vae = VAE(VAEConfig(hidden=(32,), latent_dim=3, aggregate_components=4), digits_info())
    x = torch.rand(200, 1, 8, 8)
    assert not bool(vae.agg_fitted)
    vae.on_fit_end(x)
    assert bool(vae.agg_fitted)
    assert vae.agg_logits.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    copy = VAE(vae.config, vae.data_info)
    copy.load_state_dict(vae.state_dict())
    torch.manual_seed(3)
    a = vae.generate(4)
    torch.manual_seed(3)
    b = copy.generate(4)
    torch.testing.assert_close(a, b)
    codes = vae.encode(x)
    assert codes.shape == (200, 3)
    assert vae.decode(codes).shape == x.shape


@pytest.mark.parametrize("guide", ["iaf", "planar", "radial"])
def test_flow_guides_give_finite_bounds_and_gradients(guide):
    vae = VAE(VAEConfig(hidden=(16,), latent_dim=4, guide=guide, num_flows=2), digits_info())
    x = torch.rand(8, 1, 8, 8)
    loss = vae.loss(Batch(x))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in vae.flows.parameters())
    assert vae.encode(x).shape == (8, 4)
    assert torch.isfinite(vae.log_marginal(x, num_particles=10)).all()


def test_invalid_combinations():
    with pytest.raises(ValueError, match="beta > 0"):
        VAE(VAEConfig(beta=0.0), digits_info())
    with pytest.raises(ValueError, match="analytic needs guide=gaussian"):
        VAE(VAEConfig(objective="analytic", guide="iaf"), digits_info())
    with pytest.raises(ValueError, match="net=conv needs image data"):
        VAE(VAEConfig(net="conv"), DataInfo(event_shape=(2,)))
    with pytest.raises(ValueError, match="discretized needs integer-valued images"):
        VAE(VAEConfig(likelihood="discretized"), DataInfo(event_shape=(2,)))


def test_discretized_logistic_sums_to_one_over_levels():
    levels = 17
    d = DiscretizedLogistic(torch.tensor([0.3, 0.9, -0.2]), torch.tensor([-1.0, -3.0, 0.5]), levels)
    grid = (torch.arange(levels) / (levels - 1)).reshape(-1, 1).expand(-1, 3)
    total = d.log_prob(grid).exp().sum(0)
    torch.testing.assert_close(total, torch.ones(3), atol=1e-4, rtol=0)
    s = d.sample((1000,))
    assert torch.allclose(s * (levels - 1), (s * (levels - 1)).round())


@pytest.mark.slow
def test_iaf_guide_beats_the_gaussian_guide_on_digits_with_a_fixed_seed():
    """The benchmark's z = 2 comparison (about a minute): a flow posterior tightens the ELBO."""
    from probgen.data import load_dataset
    from probgen.train import fit

    data = load_dataset("digits")
    elbos = {}
    for guide in ("gaussian", "iaf"):
        vae = fit(
            "vae",
            data,
            steps=2000,
            seed=0,
            quiet=True,
            options={"guide": guide, "num_flows": 4, "latent_dim": 2},
        )
        x = vae.preprocessor.forward(torch.as_tensor(data.test))
        torch.manual_seed(0)
        elbos[guide] = vae.elbo(x, num_particles=100).mean().item()
    assert elbos["iaf"] >= elbos["gaussian"]
