"""Preprocessing fitted on training data, stored with the run, inverted on output.

A :class:`Preprocessor` maps data units ``v`` to model space ``x`` and back. Every map here is
affine per dimension, ``x = a * v + b``, so densities convert exactly between the two units:

    log p_v(v) = log p_x(x) + D * log|a|

(:meth:`Preprocessor.log_abs_det_jacobian`). For discrete intensities with uniform
dequantisation (Uria et al. 2013; Theis et al. 2016), ``x = low + (high - low) (v + u) / L`` with
``u ~ U[0, 1)``, and the same identity turns the continuous model's density into a lower bound on
the probability of the discrete value ``v``.
"""

from __future__ import annotations

import math

import torch


class Preprocessor:
    """Affine map between data units and model space; subclasses fix how it is fitted."""

    kind = "identity"
    #: whether ``forward(v, train=True)`` adds uniform dequantisation noise, so the fit loop
    #: must keep the data in data units and map each batch as it is drawn
    dequantize: bool = False

    def forward(
        self, v: torch.Tensor, train: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Data units to model space (``train=True`` adds dequantisation noise, if any)."""
        return v

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Model space to data units."""
        return x

    def log_abs_det_jacobian(self, dim: int) -> float:
        """``log|dx/dv|`` summed over the ``dim`` dimensions of one example."""
        return 0.0

    def to_dict(self) -> dict:
        return {"kind": self.kind}

    @staticmethod
    def from_dict(d: dict) -> Preprocessor:
        kinds = {c.kind: c for c in (Identity, Standardize, ImageScaling)}
        return kinds[d["kind"]]._from_dict(d)

    @classmethod
    def _from_dict(cls, d: dict) -> Preprocessor:
        return cls()


class Identity(Preprocessor):
    """Leaves data as it is."""


class Standardize(Preprocessor):
    """Per-dimension standardisation ``x = (v - mean) / std`` for continuous vectors.

    Means and deviations are computed in float64 so data far from the origin (large offsets,
    unequal scales) standardise exactly; a constant dimension keeps ``std = 1``.
    """

    kind = "standardize"

    def __init__(self, mean: torch.Tensor | list, std: torch.Tensor | list) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        self.std = torch.as_tensor(std, dtype=torch.float64)

    @classmethod
    def fit(cls, v: torch.Tensor) -> Standardize:
        v64 = v.detach().to("cpu", torch.float64).reshape(v.shape[0], -1)
        mean = v64.mean(0)
        std = v64.std(0) if v64.shape[0] > 1 else torch.ones_like(mean)
        std = torch.where(std > 1e-12 * (1 + mean.abs()), std, torch.ones_like(std))
        return cls(mean.reshape(v.shape[1:]), std.reshape(v.shape[1:]))

    def forward(
        self, v: torch.Tensor, train: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        mean = self.mean.to(v.device)
        std = self.std.to(v.device)
        return ((v.to(torch.float64) - mean) / std).to(torch.get_default_dtype())

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(x.device)
        std = self.std.to(x.device)
        return (x.to(torch.float64) * std + mean).to(x.dtype)

    def log_abs_det_jacobian(self, dim: int) -> float:
        return float(-self.std.log().sum())

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def _from_dict(cls, d: dict) -> Standardize:
        return cls(d["mean"], d["std"])


class ImageScaling(Preprocessor):
    """Rescale image intensities to ``[low, high]``, with optional uniform dequantisation.

    Discrete intensities ``v in {0, ..., L-1}`` map to ``low + (high - low) v / (L - 1)``
    (so 0 and L-1 reach the ends of the range), or with dequantisation to
    ``low + (high - low) (v + u) / L`` with ``u ~ U[0, 1)`` during training and ``u = 1/2``
    otherwise. Continuous intensities (``levels=None``) map ``[vmin, vmax]`` linearly.
    ``inverse`` rounds back to the nearest level and clamps to the data's range.
    """

    kind = "image"

    def __init__(
        self,
        low: float,
        high: float,
        levels: int | None = None,
        vmin: float = 0.0,
        vmax: float = 1.0,
        dequantize: bool = False,
    ) -> None:
        self.low, self.high = float(low), float(high)
        self.levels = int(levels) if levels is not None else None
        self.vmin, self.vmax = float(vmin), float(vmax)
        self.dequantize = bool(dequantize) and self.levels is not None

    @property
    def scale(self) -> float:
        """``dx/dv``: model-space units per data unit."""
        span = self.high - self.low
        if self.levels is None:
            return span / max(self.vmax - self.vmin, 1e-12)
        return span / (self.levels if self.dequantize else max(self.levels - 1, 1))

    def forward(
        self, v: torch.Tensor, train: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        v = v.to(torch.get_default_dtype())
        if self.levels is None:
            return self.low + (v - self.vmin) * self.scale
        if self.dequantize:
            if train:
                u = torch.rand(v.shape, generator=generator, device=v.device, dtype=v.dtype)
            else:
                u = torch.full_like(v, 0.5)
            v = v + u
        return self.low + v * self.scale

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        v = (x - self.low) / self.scale
        if self.levels is None:
            return (v + self.vmin).clamp(self.vmin, self.vmax)
        v = torch.floor(v) if self.dequantize else torch.round(v)
        return v.clamp(0, self.levels - 1)

    def log_abs_det_jacobian(self, dim: int) -> float:
        return dim * math.log(self.scale)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "low": self.low,
            "high": self.high,
            "levels": self.levels,
            "vmin": self.vmin,
            "vmax": self.vmax,
            "dequantize": self.dequantize,
        }

    @classmethod
    def _from_dict(cls, d: dict) -> ImageScaling:
        return cls(d["low"], d["high"], d["levels"], d["vmin"], d["vmax"], d["dequantize"])
