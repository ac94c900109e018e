import math

import pytest
import torch

from probgen.infer.adversarial import (
    ADVERSARIAL_LOSSES,
    MinibatchStd,
    gradient_penalty,
    hinge_discriminator_loss,
    logits_and_r1_penalty,
    minimax_discriminator_loss,
    minimax_generator_loss,
    nonsaturating_generator_loss,
    pack,
    r1_penalty,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)

# Logits whose probabilities are round numbers: sigmoid(log 3) = 3/4, sigmoid(-log 3) = 1/4.
REAL = torch.tensor([0.0, math.log(3.0)])
FAKE = torch.tensor([-math.log(3.0)])


def test_minimax_discriminator_loss_is_the_negated_game_value():
    # -E log D(x) - E log(1 - D(G(z))) with D(x) in {1/2, 3/4} and D(G(z)) = 1/4.
    expected = -(math.log(0.5) + math.log(0.75)) / 2 - math.log(0.75)
    assert minimax_discriminator_loss(REAL, FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_generator_losses_by_hand():
    assert minimax_generator_loss(FAKE).item() == pytest.approx(math.log(0.75), rel=1e-6)
    assert nonsaturating_generator_loss(FAKE).item() == pytest.approx(-math.log(0.25), rel=1e-6)


def test_minimax_generator_gradient_saturates_and_nonsaturating_does_not():
    # Where D rejects the fakes (logit -10), d/dlogit log(1 - sigmoid) = -sigmoid(logit) ~ 0
    # while d/dlogit -log sigmoid = sigmoid(logit) - 1 ~ -1 (Goodfellow et al. 2014, sec. 3).
    logit = torch.tensor([-10.0], requires_grad=True)
    (g_minimax,) = torch.autograd.grad(minimax_generator_loss(logit), logit)
    (g_nonsat,) = torch.autograd.grad(nonsaturating_generator_loss(logit), logit)
    assert g_minimax.item() == pytest.approx(-torch.sigmoid(torch.tensor(-10.0)).item(), rel=1e-5)
    assert g_nonsat.item() == pytest.approx(torch.sigmoid(torch.tensor(-10.0)).item() - 1, rel=1e-5)


def test_losses_stay_finite_at_saturated_logits():
    big = torch.tensor([-200.0, 200.0])
    for game in ADVERSARIAL_LOSSES.values():
        assert torch.isfinite(game.discriminator(big, big))
        assert torch.isfinite(game.generator(big))


def test_wasserstein_and_hinge_by_hand():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.5])
    assert wasserstein_critic_loss(real, fake).item() == pytest.approx(0.5 - 2.0)
    assert wasserstein_generator_loss(fake).item() == pytest.approx(-0.5)
    # relu(1 - [0.5, 2]) = [0.5, 0]; relu(1 + [-2, 0]) = [0, 1].
    loss = hinge_discriminator_loss(torch.tensor([0.5, 2.0]), torch.tensor([-2.0, 0.0]))
    assert loss.item() == pytest.approx(0.25 + 0.5)


def test_named_games_pair_the_right_objectives():
    assert ADVERSARIAL_LOSSES["minimax"].generator is minimax_generator_loss
    assert ADVERSARIAL_LOSSES["nonsaturating"].generator is nonsaturating_generator_loss
    assert ADVERSARIAL_LOSSES["wgan-gp"].discriminator is wasserstein_critic_loss
    assert ADVERSARIAL_LOSSES["hinge"].discriminator is hinge_discriminator_loss


def _linear_critic(w):
    return lambda x: x @ w


def test_gradient_penalty_targets_unit_norm():
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    unit = torch.tensor([0.6, 0.8])
    assert gradient_penalty(_linear_critic(unit), real, fake).item() == pytest.approx(
        0.0, abs=1e-10
    )
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    penalty = gradient_penalty(_linear_critic(w), real, fake)
    assert penalty.item() == pytest.approx((5.0 - 1.0) ** 2, rel=1e-6)
    assert gradient_penalty(_linear_critic(w), real, fake, target=5.0).item() == pytest.approx(
        0.0, abs=1e-8
    )
    # The penalty trains the critic: d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||.
    (grad,) = torch.autograd.grad(penalty, w)
    torch.testing.assert_close(grad, 2 * 4.0 * torch.tensor([3.0, 4.0]) / 5.0)


def test_gradient_penalty_is_taken_at_the_interpolates():
    # D(x) = ||x||^2 / 2 has gradient x; with real == fake every interpolate is x itself.
    x = torch.randn(32, 3)
    penalty = gradient_penalty(lambda v: 0.5 * v.square().sum(1), x, x.clone())
    assert penalty.item() == pytest.approx((x.norm(dim=1) - 1).square().mean().item(), rel=1e-5)


def test_r1_penalty_is_the_squared_gradient_norm_on_data():
    x = torch.randn(32, 3)
    assert r1_penalty(lambda v: 0.5 * v.square().sum(1), x).item() == pytest.approx(
        x.square().sum(1).mean().item(), rel=1e-5
    )
    w = torch.tensor([1.0, -2.0, 2.0])
    assert r1_penalty(_linear_critic(w), x).item() == pytest.approx(9.0, rel=1e-6)


def test_one_pass_gives_the_logits_and_an_r1_penalty_that_trains_the_critic():
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x = torch.randn(16, 3)
    logits, penalty = logits_and_r1_penalty(critic, x)
    torch.testing.assert_close(logits, critic(x))
    torch.testing.assert_close(penalty, r1_penalty(critic, x))
    # the penalty keeps its graph: its gradient reaches the critic's weights
    penalty.backward()
    assert critic[0].weight.grad.abs().sum() > 0


def test_pack_vectors_concatenates_consecutive_examples():
    x = torch.arange(16.0).reshape(8, 2)
    packed = pack(x, 4)
    assert packed.shape == (2, 8)
    torch.testing.assert_close(packed[1], torch.cat(list(x[4:8])))


def test_pack_images_stacks_channels():
    x = torch.randn(6, 1, 8, 8)
    packed = pack(x, 3)
    assert packed.shape == (2, 3, 8, 8)
    torch.testing.assert_close(packed[1, 2], x[5, 0])
    assert pack(x, 1).shape == x.shape


def test_pack_rejects_a_batch_that_does_not_divide():
    with pytest.raises(ValueError, match="cannot be packed"):
        pack(torch.randn(7, 2), 4)


def test_minibatch_std_vectors_by_hand():
    h = torch.randn(8, 5)
    out = MinibatchStd(group_size=4)(h)
    assert out.shape == (8, 6)
    torch.testing.assert_close(out[:, :5], h)
    # Groups are strided: examples {0, 2, 4, 6} and {1, 3, 5, 7}.
    for members in ([0, 2, 4, 6], [1, 3, 5, 7]):
        expected = (h[members].var(0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(out[members, 5], expected.expand(4))


def test_minibatch_std_images_add_a_constant_channel():
    h = torch.randn(4, 3, 2, 2)
    out = MinibatchStd(group_size=4)(h)
    assert out.shape == (4, 4, 2, 2)
    expected = (h.var(0, unbiased=False) + 1e-8).sqrt().mean()
    torch.testing.assert_close(out[:, 3], expected.expand(4, 2, 2))


def test_minibatch_std_is_near_zero_for_a_collapsed_batch():
    h = torch.randn(1, 5).expand(8, 5)
    assert MinibatchStd(group_size=4)(h)[:, 5].max().item() == pytest.approx(1e-4, rel=1e-3)
    # A batch size that the group size does not divide uses the largest common divisor.
    assert MinibatchStd(group_size=4)(torch.randn(6, 5)).shape == (6, 6)
