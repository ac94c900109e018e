"""The normalising constant of a low-dimensional energy by quadrature on a grid.

For an energy ``E`` on a box ``B = [l_1, h_1] x ... x [l_d, h_d]`` the partition function

    Z = integral_B exp(-E(x)) dx  ~=  V * sum_j exp(-E(c_j)),     V = prod_i (h_i - l_i) / m

is the midpoint rule on an ``m^d`` grid of cell centres ``c_j`` (error O(h^2) for smooth ``E``,
``h`` the cell width), evaluated in log space, ``log Z = log V + logsumexp_j(-E(c_j))``, so
energies of any magnitude neither overflow nor underflow. With ``Z`` the density
``p(x) = exp(-E(x)) / Z`` is exact up to the quadrature error, which makes held-out likelihoods
of 2-D energy-based models exact numbers rather than bounds. The cost grows as ``m^d``: this is
for d = 1 or 2 (d = 3 with a coarse grid).

References:
    Davis & Rabinowitz 1984, "Methods of Numerical Integration" (the composite midpoint rule);
    Grathwohl et al. 2019, "Your classifier is secretly an energy based model" (2-D EBM densities
    normalised on a grid).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

EnergyFn = Callable[[torch.Tensor], torch.Tensor]


def data_box(x: torch.Tensor, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-dimension box ``[min(x) - margin, max(x) + margin]`` around data ``(N, d)``."""
    flat = x.detach().reshape(x.shape[0], -1)
    return flat.min(0).values - margin, flat.max(0).values + margin


def grid_centres(low: torch.Tensor, high: torch.Tensor, points: int) -> list[torch.Tensor]:
    """The ``points`` cell centres ``l + (j + 1/2)(h - l)/points`` along each dimension."""
    offsets = (torch.arange(points, device=low.device, dtype=low.dtype) + 0.5) / points
    return [lo + (hi - lo) * offsets for lo, hi in zip(low.tolist(), high.tolist())]


def energy_on_grid(
    energy_fn: EnergyFn,
    low: torch.Tensor,
    high: torch.Tensor,
    points: int,
    chunk: int = 16384,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``E`` at every cell centre of the ``points^d`` grid on ``[low, high]``.

    Returns ``(axes, energies)``: the centres along each dimension and the energies, shape
    ``(points,) * d`` indexed like ``torch.meshgrid(*axes, indexing="ij")`` (for d = 2 the
    first index is the first coordinate, so plot ``energies.T`` with ``origin="lower"``).
    ``energy_fn`` maps ``(N, d)`` points to ``(N,)`` energies; it is called ``chunk`` points
    at a time to bound memory. Gradients flow through (so ``log Z`` can be differentiated with
    respect to the energy's parameters); wrap calls in ``torch.no_grad()`` to evaluate only.
    """
    axes = grid_centres(low, high, points)
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(axes))
    energies = torch.cat([energy_fn(part).reshape(-1) for part in mesh.split(chunk)])
    return axes, energies.reshape((points,) * len(axes))


def _midpoint_log_z(
    energies: torch.Tensor, low: torch.Tensor, high: torch.Tensor, points: int
) -> torch.Tensor:
    log_cell_volume = ((high - low) / points).log().sum()
    # float64 so that Z of a sharply peaked energy keeps its digits on a float32 device
    log_sum = torch.logsumexp(-energies.reshape(-1).to(torch.float64), 0)
    return (log_sum + log_cell_volume).to(low.dtype)


def log_partition(
    energy_fn: EnergyFn, low: torch.Tensor, high: torch.Tensor, points: int
) -> torch.Tensor:
    """``log Z = log integral_[low, high] exp(-E(x)) dx`` by the midpoint rule (module docstring).

    Args:
        energy_fn: ``(N, d) -> (N,)`` energies.
        low, high: the box, ``(d,)`` each.
        points: grid points per dimension (``points^d`` energy evaluations).

    Returns:
        A 0-dim tensor on the box's device.
    """
    _, energies = energy_on_grid(energy_fn, low, high, points)
    return _midpoint_log_z(energies, low, high, points)


@torch.no_grad()
def density_on_grid(
    energy_fn: EnergyFn, low: torch.Tensor, high: torch.Tensor, points: int
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The normalised density ``exp(-E(c)) / Z`` at the grid's cell centres (for heat maps).

    Same ``(axes, values)`` layout as :func:`energy_on_grid`; the values times the cell volume
    sum to one.
    """
    axes, energies = energy_on_grid(energy_fn, low, high, points)
    return axes, torch.exp(-energies - _midpoint_log_z(energies, low, high, points))
