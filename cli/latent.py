"""``probgen encode``, ``decode`` and ``interpolate``: through a model's latent space."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from .common import (
    check_output,
    data_key_option,
    device_option,
    labels_option,
    load_run_model,
    run_dataset,
    save_array,
    trust_option,
)

if TYPE_CHECKING:
    import torch

    from probgen.models.base import GenerativeModel


def _require(model: GenerativeModel, method: str, run: str) -> None:
    from probgen.errors import ConfigError

    if not model.supports(method):
        raise ConfigError(
            f"the {type(model).__name__} model in {run} has no latent space ({method})"
        )


def _labels_tensor(model: GenerativeModel, labels: np.ndarray | None) -> torch.Tensor | None:
    import torch

    if labels is None or not model.supports("labels"):
        return None
    return torch.as_tensor(labels).to(model.device)


@click.command()
@click.argument("run")
@click.option("-d", "--data", required=True, help="Data to encode (name or path).")
@click.option("-o", "--out", required=True, help="Output .npz of latent codes.")
@click.option(
    "--split",
    type=click.Choice(["test", "train", "all"]),
    default="all",
    show_default=True,
    help="Which part of a dataset to encode.",
)
@data_key_option
@labels_option
@device_option
@trust_option
def encode(
    run: str,
    data: str,
    out: str,
    split: str,
    data_key: str | None,
    labels: str | None,
    device: str,
    trust_code: bool,
) -> None:
    """Write the latent codes of DATA under the model in RUN to an .npz (codes, labels)."""
    import torch

    from probgen.errors import ConfigError

    out_path = check_output(out, (".npz",))
    model = load_run_model(run, device, trust_code)
    _require(model, "encode", run)
    dataset = run_dataset(run, data, data_key, labels, as_test=False)
    if dataset.event_shape != tuple(model.data_info.event_shape):
        raise ConfigError(
            f"{data} has shape {dataset.event_shape}; {run} expects "
            f"{tuple(model.data_info.event_shape)}"
        )
    parts = {
        "train": [(dataset.train, dataset.train_labels)],
        "test": [(dataset.test, dataset.test_labels)],
    }
    parts["all"] = parts["train"] + parts["test"]
    xs = np.concatenate([x for x, _ in parts[split]])
    ys = None
    if all(y is not None for _, y in parts[split]):
        ys = np.concatenate([y for _, y in parts[split]])
    with torch.no_grad():
        x = model.preprocessor.forward(torch.as_tensor(xs).to(model.device))
        y = _labels_tensor(model, ys)
        codes = torch.cat(
            [
                model.encode(x[i : i + 256], None if y is None else y[i : i + 256])
                for i in range(0, len(x), 256)
            ]
        )
        rate, distortion = _rate_distortion(model, x, y, codes, xs)
    extra = {"rate_bits": np.float64(rate)} if rate is not None else {}
    save_array(out_path, codes.cpu().numpy(), ys, distortion_mse=np.float64(distortion), **extra)
    click.echo(f"wrote {len(codes)} codes of shape {tuple(codes.shape[1:])} to {out_path}")
    rate_text = f"rate {rate:.2f} bits per example; " if rate is not None else ""
    click.echo(f"{rate_text}distortion (mean squared error, data units) {distortion:.4g}")


def _rate_distortion(
    model: GenerativeModel,
    x: torch.Tensor,
    y: torch.Tensor | None,
    codes: torch.Tensor,
    original: np.ndarray,
) -> tuple[float | None, float]:
    """Mean code length (bits) and mean squared reconstruction error in the data's units."""
    import torch

    from probgen.latent import latent_rate_bits

    rates, recon = [], []
    for i in range(0, len(x), 256):
        yb = None if y is None else y[i : i + 256]
        rate = latent_rate_bits(model, x[i : i + 256], yb)
        if rate is not None:
            rates.append(rate)
        recon.append(model.preprocessor.inverse(model.decode(codes[i : i + 256], yb)))
    error = (torch.cat(recon).double().cpu() - torch.as_tensor(original).double()).square()
    rate = float(torch.cat(rates).mean()) if rates else None
    return rate, float(error.mean())


def _read_codes(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Latent codes ``(N, D)`` (and labels) from an ``.npz`` (``x``, ``y``) or an ``.npy``."""
    from probgen.data.files import check_regular, read_npy, read_npz
    from probgen.errors import DataError

    check_regular(path, "codes")
    if path.suffix.lower() == ".npy":
        z, ys = read_npy(path), None
    elif path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as f:
            keys = list(f.keys())
        z, _ = read_npz(path, "x" if "x" in keys else None, None)
        ys = read_npz(path, "x" if "x" in keys else None, "y")[1] if "y" in keys else None
    else:
        raise DataError(f"{path}: codes must be an .npz from `probgen encode` or an .npy")
    if z.dtype.kind not in "biuf":
        raise DataError(f"{path}: codes must be numbers, found dtype {z.dtype}")
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim < 2 or len(z) == 0:
        raise DataError(f"{path}: codes must be rows (N, D), found shape {z.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~np.isfinite(z.astype(np.float32))  # NaN, inf, or beyond what float32 holds
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise DataError(
            f"{path}: {int(bad.sum())} codes are NaN, infinite or beyond float32 "
            f"(first in row {first})"
        )
    if ys is not None:
        ys = np.asarray(ys).reshape(-1)
        if len(ys) != len(z):
            raise DataError(f"{path}: {len(ys)} labels for {len(z)} codes")
    return z, ys


@click.command()
@click.argument("run")
@click.argument("codes")
@click.option("-o", "--out", required=True, help="Output .npy/.npz (or .png) of decoded data.")
@device_option
@trust_option
def decode(run: str, codes: str, out: str, device: str, trust_code: bool) -> None:
    """Decode the latent CODES (.npz from `probgen encode`) back to data units."""
    import torch

    from probgen.errors import DataError

    from .common import save_samples_png

    out_path = check_output(out, (".npy", ".npz", ".png"))
    model = load_run_model(run, device, trust_code)
    _require(model, "decode", run)
    z, ys = _read_codes(Path(codes))
    if ys is not None and model.supports("labels"):
        classes = model.data_info.num_classes or 0
        if ys.dtype.kind not in "iu" or (len(ys) and not 0 <= ys.min() <= ys.max() < classes):
            raise DataError(f"{codes}: labels must be class indices in 0..{classes - 1}")
    with torch.no_grad():
        zt = torch.as_tensor(z, dtype=torch.get_default_dtype()).to(model.device)
        y = _labels_tensor(model, ys)
        try:
            x = model.preprocessor.inverse(model.decode(zt, y)).cpu().numpy()
        except (RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DataError(
                f"{codes}: these codes do not fit the model in {run} ({first})"
            ) from None
    if out_path.suffix.lower() == ".png":
        save_samples_png(out_path, x, model)
    else:
        save_array(out_path, x, ys)
    click.echo(f"wrote {len(x)} decoded examples {tuple(x.shape[1:])} to {out_path}")


@click.command()
@click.argument("run")
@click.option("--a", "index_a", type=int, required=True, help="Index of the first example.")
@click.option("--b", "index_b", type=int, required=True, help="Index of the second example.")
@click.option(
    "-k", "--num", "k", type=int, default=10, show_default=True, help="Points on the path."
)
@click.option(
    "--path",
    "path_kind",
    type=click.Choice(["linear", "spherical"]),
    default="spherical",
    show_default=True,
)
@click.option("-o", "--out", required=True, help="Output .png (or .npy).")
@click.option("-d", "--data", default=None, help="Data the indices refer to [default: the run's].")
@device_option
@trust_option
def interpolate(
    run: str,
    index_a: int,
    index_b: int,
    k: int,
    path_kind: str,
    out: str,
    data: str | None,
    device: str,
    trust_code: bool,
) -> None:
    """Decode K points on a path in latent space between held-out examples A and B."""
    import torch

    from probgen import plots
    from probgen.errors import ConfigError
    from probgen.latent import PATHS

    from .common import save_samples_png

    out_path = check_output(out, (".png", ".npy"))
    if k < 2:
        raise ConfigError("-k must be at least 2")
    model = load_run_model(run, device, trust_code)
    _require(model, "encode", run)
    dataset = run_dataset(run, data)
    n = len(dataset.test)
    for name, i in (("--a", index_a), ("--b", index_b)):
        if not 0 <= i < n:
            raise ConfigError(f"{name} {i} is out of range: the held-out set has {n} examples")
    v = torch.as_tensor(dataset.test[[index_a, index_b]]).to(model.device)
    labels = dataset.test_labels
    y = None
    if labels is not None and model.supports("labels"):
        y = torch.as_tensor(labels[[index_a, index_a]]).to(model.device)
    with torch.no_grad():
        z = model.encode(model.preprocessor.forward(v), y)
        path = PATHS[path_kind](z[0], z[1], k)
        yk = None if y is None else y[:1].expand(k)
        x = model.preprocessor.inverse(model.decode(path, yk)).cpu().numpy()
    if out_path.suffix.lower() == ".npy":
        save_array(out_path, x)
    elif x.ndim == 4:
        save_samples_png(out_path, x, model)
    elif x.ndim == 2 and x.shape[1] == 2:
        plots.path_plot(x, dataset.test, out_path)
    else:
        raise ConfigError("PNG output needs images or 2-D data; write .npy instead")
    click.echo(f"wrote a {path_kind} path of {k} points to {out_path}")
