"""The shared image U-Net: patch sizes resolved by image size, networks built from a config."""

from dataclasses import dataclass

import pytest
import torch

from probgen.errors import ConfigError
from probgen.models.base import DataInfo
from probgen.models.image_networks import resolve_patch_size, time_unet

SMALL = DataInfo((1, 8, 8), kind="image", value_range=(0.0, 1.0), levels=17)
LARGE = DataInfo((3, 16, 16), kind="image", value_range=(0.0, 1.0), levels=256)
ODD = DataInfo((1, 17, 17), kind="image", value_range=(0.0, 1.0), levels=256)


@dataclass
class Net:
    channels: int = 8
    channel_mults: tuple[int, ...] = (1, 2)
    res_blocks: int = 1
    dropout: float = 0.0
    patch_size: int | None = None


def test_none_folds_2x2_patches_for_large_images_with_even_sides_only():
    assert resolve_patch_size(None, SMALL) == 1
    assert resolve_patch_size(None, LARGE) == 2
    assert resolve_patch_size(None, ODD) == 1
    assert resolve_patch_size(None, DataInfo((5,))) == 1
    assert resolve_patch_size(4, LARGE) == 4  # a chosen size is kept
    with pytest.raises(ConfigError, match="must divide"):
        resolve_patch_size(3, LARGE)
    with pytest.raises(ConfigError, match="at least 1"):
        resolve_patch_size(0, LARGE)


def test_the_unet_follows_the_config_and_maps_images_to_their_shape():
    net = time_unet(Net(), LARGE, out_factor=2, time_scale=1000.0)
    assert net.patch_size == 2 and net.stem.in_channels == 3 * 4 and net.stem.out_channels == 8
    out = net(torch.randn(2, 3, 16, 16), torch.rand(2))
    assert out.shape == (2, 6, 16, 16)
    with pytest.raises(ConfigError, match="U-Net needs images"):
        time_unet(Net(), DataInfo((5,)))
