"""``probgen evaluate`` and ``probgen compare``: metrics of runs or of sample files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from .common import (
    check_count,
    data_key_option,
    device_option,
    labels_option,
    load_run_model,
    run_dataset,
    sample_in_chunks,
    save_samples_png,
    seed_option,
    trust_option,
)

if TYPE_CHECKING:
    from probgen.data.datasets import Dataset
    from probgen.models.base import GenerativeModel


def _metric_list(text: str | None) -> list[str] | None:
    return [m.strip() for m in text.split(",") if m.strip()] if text else None


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(results: dict) -> str:
    width = max((len(k) for k in results), default=6)
    return "\n".join(f"{k:<{width}}  {_format(v)}" for k, v in results.items())


def _load_samples(path: str, data_key: str | None) -> np.ndarray:
    from probgen.data.datasets import examples_from_array
    from probgen.data.files import read_npy, read_npz
    from probgen.errors import DataError

    p = Path(path)
    if not p.exists():
        raise DataError(f"samples file {p} does not exist")
    if p.suffix.lower() == ".npy":
        array = read_npy(p)
    elif p.suffix.lower() == ".npz":
        array, _ = read_npz(p, data_key or ("x" if "x" in _npz_keys(p) else None), None)
    else:
        raise DataError(f"{p}: samples must be a .npy or .npz file")
    return examples_from_array(array, str(p))


def _fit_sample_shape(samples: np.ndarray, dataset: Dataset, data: str) -> np.ndarray:
    """Samples in the data's example shape: flat rows of the data's size are reshaped."""
    from probgen.errors import ConfigError

    want = tuple(dataset.test.shape[1:])
    if tuple(samples.shape[1:]) == want:
        return samples
    if samples.ndim == 2 and samples.shape[1] == int(np.prod(want)):
        return samples.reshape(len(samples), *want)
    raise ConfigError(f"samples have shape {samples.shape[1:]} but {data} has {want}")


def _warn_if_ranges_differ(samples: np.ndarray, reference: np.ndarray, data: str) -> None:
    """One ``warning:`` line when samples and data clearly live on different scales (e.g.
    [0, 1] samples against 0..16 pixel values); the scores are computed as asked."""
    lo, hi = float(np.min(samples)), float(np.max(samples))
    dlo, dhi = float(np.min(reference)), float(np.max(reference))
    span, dspan = hi - lo, dhi - dlo
    tiny = 1e-12 * (1.0 + max(abs(lo), abs(hi), abs(dlo), abs(dhi)))
    overlap = max(0.0, min(hi, dhi) - max(lo, dlo))
    differ = (
        max(span, tiny) > 4 * max(dspan, tiny)
        or max(dspan, tiny) > 4 * max(span, tiny)
        or overlap < 0.5 * max(min(span, dspan), tiny)
    )
    if differ:
        click.echo(
            f"warning: the samples range over [{lo:.4g}, {hi:.4g}] but {data} ranges over "
            f"[{dlo:.4g}, {dhi:.4g}]; are they in the data's units? (scoring as asked)",
            err=True,
        )


def _check_sample_memory(n: int, shape: tuple[int, ...]) -> None:
    """Refuse an ``-n`` whose samples alone would not fit in memory, before drawing."""
    from probgen.data.files import available_memory, format_bytes
    from probgen.errors import ConfigError

    need = 4 * n * int(np.prod(shape)) * 3  # the samples, their features and a working copy
    free = available_memory()
    if need > free:
        raise ConfigError(
            f"-n {n}: scoring that many samples needs about {format_bytes(need)}, more than "
            f"the {format_bytes(free)} of memory available; ask for fewer"
        )


def _npz_keys(p: Path) -> list[str]:
    import numpy as np

    with np.load(p, allow_pickle=False) as f:
        return list(f.keys())


def _score_file(
    samples_file: str,
    dataset: Dataset,
    data: str,
    names: list[str] | None,
    feature: str | None,
    seed: int,
) -> dict:
    """Sample metrics of the samples in ``samples_file`` against ``dataset``'s held-out part."""
    from probgen.errors import ConfigError
    from probgen.evaluation import LIKELIHOOD_METRICS, score_samples

    if names and any(m in LIKELIHOOD_METRICS for m in names):
        raise ConfigError("likelihood metrics need a run, not a file of samples")
    samples = _fit_sample_shape(_load_samples(samples_file, None), dataset, data)
    _warn_if_ranges_differ(samples, dataset.test, data)
    results = {"n_samples": len(samples), "n_reference": len(dataset.test)}
    results.update(score_samples(samples, dataset, names, feature, seed))
    return results


def _note_pixel_fallback(feature: str | None, dataset: Dataset) -> None:
    """Say so when images of this shape have no shipped feature network (pixels are used)."""
    if feature is None and dataset.kind == "image":
        from probgen.metrics.features import PIXEL_FALLBACK, default_feature_for

        if default_feature_for(dataset.event_shape) == "pixels":
            click.echo(f"note: {dataset.event_shape} {PIXEL_FALLBACK}", err=True)


def _density_figure(model: GenerativeModel, dataset: Dataset, out: Path) -> None:
    """The learned 2-D density (data units) as a heat map beside the held-out data."""
    import torch

    from probgen import plots
    from probgen.evaluation import chunked

    shift = model.log_abs_det_to_data()

    def log_density(points: np.ndarray) -> np.ndarray:
        v = torch.as_tensor(points, dtype=torch.get_default_dtype()).to(model.device)
        with torch.no_grad():
            x = model.preprocessor.forward(v)
            return chunked(model.log_prob, x, size=4096).cpu().numpy() + shift

    plots.density_map(log_density, dataset.test, out)
    click.echo(f"density map in {out}", err=True)


option_metrics = click.option(
    "-m", "--metrics", default=None, help="Comma-separated metrics [default: all that apply]."
)
option_n = click.option(
    "-n",
    "--num",
    "n",
    type=int,
    default=None,
    help="Samples to draw [default: the held-out set's size].",
)
option_feature = click.option(
    "--feature",
    default=None,
    help="Image features: digits, mnist, pixels, inception:PATH, module:callable "
    "[default: the shipped classifier for 8x8 or 28x28 digits, else pixels].",
)


@click.command()
@click.argument("run", required=False)
@click.option("-d", "--data", default=None, help="Reference data [default: the run's].")
@option_metrics
@option_n
@click.option(
    "--samples",
    "samples_file",
    default=None,
    help="Score this .npy/.npz of samples instead of a run (needs -d).",
)
@click.option("--sampler", default=None, help="Sampler to draw with.")
@click.option("--steps", type=int, default=None, help="Sampler steps.")
@click.option(
    "--particles",
    type=int,
    default=1000,
    show_default=True,
    help="Importance samples for the NLL estimate of latent models.",
)
@option_feature
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@data_key_option
@labels_option
@seed_option
@device_option
@trust_option
def evaluate(
    run: str | None,
    data: str | None,
    metrics: str | None,
    n: int | None,
    samples_file: str | None,
    sampler: str | None,
    steps: int | None,
    particles: int,
    feature: str | None,
    as_json: bool,
    data_key: str | None,
    labels: str | None,
    seed: int,
    device: str,
    trust_code: bool,
) -> None:
    """Score the model in RUN (writes RUN/metrics.json), or a file of --samples against -d DATA."""
    from probgen.data import load_dataset
    from probgen.errors import ConfigError

    names = _metric_list(metrics)
    check_count("-n", n)
    check_count("--steps", steps)
    check_count("--particles", particles)
    if samples_file is not None:
        if data is None:
            raise ConfigError("--samples needs -d DATA to compare against")
        dataset = load_dataset(data, data_key=data_key, labels=labels)
        results = _score_file(samples_file, dataset, data, names, feature, seed)
    else:
        if run is None:
            raise ConfigError("give a RUN directory, or --samples FILE -d DATA")
        from probgen.evaluation import evaluate_model
        from probgen.runs import Run

        model = sample_in_chunks(load_run_model(run, device, trust_code))
        dataset = run_dataset(run, data, data_key, labels)
        if dataset.event_shape != tuple(model.data_info.event_shape):
            raise ConfigError(
                f"{data} has examples of shape {dataset.event_shape}; the model in {run} "
                f"expects {tuple(model.data_info.event_shape)}"
            )
        _check_sample_memory(n or len(dataset.test), dataset.event_shape)
        results, _ = evaluate_model(
            model, dataset, names, n, sampler, steps, feature, particles, seed
        )
        Run(run).write_metrics(results)
        if model.supports("log_prob") and tuple(model.data_info.event_shape) == (2,):
            _density_figure(model, dataset, Path(run) / "density.png")
    _note_pixel_fallback(feature, dataset)
    click.echo(json.dumps(results, indent=2) if as_json else _table(results))


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("-d", "--data", default=None, help="Reference data [default: each run's].")
@option_metrics
@option_n
@option_feature
@click.option(
    "-o", "--out", default="compare", show_default=True, help="Folder for one sample grid per run."
)
@seed_option
@device_option
@trust_option
def compare(
    runs: tuple[str, ...],
    data: str | None,
    metrics: str | None,
    n: int | None,
    feature: str | None,
    out: str,
    seed: int,
    device: str,
    trust_code: bool,
) -> None:
    """Evaluate several RUNS and print one markdown table; write a sample figure per run."""
    from probgen.errors import ConfigError
    from probgen.evaluation import evaluate_model

    names = _metric_list(metrics)
    check_count("-n", n)
    out_dir = Path(out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"-o {out_dir}: cannot create this folder ({exc.strerror})") from None
    rows = []
    for run in runs:
        model = sample_in_chunks(load_run_model(run, device, trust_code))
        dataset = run_dataset(run, data)
        results, samples = evaluate_model(model, dataset, names, n, feature=feature, seed=seed)
        figure = out_dir / f"{Path(run).name}.png"
        if samples.ndim == 4 or samples.shape[1] == 2:
            save_samples_png(
                figure,
                samples[:64] if samples.ndim == 4 else samples,
                model,
                dataset.test if samples.ndim == 2 else None,
            )
        rows.append((run, results))
    columns = []
    for _, results in rows:
        columns.extend(k for k in results if k not in columns)
    lines = ["| run | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for run, results in rows:
        lines.append(
            f"| {run} | " + " | ".join(_format(results.get(c, "")) for c in columns) + " |"
        )
    click.echo("\n".join(lines))
    click.echo(f"\nsample figures in {out_dir}/")
