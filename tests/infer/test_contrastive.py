import math

import pytest
import torch
from torch import distributions as D
from torch import nn

from probgen.infer.contrastive import (
    ContrastiveSampler,
    ReplayBuffer,
    contrastive_divergence_loss,
    data_jump,
    kernel_density_log_prob,
    scott_bandwidth,
    uniform_in_box,
)

LOW, HIGH = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 3.0])


def inside(x):
    return ((x >= LOW) & (x <= HIGH)).all(1)


def test_uniform_in_box_stays_in_the_box_and_fills_it():
    x = uniform_in_box(4000, LOW, HIGH, torch.Generator().manual_seed(0))
    assert x.shape == (4000, 2) and inside(x).all()
    assert torch.allclose(x.mean(0), (LOW + HIGH) / 2, atol=0.1)


def test_contrastive_divergence_loss_is_the_energy_gap_plus_the_l2_penalty():
    pos, neg = torch.tensor([1.0, -3.0]), torch.tensor([2.0, 4.0, 0.0])
    loss = contrastive_divergence_loss(pos, neg, l2_weight=0.5)
    assert loss.item() == pytest.approx((-1.0 - 2.0) + 0.5 * (5.0 + 20.0 / 3))


def test_replay_buffer_fills_with_noise_then_refreshes_the_given_fraction():
    gen = torch.Generator().manual_seed(0)
    buffer = ReplayBuffer(capacity=500, event_shape=(2,), reinit_fraction=0.05)
    assert buffer.states.shape == (500, 2) and not buffer.filled
    starts, index = buffer.draw(200, LOW, HIGH, gen)
    assert buffer.filled and inside(buffer.states).all()
    assert index.unique().numel() == 200

    buffer.states.fill_(10.0)  # outside the box: tells stored chains from fresh noise
    starts, index = buffer.draw(200, LOW, HIGH, gen)
    fresh = inside(starts)
    assert fresh.sum() == 10
    assert (starts[~fresh] == 10.0).all()


def test_replay_buffer_stores_chains_where_they_were_drawn():
    buffer = ReplayBuffer(capacity=50, event_shape=(2,), reinit_fraction=0.0)
    _, index = buffer.draw(20, LOW, HIGH)
    buffer.store(index, torch.full((20, 2), 7.0))
    assert (buffer.states[index] == 7.0).all()
    assert (buffer.states == 7.0).all(1).sum() == 20
    with pytest.raises(ValueError):
        buffer.draw(51, LOW, HIGH)


def test_replay_buffer_travels_in_the_state_dict():
    buffer = ReplayBuffer(capacity=30, event_shape=(2,), reinit_fraction=0.05)
    buffer.draw(10, LOW, HIGH)
    copy = ReplayBuffer(capacity=30, event_shape=(2,), reinit_fraction=0.05)
    copy.load_state_dict(buffer.state_dict())
    assert copy.filled and torch.equal(copy.states, buffer.states)


@pytest.mark.parametrize("chains", ["cd", "short-run", "persistent"])
def test_without_steps_the_negatives_are_the_chain_starts(chains):
    sampler = ContrastiveSampler(chains, 0, 0.1, None, (2,), buffer_size=100, reinit_fraction=0)
    data = uniform_in_box(40, LOW, HIGH)
    negatives = sampler(lambda x: (x**2).sum(1), data, LOW, HIGH)
    assert negatives.shape == (40, 2) and inside(negatives).all()
    assert torch.equal(negatives, data) == (chains == "cd")


def test_persistent_negatives_are_written_back_to_the_buffer():
    sampler = ContrastiveSampler("persistent", 5, 0.01, None, (2,), buffer_size=100)
    negatives = sampler(lambda x: (x**2).sum(1), torch.zeros(30, 2), LOW, HIGH)
    stored = (sampler.buffer.states[:, None] == negatives[None]).all(-1).any(0)
    assert stored.all()


class GaussianEnergy(nn.Module):
    """``E(x) = x^T P x / 2``, ``P = L L^T`` with ``L`` lower triangular, positive diagonal."""

    def __init__(self, d):
        super().__init__()
        self.raw = nn.Parameter(torch.zeros(d, d))

    @property
    def precision(self):
        cholesky = torch.tril(self.raw, -1) + torch.diag(self.raw.diagonal().exp())
        return cholesky @ cholesky.T

    def forward(self, x):
        return 0.5 * torch.einsum("ni,ij,nj->n", x, self.precision, x)


@pytest.mark.parametrize("chains, steps", [("persistent", 100), ("cd", 80)])
def test_contrastive_divergence_drives_a_gaussian_energy_to_the_data_precision(chains, steps):
    torch.manual_seed(0)
    covariance = torch.tensor([[0.5, 0.3], [0.3, 1.0]])
    data = torch.randn(4000, 2) @ torch.linalg.cholesky(covariance).T
    low, high = torch.full((2,), -6.0), torch.full((2,), 6.0)
    energy = GaussianEnergy(2)
    sampler = ContrastiveSampler(chains, 10, 0.1, None, (2,), buffer_size=1000)
    optimizer = torch.optim.Adam(energy.parameters(), lr=0.05)
    target = torch.linalg.inv(covariance)

    def relative_error():
        return torch.linalg.norm(energy.precision.detach() - target) / torch.linalg.norm(target)

    initial_error = relative_error()
    for _ in range(steps):
        batch = data[torch.randint(len(data), (200,))]
        negatives = sampler(energy, batch, low, high)
        loss = contrastive_divergence_loss(energy(batch), energy(negatives), l2_weight=0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert initial_error > 0.5 and relative_error() < 0.2


def test_kernel_density_is_the_equal_weight_gaussian_mixture_on_the_data():
    torch.manual_seed(0)
    centres, bandwidth, z = torch.randn(7, 2), torch.tensor([0.3, 0.5]), torch.randn(50, 2)
    mixture = D.MixtureSameFamily(
        D.Categorical(torch.ones(7)), D.Independent(D.Normal(centres, bandwidth.expand(7, 2)), 1)
    )
    assert torch.allclose(kernel_density_log_prob(z, centres, bandwidth), mixture.log_prob(z))


def test_scott_bandwidth_scales_each_coordinate_by_its_spread():
    x = torch.randn(625, 2) * torch.tensor([1.0, 4.0])
    expected = x.std(0) * 625 ** (-1 / 6)
    assert torch.allclose(scott_bandwidth(x), expected)


def two_mode_energy(weight_right, spread=0.3):
    """``-log(w_left N((-3, 0), s^2) + w_right N((3, 0), s^2))``."""
    centres = torch.tensor([[-3.0, 0.0], [3.0, 0.0]])
    weights = torch.tensor([1 - weight_right, weight_right])
    mixture = D.MixtureSameFamily(
        D.Categorical(weights), D.Independent(D.Normal(centres, spread), 1)
    )
    return lambda x: -mixture.log_prob(x), mixture


def test_data_jumps_carry_chains_between_modes_in_the_models_proportions():
    # the data (and so the proposal) puts 80% on the right, the model 20%: the proposal
    # densities in the Metropolis-Hastings ratio must undo the data's weights (without them
    # the chains would settle on p * q, half on each side)
    torch.manual_seed(0)
    energy, _ = two_mode_energy(weight_right=0.2)
    _, data = two_mode_energy(weight_right=0.8)
    chains = torch.tensor([-3.0, 0.0]) + 0.3 * torch.randn(4000, 2)
    low, high = torch.full((2,), -6.0), torch.full((2,), 6.0)
    for _ in range(40):
        chains, accepted = data_jump(chains, energy, data.sample((300,)), low, high)
    right = chains[:, 0] > 0
    assert right.float().mean() == pytest.approx(0.2, abs=0.03)
    assert chains[right, 1].std() == pytest.approx(0.3, rel=0.1)
    assert 0.1 < accepted.float().mean() < 1


def test_data_jumps_never_leave_the_box():
    energy, mixture = two_mode_energy(weight_right=0.5)
    chains = torch.tensor([-3.0, 0.0]) + 0.3 * torch.randn(500, 2)
    low, high = torch.tensor([-6.0, -6.0]), torch.tensor([0.0, 6.0])
    for _ in range(5):
        chains, _ = data_jump(chains, energy, mixture.sample((300,)), low, high)
    assert ((chains >= low) & (chains <= high)).all()


def test_the_sampler_records_the_share_of_chains_that_jumped():
    sampler = ContrastiveSampler("short-run", 2, 0.01, None, (2,), data_jumps=True)
    assert math.isnan(sampler.acceptance)
    sampler(lambda x: (x**2).sum(1), torch.randn(64, 2), LOW, HIGH)
    assert 0 <= sampler.acceptance <= 1
    assert not ContrastiveSampler("cd", 2, 0.01, None, (2,), data_jumps=True).data_jumps
