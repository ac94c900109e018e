"""Paths through a latent space, for interpolation between two encoded points."""

from __future__ import annotations

import torch


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
