"""Conversion of user inputs (numpy arrays, tensors, lists) to float64 arrays and tensors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from probgen.errors import DataError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def as_float64(x: ArrayLike, name: str = "samples", ndim: int | None = None) -> np.ndarray:
    """``x`` as a float64 numpy array, checked to be finite and of ``ndim`` dimensions if given."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    return _checked(np.asarray(x, dtype=np.float64), name, ndim)


def as_float64_tensor(x: ArrayLike, name: str = "samples", ndim: int | None = None) -> torch.Tensor:
    """``x`` as a float64 tensor (a tensor keeps its device), checked like :func:`as_float64`."""
    t = torch.as_tensor(x).detach().to(torch.float64)
    _checked(t, name, ndim)
    return t


def _checked(
    x: np.ndarray | torch.Tensor, name: str, ndim: int | None
) -> np.ndarray | torch.Tensor:
    if ndim is not None and x.ndim != ndim:
        raise DataError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    finite = torch.isfinite(x).all() if isinstance(x, torch.Tensor) else np.isfinite(x).all()
    if not bool(finite):
        raise DataError(f"{name} contains NaN or infinite values")
    return x
