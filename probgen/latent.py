"""Latent spaces: paths for interpolation, and the rate of a code for compression."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from probgen.models.base import GenerativeModel


def linear_path(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` points ``(1 - t) a + t b`` for ``t`` evenly spaced in [0, 1]."""
    t = torch.linspace(0.0, 1.0, k, device=a.device, dtype=a.dtype).reshape(-1, *[1] * a.dim())
    return (1 - t) * a + t * b


def spherical_path(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """``k`` points of spherical linear interpolation (slerp, Shoemake 1985; White 2016).

    ``slerp(t) = sin((1 - t) W) / sin W * a + sin(t W) / sin W * b`` with ``W`` the angle between
    ``a`` and ``b``: it keeps the norm typical of Gaussian latents, which a straight line
    through the origin's low-density region does not. Falls back to the straight line when
    ``a`` and ``b`` are (anti)parallel.
    """
    fa, fb = a.reshape(-1), b.reshape(-1)
    cos = torch.dot(fa, fb) / (fa.norm() * fb.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-4 or (torch.pi - omega).abs() < 1e-4:
        return linear_path(a, b, k)
    t = torch.linspace(0.0, 1.0, k, device=a.device, dtype=a.dtype).reshape(-1, *[1] * a.dim())
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


PATHS = {"linear": linear_path, "spherical": spherical_path}


def latent_rate_bits(
    model: GenerativeModel, x: torch.Tensor, y: torch.Tensor | None = None, num_particles: int = 16
) -> torch.Tensor | None:
    """The rate of a latent code in bits per example, or ``None`` when it has none.

    For a model with a guide (a VAE), the average code length of z under bits-back coding is
    KL(q(z | x) || p(z)) = E_q[log q(z | x) - log p(z)] (Hinton & van Camp 1993; Frey & Hinton
    1997), estimated with ``num_particles`` draws. For an exact-likelihood model (a flow), the
    lossless code length is -log2 p(x) in the data's units (for dequantised discrete data, a
    bound on the code length of the discrete values).
    """
    model.ensure_setup(x, y)
    if model.supports("guide"):
        from probgen.programs.scoring import local_rate

        args = (x, y, None)
        with torch.no_grad(), model.pyro_context():
            rate = local_rate(model.model, model.guide, model.structure, args, num_particles)
        return rate / math.log(2)
    if model.supports("log_prob"):
        return -(model.log_prob(x, y) + model.log_abs_det_to_data()) / math.log(2)
    return None
