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
    """``(N, C, H, W) -> (N,)``: a 3x3 convolution, stride-2 4x4 convolutions, a linear read-out."""

    def __init__(
        self, event_shape: tuple[int, ...], channels: tuple[int, ...], nonlinearity: str
    ) -> None:
        in_channels, height, width = event_shape
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, channels[0], 3, padding=1),
            activation(nonlinearity),
        ]
        for c_in, c_out in pairwise(channels):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), activation(nonlinearity)]
            height, width = height // 2, width // 2
        layers += [nn.Flatten(), nn.Linear(channels[-1] * height * width, 1)]
        super().__init__(*layers)


def energy_network(config: EBMConfig, data_info: DataInfo) -> nn.Module:
    """The energy ``E``: :class:`ConvEnergy` for images, an MLP on the flattened input for
    vectors, every layer spectral-normalised with ``config.spectral_norm``."""
    if data_info.kind == "image":
        net = ConvEnergy(data_info.event_shape, config.channels, config.activation)
    else:
        net = nn.Sequential(nn.Flatten(), MLP(data_info.dim, config.hidden, 1, config.activation))
    if config.spectral_norm:
        for module in list(net.modules()):
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                spectral_norm(module)
    return net
