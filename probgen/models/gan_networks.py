"""The GAN's networks: a small convolutional generator for images and the discriminator.

Vector data use a plain :class:`~probgen.nn.mlp.MLP` as the generator; the discriminator is an
MLP or a CNN by the shape of its (packed) input, optionally spectrally normalised.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from probgen.infer.adversarial import MinibatchStd
from probgen.nn.mlp import MLP, activation

if TYPE_CHECKING:
    from probgen.models.base import DataInfo


def resolution_stages(height: int, width: int) -> int:
    """How many times the convolutional networks halve (or double) the image: twice for
    images of 16 pixels a side or more whose sides divide by 4 (28x28 digits work at 7x7),
    once otherwise (8x8 digits work at 4x4)."""
    return 2 if min(height, width) >= 16 and height % 4 == 0 and width % 4 == 0 else 1


def image_stages(data_info: DataInfo) -> int:
    """:func:`resolution_stages` of ``data_info``'s images; 1 for vectors (which have none)."""
    shape = tuple(data_info.event_shape)
    if data_info.kind != "image" or len(shape) != 3:
        return 1
    return resolution_stages(shape[1], shape[2])


UPSAMPLINGS = ("nearest", "transpose")


def doubling(c_in: int, c_out: int, upsampling: str) -> list[nn.Module]:
    """Layers that double a map's height and width: a 4x4 transposed convolution of stride 2
    (``transpose``, as in DCGAN: Radford et al. 2016, "Unsupervised Representation Learning
    with Deep Convolutional Generative Adversarial Networks"), or a nearest-neighbour
    upsampling and a 3x3 convolution (``nearest``; four times the multiply-adds at the doubled
    size, and no checkerboard artefacts: Odena et al. 2016, "Deconvolution and Checkerboard
    Artifacts")."""
    if upsampling == "transpose":
        return [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1)]


class ConvGenerator(nn.Module):
    """``z -> (2^s c, H/2^s, W/2^s) -> s x doubling -> conv -> tanh``: images in (-1, 1), the
    width halving at each of the ``s`` (:func:`resolution_stages`) :func:`doubling` layers."""

    def __init__(
        self,
        latent_dim: int,
        event_shape: tuple[int, ...],
        channels: int,
        act: str,
        upsampling: str = "nearest",
    ) -> None:
        super().__init__()
        c_out, h, w = event_shape
        stages = resolution_stages(h, w)
        factor = 2**stages
        self.start_shape = (factor * channels, h // factor, w // factor)
        self.project = nn.Linear(latent_dim, math.prod(self.start_shape))
        layers: list[nn.Module] = []
        for i in range(stages, 0, -1):
            layers += [
                activation(act),
                *doubling(2**i * channels, 2 ** (i - 1) * channels, upsampling),
            ]
        self.body = nn.Sequential(
            *layers, activation(act), nn.Conv2d(channels, c_out, 3, padding=1), nn.Tanh()
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).reshape(z.shape[0], *self.start_shape))


class Discriminator(nn.Module):
    """``logit = head([features(x), minibatch std])``: an MLP for vectors, a CNN for images.

    ``x`` arrives packed (``in_shape`` has ``pack`` times the data's first dimension); the
    optional :class:`~probgen.infer.adversarial.MinibatchStd` feature (groups of
    ``group_size``; ``None``: no such feature) sits before the head. ``hidden`` are the MLP's
    widths, the last one the feature width the head reads; ``channels`` the CNN's base width.
    """

    def __init__(
        self,
        in_shape: tuple[int, ...],
        hidden: Sequence[int],
        channels: int,
        act: str,
        group_size: int | None = None,
    ) -> None:
        super().__init__()
        if len(in_shape) == 3:  # packed images (m C, H, W)
            c_in, h, w = in_shape
            stages = resolution_stages(h, w)
            layers: list[nn.Module] = [nn.Conv2d(c_in, channels, 3, padding=1), activation(act)]
            for i in range(stages):  # halve the map, double the width
                layers += [
                    nn.Conv2d(2**i * channels, 2 ** (i + 1) * channels, 4, stride=2, padding=1),
                    activation(act),
                ]
            self.features = nn.Sequential(*layers)
            pixels = (h // 2**stages) * (w // 2**stages)
            width, extra = 2**stages * channels * pixels, pixels
        else:
            *widths, width = hidden
            self.features = nn.Sequential(MLP(in_shape[0], widths, width, act), activation(act))
            extra = 1
        self.minibatch_std = MinibatchStd(group_size) if group_size is not None else None
        self.head = nn.Linear(width + (extra if self.minibatch_std else 0), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        if self.minibatch_std is not None:
            h = self.minibatch_std(h)
        return self.head(h.flatten(1)).squeeze(-1)


def spectral_normalise(module: nn.Module) -> None:
    """Divide every linear and convolution weight of ``module`` by its largest singular value
    (Miyato et al. 2018, "Spectral Normalization for Generative Adversarial Networks")."""
    for layer in list(module.modules()):
        if isinstance(layer, nn.Linear | nn.Conv2d):
            spectral_norm(layer)
