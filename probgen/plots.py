"""Figures written by the command line: image grids, 2-D scatter plots, density maps, paths."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from types import ModuleType

    from matplotlib.figure import Figure


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Figure, path: Path) -> None:
    """Save through a temporary name so an existing file is never left half-written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    tmp.replace(path)


def image_grid(
    images: np.ndarray,
    path: Path,
    vmin: float = 0.0,
    vmax: float | None = None,
    ncols: int | None = None,
) -> None:
    """Save ``(N, C, H, W)`` images as one PNG grid, intensities mapped from [vmin, vmax]."""
    from PIL import Image

    images = np.asarray(images, dtype=np.float64)
    n, c, h, w = images.shape
    vmax = float(images.max()) if vmax is None else vmax
    scaled = np.clip((images - vmin) / max(vmax - vmin, 1e-12), 0, 1)
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    pad = 1
    canvas = np.ones((c, nrows * (h + pad) + pad, ncols * (w + pad) + pad))
    for i in range(n):
        r, col = divmod(i, ncols)
        y0, x0 = pad + r * (h + pad), pad + col * (w + pad)
        canvas[:, y0 : y0 + h, x0 : x0 + w] = scaled[i]
    pixels = (canvas * 255).round().astype(np.uint8)
    img = (
        Image.fromarray(pixels[0], "L")
        if c == 1
        else Image.fromarray(pixels[:3].transpose(1, 2, 0), "RGB")
    )
    scale = max(1, 256 // max(canvas.shape[1], canvas.shape[2]))
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    img.save(tmp)
    tmp.replace(path)


def scatter(
    samples: np.ndarray, path: Path, reference: np.ndarray | None = None, title: str | None = None
) -> None:
    """2-D samples (and optionally reference data beside them) as a PNG scatter plot."""
    plt = _pyplot()
    panels = 2 if reference is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 4.5), squeeze=False)
    sets = [("samples", samples)] + ([("data", reference)] if reference is not None else [])
    both = np.concatenate([s for _, s in sets])
    lo, hi = np.percentile(both, 0.5, axis=0), np.percentile(both, 99.5, axis=0)
    margin = 0.05 * (hi - lo)
    for ax, (name, pts) in zip(axes[0], sets):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
        ax.set_xlim(lo[0] - margin[0], hi[0] + margin[0])
        ax.set_ylim(lo[1] - margin[1], hi[1] + margin[1])
        ax.set_title(name if title is None or name == "data" else title)
    save_figure(fig, path)
    plt.close(fig)


def density_map(
    log_density: Callable[[np.ndarray], np.ndarray],
    data: np.ndarray,
    path: Path,
    resolution: int = 200,
) -> None:
    """A heat map of ``exp(log_density(grid))`` beside the data, for 2-D models."""
    plt = _pyplot()
    lo, hi = np.percentile(data, 0.5, axis=0), np.percentile(data, 99.5, axis=0)
    pad = 0.15 * (hi - lo)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    dens = np.exp(np.asarray(log_density(grid))).reshape(resolution, resolution)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
    axes[0].imshow(dens, origin="lower", extent=(xs[0], xs[-1], ys[0], ys[-1]), aspect="auto")
    axes[0].set_title("model density")
    axes[1].scatter(data[:, 0], data[:, 1], s=2, alpha=0.5)
    axes[1].set_xlim(xs[0], xs[-1])
    axes[1].set_ylim(ys[0], ys[-1])
    axes[1].set_title("data")
    save_figure(fig, path)
    plt.close(fig)


def path_plot(path_points: np.ndarray, data: np.ndarray, out: Path) -> None:
    """A 2-D interpolation path drawn over the data."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(data[:, 0], data[:, 1], s=2, alpha=0.3, color="grey")
    ax.plot(path_points[:, 0], path_points[:, 1], "-o", color="C3", ms=3)
    ax.set_title("interpolation")
    save_figure(fig, out)
    plt.close(fig)
