"""Options and helpers shared by several commands."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from probgen.errors import ConfigError, DataError

device_option = click.option(
    "--device", default="auto", show_default=True, help="auto, cpu or cuda."
)
trust_option = click.option(
    "--trust-code",
    is_flag=True,
    help="Allow a run made from a user model file to import that file's code.",
)
seed_option = click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
data_key_option = click.option("--data-key", default=None, help="Array to read from a .npz file.")
labels_option = click.option(
    "--labels",
    default=None,
    help="Labels: an .npz key, a CSV column (name or index), or a .npy/IDX labels file.",
)


def load_run_model(run: str, device: str, trust_code: bool):
    from probgen.runs import load_model
    from probgen.train import resolve_device

    return load_model(run, resolve_device(device), trust_code=trust_code)


def run_dataset(run: str, data: str | None, data_key=None, labels=None, as_test: bool = True):
    """The dataset given with ``-d`` (a file: every row held out, unless ``as_test`` is
    false), else the run's own."""
    from probgen.data import load_dataset
    from probgen.evaluation import as_test_data
    from probgen.runs import Run
    from probgen.train import load_run_dataset

    if data is not None:
        dataset = load_dataset(data, data_key=data_key, labels=labels)
        return as_test_data(dataset) if as_test else dataset
    return load_run_dataset(Run(run).read_config()["data"])


def check_output(path: str, suffixes: tuple[str, ...]) -> Path:
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise ConfigError(f"{out}: output must end in {', '.join(suffixes)}")
    if out.exists() and out.is_dir():
        raise ConfigError(f"{out} is a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def save_array(out: Path, array: np.ndarray, labels: np.ndarray | None = None, **extra) -> None:
    """``.npy`` or ``.npz`` (with labels and extras), written through a temporary file."""
    tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
    if out.suffix.lower() == ".npz":
        arrays = {"x": array, **extra}
        if labels is not None:
            arrays["y"] = labels
        np.savez(tmp, **arrays)
    else:
        np.save(tmp, array)
    tmp.replace(out)


def save_samples_png(out: Path, samples: np.ndarray, model, reference=None) -> None:
    from probgen import plots

    if samples.ndim == 4:
        levels = model.data_info.levels
        vmax = float(levels - 1) if levels else None
        vmin = 0.0 if levels else None
        plots.image_grid(
            samples, out, vmin=vmin if vmin is not None else float(samples.min()), vmax=vmax
        )
    elif samples.ndim == 2 and samples.shape[1] == 2:
        plots.scatter(samples, out, reference=reference)
    else:
        raise DataError(
            f"PNG output needs images or 2-D points; these samples have shape "
            f"{samples.shape[1:]} (write .npy or .npz instead)"
        )
