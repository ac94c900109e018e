"""Per-data-point log-weights of a program: held-out ELBO, importance-sampled and exact log p(x).

For data points x_i in the data plate, local latents z_i, enumerated discrete sites c_i and
global latents theta, one particle theta_k ~ q(theta), z_ik ~ q(z_i | x_i) gives

    log w_ik = log sum_{c_i} p(x_i, z_ik, c_i | theta_k) - log q(z_ik | x_i)

where the sum over c_i is exact (Pyro's parallel enumeration, each c_i on its own tensor
dimension, summed by ``logsumexp``). Terms outside the data plate (the prior and guide of theta)
are not per point and are left out, so

- ``mean_k log w_ik`` is the per-point ELBO of the local part,
- ``logsumexp_k log w_ik - log K`` estimates log p(x_i | data) = log E_{q(theta)} p(x_i | theta)
  (the IWAE bound, Burda et al. 2016, with the guide as proposal), and
- with no latent left for the guide, ``log w_i`` is the exact log p(x_i) (one particle).

The values are densities of the program's own observations, in the units it sees.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from pyro import poutine

from probgen.programs.structure import ProgramStructure, sample_sites

if TYPE_CHECKING:
    from pyro.poutine import Trace


def log_weights(
    model: Callable,
    guide: Callable | None,
    structure: ProgramStructure,
    args: tuple,
    num_particles: int,
) -> torch.Tensor:
    """``log w_ik`` of the module docstring, shape ``(num_particles, n)``.

    ``model`` and ``guide`` take ``*args`` (the batch first); one particle is one guide trace,
    so global latents are drawn once per particle and shared by the batch.
    """
    x = args[0]
    n = x.shape[0]
    dim = structure.data_dim
    if dim is None:
        raise ValueError("per-point scores need the data site inside a plate over the batch")
    first_enum = -(structure.max_plate_nesting + 1)
    out = []
    for _ in range(num_particles):
        guide_trace = poutine.trace(guide).get_trace(*args) if guide is not None else None
        target = (
            poutine.enum(model, first_available_dim=first_enum) if structure.enumerated else model
        )
        if guide_trace is not None:
            target = poutine.replay(target, trace=guide_trace)
        model_trace = poutine.trace(target).get_trace(*args)
        out.append(_local_log_weight(model_trace, guide_trace, structure, n))
    return torch.stack(out)


def _in_data_plate(site: dict[str, Any], plate: str) -> bool:
    return any(frame.name == plate for frame in site["cond_indep_stack"])


def _local_log_weight(
    model_trace: Trace, guide_trace: Trace, structure: ProgramStructure, n: int
) -> torch.Tensor:
    plate, dim = structure.data_plate, structure.data_dim
    nesting = structure.max_plate_nesting
    total = None
    for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        if trace is None:
            continue
        trace.compute_log_prob()
        for site in sample_sites(trace).values():
            if not _in_data_plate(site, plate):
                continue
            if site["infer"].get("_deterministic"):
                continue
            term = sign * _plate_sum(site["unscaled_log_prob"], dim, nesting, n)
            total = term if total is None else total + term
    if total is None:
        return model_trace.nodes[structure.observed]["value"].new_zeros(n)
    # every dimension left of the plates is an enumerated site's: sum them out exactly
    while total.dim() > 1:
        total = torch.logsumexp(total, dim=0)
    return total


def _plate_sum(log_prob: torch.Tensor, dim: int, nesting: int, n: int) -> torch.Tensor:
    """``log_prob`` with its plate dimensions other than the data plate's summed out.

    Returns shape ``(*enum_dims, n)`` where ``enum_dims`` are the dimensions left of the
    ``nesting`` plate dimensions (enumerated sites), possibly of size 1.
    """
    if log_prob.dim() < nesting:
        log_prob = log_prob.reshape((1,) * (nesting - log_prob.dim()) + log_prob.shape)
    log_prob = log_prob.movedim(dim, -1)
    if log_prob.shape[-1] == 1 and n != 1:
        log_prob = log_prob.expand(*log_prob.shape[:-1], n)
    # after the move, the other plate dims are the nesting - 1 dims just left of the last
    other = tuple(range(log_prob.dim() - nesting, log_prob.dim() - 1))
    if other:
        log_prob = log_prob.sum(other)
    return log_prob


def local_rate(
    model: Callable, guide: Callable, structure: ProgramStructure, args: tuple, num_particles: int
) -> torch.Tensor:
    """``E_q[log q(z_i | x_i) - log p(z_i)]`` per point: the KL of the local latents, in nats,
    averaged over ``num_particles`` guide draws, shape ``(n,)``."""
    n, dim, nesting = args[0].shape[0], structure.data_dim, structure.max_plate_nesting
    total = args[0].new_zeros(n)
    for _ in range(num_particles):
        guide_trace = poutine.trace(guide).get_trace(*args)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args)
        for name in structure.local_latents:
            if name not in guide_trace.nodes:
                continue
            value = guide_trace.nodes[name]["value"]
            q = guide_trace.nodes[name]["fn"].log_prob(value)
            p = model_trace.nodes[name]["fn"].log_prob(value)
            total = total + _plate_sum(q - p, dim, nesting, n).reshape(n)
    return total / num_particles


def particle_log_weights(
    model: Callable, guide: Callable | None, structure: ProgramStructure, args: tuple, k: int
) -> torch.Tensor:
    """:func:`log_weights` with ``k`` particles, ``(k, n)``. Without global latents the
    particles are ``k`` copies of the batch (every tensor in ``args`` repeated), one pass."""
    if structure.global_latents or k == 1:
        return log_weights(model, guide, structure, args, k)
    repeated = tuple(a.repeat(k, *([1] * (a.dim() - 1))) if torch.is_tensor(a) else a for a in args)
    return log_weights(model, guide, structure, repeated, 1).reshape(k, -1)


def log_marginal(
    model: Callable,
    guide: Callable | None,
    structure: ProgramStructure,
    args: tuple,
    num_particles: int = 1000,
    chunk: int = 100,
) -> torch.Tensor:
    """Importance-sampled log p(x_i) per point, particles drawn ``chunk`` at a time (the
    chunks combine exactly through ``logsumexp``)."""
    parts, left = [], num_particles
    while left > 0:
        k = min(chunk, left)
        parts.append(particle_log_weights(model, guide, structure, args, k))
        left -= k
    return importance_bound(torch.cat(parts))


def importance_bound(log_w: torch.Tensor) -> torch.Tensor:
    """``logsumexp_k log w_k - log K`` per point, from weights shaped ``(K, n)``."""
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])
