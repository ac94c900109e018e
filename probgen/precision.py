"""The precision of training steps: fp32, bf16 autocast, or auto (bf16 where it pays off).

``bf16`` runs each training step under ``torch.autocast(dtype=torch.bfloat16)``: matrix
products and convolutions in bfloat16, losses, reductions and the optimiser's weights in
float32. ``auto`` (the default) is bf16 for models that declare a bf16 step budget
(:attr:`~probgen.models.base.GenerativeModel.bf16_default_steps`: the convolutional families on
large images) on CPUs with AMX tiles, whose bfloat16 matrix units run those steps 1.6 to 3.4
times faster than float32 (28x28 digits, 2 cores: diffusion 0.38 -> 0.15 s, score 0.38 -> 0.24
s, GAN 0.26 -> 0.08 s, EBM 0.22 -> 0.11 s); fp32 everywhere else, and always on GPUs, where
the user chooses. Sampling and evaluation always run in float32.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from probgen.errors import ConfigError

if TYPE_CHECKING:
    from probgen.models.base import GenerativeModel

PRECISIONS = ("auto", "fp32", "bf16")


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` is a CPU with AMX tiles (bfloat16 matrix units)."""
    # torch exposes the probe privately only (torch.cpu._is_amx_tile_supported, since 2.3)
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return device.type == "cpu" and probe is not None and bool(probe())


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be auto, fp32 or bf16, got {precision!r}")


def resolve_precision(precision: str, model: GenerativeModel, device: torch.device) -> str:
    """``fp32`` or ``bf16`` for training ``model`` on ``device`` (``auto``: module docstring)."""
    check_precision(precision)
    if precision != "auto":
        return precision
    if model.bf16_default_steps is not None and has_native_bf16(device):
        return "bf16"
    return "fp32"
