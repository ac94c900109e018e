import math

import pytest
import torch

from probgen.infer.quadrature import data_box, density_on_grid, energy_on_grid, log_partition


def gaussian_energy(precision: torch.Tensor):
    return lambda x: 0.5 * torch.einsum("ni,ij,nj->n", x, precision, x)


@pytest.mark.parametrize(
    "precision",
    [
        torch.tensor([[4.0]]),
        torch.tensor([[2.0, 0.6], [0.6, 1.0]]),
        torch.tensor([[25.0, 0.0], [0.0, 9.0]]),
    ],
)
def test_log_partition_of_a_gaussian_energy_is_its_closed_form(precision):
    d = precision.shape[0]
    half_width = 8.0 / torch.linalg.eigvalsh(precision).min().sqrt()
    low, high = -half_width * torch.ones(d), half_width * torch.ones(d)
    expected = 0.5 * d * math.log(2 * math.pi) - 0.5 * torch.logdet(precision)
    log_z = log_partition(gaussian_energy(precision), low, high, points=200)
    assert log_z.item() == pytest.approx(expected.item(), abs=1e-4)


def test_log_partition_of_a_constant_energy_is_the_log_volume_minus_the_constant():
    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([2.0, 0.5])
    log_z = log_partition(lambda x: torch.full((x.shape[0],), 3.0), low, high, points=16)
    assert log_z.item() == pytest.approx(math.log(1.5) - 3.0, abs=1e-6)


def test_log_partition_survives_energies_far_from_zero():
    low, high = torch.tensor([-4.0]), torch.tensor([4.0])
    log_z = log_partition(lambda x: 1e4 + 0.5 * x[:, 0] ** 2, low, high, points=400)
    assert log_z.item() == pytest.approx(0.5 * math.log(2 * math.pi) - 1e4, abs=1e-3)


def test_energy_grid_is_indexed_by_the_first_coordinate_first():
    energy = lambda x: x[:, 0] + 10 * x[:, 1]  # noqa: E731
    axes, energies = energy_on_grid(energy, torch.zeros(2), torch.ones(2), 4)
    assert torch.allclose(axes[0], torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert energies[1, 0] - energies[0, 0] == pytest.approx(0.25)
    assert energies[0, 1] - energies[0, 0] == pytest.approx(2.5)


def test_density_on_grid_integrates_to_one():
    low, high = torch.tensor([-3.0, -2.0]), torch.tensor([3.0, 2.5])
    _, density = density_on_grid(lambda x: (x**2).sum(1) + torch.sin(3 * x[:, 0]), low, high, 64)
    cell = ((high - low) / 64).prod()
    assert (density.sum() * cell).item() == pytest.approx(1.0, abs=1e-5)


def test_data_box_widens_the_bounding_box_by_the_margin():
    x = torch.tensor([[0.0, 1.0], [2.0, -1.0], [1.0, 0.5]])
    low, high = data_box(x, margin=0.5)
    assert torch.equal(low, torch.tensor([-0.5, -1.5]))
    assert torch.equal(high, torch.tensor([2.5, 1.5]))


def test_log_partition_is_differentiable_in_the_energy_parameters():
    # E(x) = x^2 / (2 s^2): d log Z / d s = 1 / s, since log Z = log(s sqrt(2 pi))
    scale = torch.tensor(0.7, requires_grad=True)
    low, high = torch.tensor([-8.0]), torch.tensor([8.0])
    log_z = log_partition(lambda x: x[:, 0] ** 2 / (2 * scale**2), low, high, points=400)
    (grad,) = torch.autograd.grad(log_z, scale)
    assert grad.item() == pytest.approx(1 / 0.7, rel=1e-4)
