"""A small time-conditioned U-Net for denoising images (8x8 digits up to 28x28 MNIST).

The DDPM architecture without attention, sized for small images on a CPU: residual blocks
``h = conv(SiLU(GN(x))) + W SiLU(emb(t)); out = x + conv(SiLU(GN(h)))``, a stride-2
convolution between resolutions, nearest-neighbour upsampling back to each skip's exact size
(so odd sizes such as 7x7 work), and skip connections concatenated on the way up. With
``patch_size = p > 1`` the image enters as ``p x p`` patches stacked on channels
(``pixel_unshuffle``) and leaves the same way (``pixel_shuffle``): the network works at
``H/p x W/p`` from its first layer, ``p^2`` times fewer multiply-adds at each resolution for
the same widths (Hoogeboom et al. 2023's patching for large images, used here for a CPU).

References: Ronneberger et al. 2015, "U-Net"; Ho et al. 2020, appendix B (the DDPM U-Net);
Hoogeboom et al. 2023, "simple diffusion: End-to-end diffusion for high resolution images",
section 3.2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from probgen.nn.embeddings import SinusoidalEmbedding
from probgen.nn.mlp import MLP


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """Residual block conditioned on a time embedding added between its two convolutions."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = _norm(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = _norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class UNet(nn.Module):
    """``UNet(x, t) -> (N, out_channels, H, W)`` for ``x`` of shape ``(N, in_channels, H, W)``.

    Args:
        in_channels, out_channels: image channels in and out.
        channels: width of the first resolution.
        channel_mults: width multiplier per resolution; each one after the first halves H, W.
        num_res_blocks: residual blocks per resolution on the way down (one more on the way up).
        dropout: dropout inside residual blocks.
        time_scale: ``t`` is embedded as ``t * time_scale`` (1 for integer steps).
        patch_size: side ``p`` of the square patches the image is folded into (1: pixels);
            ``H`` and ``W`` must divide by it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: int = 32,
        channel_mults: Sequence[int] = (1, 2),
        num_res_blocks: int = 1,
        dropout: float = 0.0,
        time_scale: float = 1.0,
        patch_size: int = 1,
    ) -> None:
        super().__init__()
        if patch_size < 1:
            raise ValueError(f"patch_size must be at least 1, got {patch_size}")
        self.patch_size = patch_size
        area = patch_size**2
        emb_dim = 4 * channels
        self.time_embedding = nn.Sequential(
            SinusoidalEmbedding(channels, scale=time_scale),
            MLP(channels, [emb_dim], emb_dim),
        )
        self.stem = nn.Conv2d(area * in_channels, channels, 3, padding=1)

        widths = [channels * m for m in channel_mults]
        skip_widths = [channels]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        ch = channels
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, width, emb_dim, dropout))
                ch = width
                skip_widths.append(ch)
            self.down.append(blocks)
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skip_widths.append(ch)

        self.mid = nn.ModuleList(
            [ResBlock(ch, ch, emb_dim, dropout), ResBlock(ch, ch, emb_dim, dropout)]
        )

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(ResBlock(ch + skip_widths.pop(), width, emb_dim, dropout))
                ch = width
            self.up.append(blocks)
            if level > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))

        self.head = nn.Sequential(
            _norm(ch), nn.SiLU(), nn.Conv2d(ch, area * out_channels, 3, padding=1)
        )
        # a zero last layer starts the denoiser at "predict 0", a stable start for any target
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_embedding(t)
        p = self.patch_size
        if x.shape[-1] % p or x.shape[-2] % p:
            raise ValueError(f"image sides {tuple(x.shape[-2:])} must divide by patch_size {p}")
        h = self.stem(F.pixel_unshuffle(x, p) if p > 1 else x)
        skips = [h]
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
                skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        for level, blocks in enumerate(self.up):
            for block in blocks:
                skip = skips.pop()
                if h.shape[-2:] != skip.shape[-2:]:
                    h = self.upsample[level - 1](F.interpolate(h, size=skip.shape[-2:]))
                h = block(torch.cat([h, skip], dim=1), emb)
        out = self.head(h)
        return F.pixel_shuffle(out, p) if p > 1 else out
