"""Contrastive divergence: the maximum-likelihood gradient of an energy-based model.

For ``p(x) = exp(-E(x)) / Z``, the gradient of the negative log-likelihood is

    d/dtheta [-log p(x)] = dE(x)/dtheta - E_{x- ~ p}[dE(x-)/dtheta],

data energies pushed down, the model's own samples ("negatives") pushed up; ``Z`` never appears.
The negatives come from a few Langevin steps
(:func:`probgen.infer.langevin_particles.langevin_dynamics` on the score ``-grad_x E``) started
from one of three places:

- ``"cd"``: the data batch itself, CD-k (Hinton 2002);
- ``"persistent"``: a replay buffer of past chain states, a fraction re-drawn from noise each step
  so that new regions keep being explored (Tieleman 2008; Du & Mordatch 2019);
- ``"short-run"``: fresh uniform noise every step (Nijkamp et al. 2019).

Langevin chains do not cross between well-separated modes, so on their own they constrain the
shape of each mode but not the modes' relative weights: the share of negatives in a mode is
fixed by where the chains happened to fall, not by the model's mass there. Optionally every
chain first takes one Metropolis-Hastings independence step, :func:`data_jump`, proposing from a
kernel density estimate of the data batch; it leaves the model invariant and moves chains
between modes in proportion to the model's mass, which restores the gradient on mode weights.
It pays off in low dimension, where the kernel density covers the model; in high dimension
nearly every jump is rejected.

The surrogate loss whose gradient is the estimate above, plus an L2 penalty that keeps the
energies near zero (they are otherwise free up to a constant and drift),

    L = mean_i E(x+_i) - mean_j E(x-_j) + alpha (mean_i E(x+_i)^2 + mean_j E(x-_j)^2),

is :func:`contrastive_divergence_loss`; :class:`ContrastiveSampler` draws the negatives.

References:
    Hinton 2002, "Training products of experts by minimizing contrastive divergence";
    Tieleman 2008, "Training restricted Boltzmann machines using approximations to the likelihood
    gradient"; Du & Mordatch 2019, "Implicit generation and modeling with energy-based models";
    Nijkamp et al. 2019, "Learning non-convergent non-persistent short-run MCMC toward
    energy-based model"; Tierney 1994, "Markov chains for exploring posterior distributions"
    (independence Metropolis-Hastings).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from probgen.infer.langevin_particles import langevin_dynamics, score_of
from probgen.infer.noise import randn_like

EnergyFn = Callable[[torch.Tensor], torch.Tensor]

CHAIN_STARTS = ("persistent", "cd", "short-run")


def uniform_in_box(
    n: int,
    low: torch.Tensor,
    high: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n`` points drawn uniformly in the box ``[low, high]``, shape ``(n, *low.shape)``."""
    u = torch.rand((n, *low.shape), generator=generator, device=low.device, dtype=low.dtype)
    return low + (high - low) * u


def contrastive_divergence_loss(
    energy_pos: torch.Tensor, energy_neg: torch.Tensor, l2_weight: float
) -> torch.Tensor:
    """``mean E(x+) - mean E(x-) + alpha (mean E(x+)^2 + mean E(x-)^2)`` (module docstring).

    Args:
        energy_pos: energies of the data, ``(N,)``.
        energy_neg: energies of the negatives (no gradient flows into the samples), ``(M,)``.
        l2_weight: ``alpha``.

    References:
        Du & Mordatch 2019 (the L2 energy regulariser).
    """
    gap = energy_pos.mean() - energy_neg.mean()
    return gap + l2_weight * (energy_pos.pow(2).mean() + energy_neg.pow(2).mean())


def kernel_density_log_prob(
    z: torch.Tensor, centres: torch.Tensor, bandwidth: torch.Tensor
) -> torch.Tensor:
    """``log q(z)`` of the Gaussian kernel density ``q = 1/M sum_j N(centres_j, diag(h^2))``.

    Args:
        z: points ``(N, ...)``; centres: ``(M, ...)``; bandwidth: ``h``, broadcastable to one
            flattened point ``(D,)``.
    """
    z, centres = z.flatten(1), centres.flatten(1)
    h = bandwidth.reshape(-1).expand(z.shape[1])
    sq = ((z[:, None, :] - centres[None, :, :]) / h).square().sum(-1)
    log_norm = h.log().sum() + 0.5 * z.shape[1] * math.log(2 * math.pi) + math.log(len(centres))
    return torch.logsumexp(-0.5 * sq, dim=1) - log_norm


def scott_bandwidth(x: torch.Tensor) -> torch.Tensor:
    """Scott's rule per coordinate, ``h_d = std_d * M^(-1 / (D + 4))``, for ``M`` points."""
    flat = x.flatten(1)
    std = flat.std(0).clamp_min(1e-6)
    return std * len(flat) ** (-1.0 / (flat.shape[1] + 4))


@torch.no_grad()
def data_jump(
    x: torch.Tensor,
    energy_fn: EnergyFn,
    data: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One independence Metropolis-Hastings step for ``p(x) ∝ exp(-E(x))`` on the box.

    Each chain proposes ``x' = y_j + h * eps`` from the kernel density ``q`` of the data batch
    ``y`` (Scott's bandwidth ``h``, :func:`kernel_density_log_prob`), independently of where it
    is, and moves with probability

        min(1, exp(E(x) - E(x')) q(x) / q(x')),

    a proposal outside the box always refused. Since ``q`` does not depend on the current state,
    this is a valid MH kernel whatever ``q`` is (Tierney 1994): ``p`` stays invariant, and a
    chain can land in any mode that ``q`` reaches, with the odds set by the model's energies.

    Returns:
        ``(x_new, accepted)``, the moved chains and a boolean per chain.
    """
    n = x.shape[0]
    bandwidth = scott_bandwidth(data).reshape(data.shape[1:])
    pick = torch.randint(len(data), (n,), generator=generator, device=data.device)
    proposal = data[pick] + bandwidth * randn_like(x, generator)
    log_ratio = (
        energy_fn(x)
        - energy_fn(proposal)
        + kernel_density_log_prob(x, data, bandwidth)
        - kernel_density_log_prob(proposal, data, bandwidth)
    )
    inside = ((proposal >= low) & (proposal <= high)).flatten(1).all(1)
    u = torch.rand(n, generator=generator, device=x.device, dtype=x.dtype)
    accepted = inside & (u.log() < log_ratio)
    mask = accepted.reshape(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, proposal, x), accepted


class ReplayBuffer(nn.Module):
    """Persistent Langevin chains: ``capacity`` stored states, partly refreshed from noise.

    ``draw`` takes ``n`` distinct stored states at random and replaces
    ``round(reinit_fraction * n)`` of them by uniform noise in the box; after the Langevin steps
    ``store`` writes the moved chains back in place. The states are a registered buffer, so they
    are saved and restored with the model and a resumed run continues the same chains. The
    buffer is filled with noise on first use (``filled`` records it).

    References:
        Tieleman 2008; Du & Mordatch 2019 (replay buffer with 5% re-initialisation).
    """

    def __init__(self, capacity: int, event_shape: tuple[int, ...], reinit_fraction: float) -> None:
        super().__init__()
        if capacity < 1 or not 0.0 <= reinit_fraction <= 1.0:
            raise ValueError("need capacity >= 1 and 0 <= reinit_fraction <= 1")
        self.reinit_fraction = float(reinit_fraction)
        self.register_buffer("states", torch.zeros(capacity, *event_shape))
        self.register_buffer("filled", torch.zeros((), dtype=torch.bool))

    @property
    def capacity(self) -> int:
        return self.states.shape[0]

    def draw(
        self,
        n: int,
        low: torch.Tensor,
        high: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(starts, index)``: ``n`` chain states to continue and where they live."""
        if n > self.capacity:
            raise ValueError(f"cannot draw {n} chains from a buffer of {self.capacity}")
        if not self.filled:
            self.states.copy_(uniform_in_box(self.capacity, low, high, generator))
            self.filled.fill_(True)
        index = torch.randperm(self.capacity, generator=generator, device=self.states.device)[:n]
        starts = self.states[index].clone()
        n_fresh = round(self.reinit_fraction * n)
        starts[:n_fresh] = uniform_in_box(n_fresh, low, high, generator)
        return starts, index

    def store(self, index: torch.Tensor, states: torch.Tensor) -> None:
        """Write chain states back at ``index`` (as returned by :meth:`draw`)."""
        self.states[index] = states.detach()


class ContrastiveSampler(nn.Module):
    """Negatives for contrastive divergence: Langevin chains from data, a buffer, or noise.

    Each call runs ``steps`` Langevin steps ``x <- clamp(x - step_size grad E(x) + noise_std eps)``
    (``noise_std=None`` is the exact ``sqrt(2 step_size)``; a smaller value is the common
    "reduced noise" variant) from the starts named by ``chains`` (one of
    :data:`CHAIN_STARTS`), clamped to the box ``[low, high]``. With ``data_jumps`` the starts
    first take one :func:`data_jump` (not for ``"cd"``, whose starts are the data already);
    ``acceptance`` holds the share of chains that jumped at the last call.
    """

    def __init__(
        self,
        chains: str,
        steps: int,
        step_size: float,
        noise_std: float | None,
        event_shape: tuple[int, ...],
        buffer_size: int = 10000,
        reinit_fraction: float = 0.05,
        data_jumps: bool = False,
    ) -> None:
        super().__init__()
        if chains not in CHAIN_STARTS:
            raise ValueError(f"unknown chains {chains!r}; choose from {', '.join(CHAIN_STARTS)}")
        self.chains = chains
        self.steps = int(steps)
        self.step_size = float(step_size)
        self.noise_std = noise_std
        self.data_jumps = bool(data_jumps) and chains != "cd"
        self.acceptance = math.nan
        self.buffer = (
            ReplayBuffer(buffer_size, event_shape, reinit_fraction)
            if chains == "persistent"
            else None
        )

    def forward(
        self,
        energy_fn: EnergyFn,
        x_data: torch.Tensor,
        low: torch.Tensor,
        high: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """As many negatives as ``x_data`` has rows, detached from every graph."""
        n = x_data.shape[0]
        index = None
        if self.chains == "cd":
            starts = x_data.detach()
        elif self.chains == "short-run":
            starts = uniform_in_box(n, low, high, generator)
        else:
            starts, index = self.buffer.draw(n, low, high, generator)
        if self.data_jumps:
            starts, accepted = data_jump(starts, energy_fn, x_data.detach(), low, high, generator)
            self.acceptance = float(accepted.float().mean())
        negatives = langevin_dynamics(
            starts,
            score_of(lambda x: -energy_fn(x)),
            self.steps,
            self.step_size,
            noise_std=self.noise_std,
            clamp=(low, high),
            generator=generator,
        )
        if index is not None:
            self.buffer.store(index, negatives)
        return negatives
