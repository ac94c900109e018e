"""Gaussian noise shaped like a tensor, from an optional seeded generator.

One helper for every sampler that injects noise (Langevin, MALA, annealed Langevin, the
diffusion samplers), so a ``torch.Generator`` makes any of them reproducible on any device.
"""

from __future__ import annotations

import torch


def randn_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``eps ~ N(0, I)`` with the shape, dtype and device of ``x``, drawn from ``generator``
    (``torch.randn_like`` takes no generator)."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
