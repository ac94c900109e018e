"""Adversarial objectives: the GAN game's losses, its penalties and its anti-collapse inputs.

A discriminator (or critic) ``D`` returns one real-valued logit per example; ``D(x) = sigma(logit)``
is its probability that ``x`` is real. Each loss below is written on logits, so
``log D = -softplus(-logit)`` and ``log(1 - D) = -softplus(logit)`` stay finite where the
probabilities saturate. Every function returns a value both players *minimise*:

- ``minimax``: ``D`` minimises ``-E log D(x) - E log(1 - D(G(z)))``; ``G`` minimises
  ``E log(1 - D(G(z)))``, the game exactly as written;
- ``nonsaturating``: the same ``D``; ``G`` minimises ``-E log D(G(z))``;
- ``wgan-gp``: the critic minimises ``E D(G(z)) - E D(x)`` plus the gradient penalty; ``G``
  minimises ``-E D(G(z))``;
- ``hinge``: ``D`` minimises ``E relu(1 - D(x)) + E relu(1 + D(G(z)))``; ``G`` minimises
  ``-E D(G(z))``.

References: Goodfellow et al. 2014, "Generative Adversarial Nets"; Arjovsky et al. 2017,
"Wasserstein GAN"; Gulrajani et al. 2017, "Improved Training of Wasserstein GANs"; Lim & Ye 2017,
"Geometric GAN" and Miyato et al. 2018, "Spectral Normalization for GANs" (hinge); Mescheder et
al. 2018, "Which Training Methods for GANs do actually Converge?" (R1); Lin et al. 2018,
"PacGAN"; Karras et al. 2018, "Progressive Growing of GANs" (minibatch standard deviation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Critic = Callable[[torch.Tensor], torch.Tensor]


def minimax_discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor
) -> torch.Tensor:
    """``-E[log D(x)] - E[log(1 - D(G(z)))]``: the negated value of the game, for ``D``.

    References: Goodfellow et al. 2014, "Generative Adversarial Nets", eq. (1).
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """``E[log(1 - D(G(z)))]``: the generator's side of the game exactly as written.

    Its gradient vanishes where ``D`` confidently rejects the fakes (``D(G(z)) -> 0``), which
    is early in training; kept to measure that failure, not to train with.

    References: Goodfellow et al. 2014, "Generative Adversarial Nets", eq. (1).
    """
    return -F.softplus(fake_logits).mean()


def nonsaturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """``-E[log D(G(z))]``: same fixed point as the minimax game, strong gradients early.

    References: Goodfellow et al. 2014, "Generative Adversarial Nets", section 3.
    """
    return F.softplus(-fake_logits).mean()


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """``E[D(G(z))] - E[D(x)]``: minus the critic's estimate of the Wasserstein-1 distance.

    Only an estimate when ``D`` is 1-Lipschitz, which :func:`gradient_penalty` encourages.

    References: Arjovsky et al. 2017, "Wasserstein GAN", eq. (3).
    """
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """``-E[D(G(z))]``: the generator's side of the Wasserstein and hinge games.

    References: Arjovsky et al. 2017, "Wasserstein GAN"; Lim & Ye 2017, "Geometric GAN".
    """
    return -fake_scores.mean()


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]``: a margin loss on the logits.

    References: Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, "Spectral Normalization
    for Generative Adversarial Networks", eq. (16).
    """
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


@dataclass(frozen=True)
class AdversarialLoss:
    """The two players' objectives of one game, both minimised."""

    discriminator: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]


ADVERSARIAL_LOSSES: dict[str, AdversarialLoss] = {
    "minimax": AdversarialLoss(minimax_discriminator_loss, minimax_generator_loss),
    "nonsaturating": AdversarialLoss(minimax_discriminator_loss, nonsaturating_generator_loss),
    "wgan-gp": AdversarialLoss(wasserstein_critic_loss, wasserstein_generator_loss),
    "hinge": AdversarialLoss(hinge_discriminator_loss, wasserstein_generator_loss),
}


def _input_gradient(critic: Critic, inputs: torch.Tensor) -> torch.Tensor:
    """``d sum_i D(x_i) / d x``: each example's own input gradient, kept in the graph."""
    inputs = inputs.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(inputs).sum(), inputs, create_graph=True)
    return grad.reshape(grad.shape[0], -1)


def gradient_penalty(
    critic: Critic, real: torch.Tensor, fake: torch.Tensor, target: float = 1.0
) -> torch.Tensor:
    """``E[(||grad D(x_hat)||_2 - target)^2]`` at ``x_hat = e x + (1 - e) G(z)``, ``e ~ U[0, 1]``.

    A soft constraint that the critic be ``target``-Lipschitz along lines between real and
    generated examples, where the optimal WGAN critic has unit gradient norm.

    References: Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", eq. (3).
    """
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    e = torch.rand(shape, device=real.device, dtype=real.dtype)
    x_hat = e * real.detach() + (1.0 - e) * fake.detach()
    norms = _input_gradient(critic, x_hat).norm(dim=1)
    return (norms - target).square().mean()


def r1_penalty(critic: Critic, real: torch.Tensor) -> torch.Tensor:
    """``E_x[||grad D(x)||_2^2]`` on real data; the R1 regulariser is ``(gamma / 2)`` times this.

    Penalising the discriminator's gradient on the data keeps it from pushing the generator
    past the data once they agree, which makes the game converge locally.

    References: Mescheder et al. 2018, "Which Training Methods for GANs do actually
    Converge?", eq. (9).
    """
    return logits_and_r1_penalty(critic, real)[1]


def logits_and_r1_penalty(critic: Critic, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(D(x), r1_penalty(D, x))`` from one forward pass of ``D`` on the real data.

    The discriminator's loss needs ``D(x)`` and the penalty needs its input gradient: both come
    from the same graph, which saves a forward pass on every regularised step.
    """
    inputs = real.detach().requires_grad_(True)
    logits = critic(inputs)
    (grad,) = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
    return logits, grad.reshape(grad.shape[0], -1).square().sum(dim=1).mean()


def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """PacGAN packing: ``m`` consecutive examples joined along the first event dimension.

    ``(N, D) -> (N/m, m D)`` for vectors and ``(N, C, H, W) -> (N/m, m C, H, W)`` for images;
    the discriminator judges ``m`` samples jointly, so a generator that repeats itself is
    exposed by the lack of variety within a pack.

    References: Lin et al. 2018, "PacGAN: The power of two samples in generative adversarial
    networks", section 3.
    """
    n = x.shape[0]
    if n % m:
        raise ValueError(f"a batch of {n} cannot be packed in groups of {m}")
    return x.reshape(n // m, m * x.shape[1], *x.shape[2:])


class MinibatchStd(nn.Module):
    """Appends one feature: the standard deviation across a group of examples, averaged.

    For groups of ``g`` examples ``h_1..h_g``, ``s = mean_features sqrt(Var_i h_i + 1e-8)`` is
    appended to every member as an extra feature (vectors) or constant channel (images), so the
    discriminator can see when a batch of fakes lacks variety.

    References: Karras et al. 2018, "Progressive Growing of GANs for Improved Quality,
    Stability, and Variation", section 3.
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = int(group_size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n = h.shape[0]
        g = math.gcd(n, self.group_size)
        # Example i belongs to group i % (n // g); the groups are strided, as in Karras et al.
        grouped = h.reshape(g, n // g, *h.shape[1:])
        std = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt()
        stat = std.reshape(n // g, -1).mean(dim=1).repeat(g)
        spatial = h.shape[2:]
        feature = stat.reshape(n, 1, *(1,) * len(spatial)).expand(n, 1, *spatial)
        return torch.cat([h, feature], dim=1)
