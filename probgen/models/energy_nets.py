"""The energy networks ``E: x -> R`` of the energy-based model (:mod:`probgen.models.ebm`)."""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from probgen.nn.mlp import MLP, activation

if TYPE_CHECKING:
    from probgen.models.base import DataInfo
    from probgen.models.ebm import EBMConfig


class ConvEnergy(nn.Sequential):
    """``(N, C, H, W) -> (N,)``: a 3x3 convolution, stride-2 4x4 convolutions, a linear read-out.

    With ``patch_size = p > 1`` the image is first folded into ``p x p`` patches stacked on
    channels (``pixel_unshuffle``), so every convolution runs at ``1/p^2`` of the pixels: the
    energy and its input gradient, which each Langevin step of training evaluates, cost about
    ``p^2`` times less for the same widths.
    """

    def __init__(
        self,
        event_shape: tuple[int, ...],
        channels: tuple[int, ...],
        nonlinearity: str,
        patch_size: int = 1,
    ) -> None:
        in_channels, height, width = event_shape
        if height % patch_size or width % patch_size:
            raise ValueError(
                f"patch_size {patch_size} must divide the image sides {height}x{width}"
            )
        layers: list[nn.Module] = [nn.PixelUnshuffle(patch_size)] if patch_size > 1 else []
        in_channels, height, width = (
            in_channels * patch_size**2,
            height // patch_size,
            width // patch_size,
        )
        layers += [nn.Conv2d(in_channels, channels[0], 3, padding=1), activation(nonlinearity)]
        for c_in, c_out in pairwise(channels):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), activation(nonlinearity)]
            height, width = height // 2, width // 2
        layers += [nn.Flatten(), nn.Linear(channels[-1] * height * width, 1)]
        super().__init__(*layers)


def energy_network(config: EBMConfig, data_info: DataInfo) -> nn.Module:
    """The energy ``E``: :class:`ConvEnergy` for images, an MLP on the flattened input for
    vectors, every layer spectral-normalised with ``config.spectral_norm``."""
    if data_info.kind == "image":
        net = ConvEnergy(
            data_info.event_shape, config.channels, config.activation, config.patch_size
        )
    else:
        net = nn.Sequential(nn.Flatten(), MLP(data_info.dim, config.hidden, 1, config.activation))
    if config.spectral_norm:
        for module in list(net.modules()):
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                spectral_norm(module)
    return net
