"""``probgen sample``: draw from a fitted model into .npy, .npz or .png."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .common import (
    ArrayWriter,
    check_count,
    check_disk_space,
    check_output,
    chunk_rows,
    device_option,
    load_run_model,
    run_dataset,
    save_samples_png,
    seed_option,
    trust_option,
)

if TYPE_CHECKING:
    from probgen.models.base import GenerativeModel

# a PNG is for looking at: beyond these counts it is unreadable (and slow to draw)
PNG_POINTS = 200_000
PNG_IMAGES = 4_096


def _check_request(
    model: GenerativeModel, run: str, sampler: str | None, label: int | None, site: str | None
) -> None:
    """One line for a sampler, class or site the model in ``run`` does not offer."""
    from probgen.errors import ConfigError

    if sampler is not None and sampler not in model.samplers:
        raise ConfigError(f"unknown sampler {sampler!r}; {run} offers {', '.join(model.samplers)}")
    if label is not None:
        classes = model.data_info.num_classes
        if not classes or not model.supports("labels"):
            raise ConfigError("--class needs a conditional model (fit with --set conditional=true)")
        if not 0 <= label < classes:
            raise ConfigError(f"--class must be in 0..{classes - 1}")
    if site is not None and not model.supports("sites"):
        raise ConfigError(f"--site applies to Pyro programs; {run} holds a built-in family")


def _check_room(
    out_path: Path, n: int, shape: tuple[int, ...], png: bool, site: str | None
) -> None:
    """Refuse, before drawing, a PNG of too many samples or a file the disk cannot hold."""
    import math

    from probgen.errors import ConfigError

    if png:
        most = PNG_POINTS if len(shape) == 1 else PNG_IMAGES
        if n > most:
            raise ConfigError(
                f"-n {n}: a PNG shows at most {most:,} samples; write .npy or .npz for more"
            )
    elif site is None:  # a program's site may differ from the data's shape: no estimate then
        check_disk_space(out_path, n * math.prod(shape) * 4)


@click.command()
@click.argument("run")
@click.option("-n", "--num", "n", type=int, default=64, show_default=True, help="How many.")
@click.option("-o", "--out", required=True, help="Output file: .npy, .npz or .png.")
@click.option("--sampler", default=None, help="Sampler name [default: the model's first].")
@click.option("--steps", type=int, default=None, help="Sampler steps (diffusion, Langevin...).")
@click.option("--class", "label", type=int, default=None, help="Class to draw (conditional).")
@click.option(
    "--site", default=None, help="A Pyro program's site to draw [default: the data site]."
)
@seed_option
@device_option
@trust_option
def sample(
    run: str,
    n: int,
    out: str,
    sampler: str | None,
    steps: int | None,
    label: int | None,
    site: str | None,
    seed: int,
    device: str,
    trust_code: bool,
) -> None:
    """Draw N samples from the model in RUN, in the data's own units and shape."""
    import numpy as np
    import torch

    out_path = check_output(out, (".npy", ".npz", ".png"))
    check_count("-n", n)
    check_count("--steps", steps)
    model = load_run_model(run, device, trust_code)
    _check_request(model, run, sampler, label, site)
    png = out_path.suffix.lower() == ".png"
    shape = tuple(model.data_info.event_shape)
    _check_room(out_path, n, shape, png, site)
    torch.manual_seed(seed)
    options = {} if steps is None else {"steps": steps}
    if site is not None:
        options["site"] = site

    def draw(count: int) -> np.ndarray:
        y = None if label is None else torch.full((count,), label, dtype=torch.long)
        with torch.no_grad():
            return model.sample(count, y=y, sampler=sampler, **options).cpu().numpy()

    # in chunks, so memory does not grow with -n (one chunk when n is small: the same draws)
    size = chunk_rows(shape)
    if png:
        samples = np.concatenate([draw(min(size, n - i)) for i in range(0, n, size)])
        reference = None
        if samples.ndim == 2 and samples.shape[1] == 2:
            reference = run_dataset(run, None).test
        save_samples_png(out_path, samples, model, reference)
        drawn = samples.shape[1:]
    else:
        first = draw(min(size, n))
        drawn = first.shape[1:]
        with ArrayWriter(out_path, n, drawn, first.dtype) as writer:
            writer.write(first)
            for i in range(len(first), n, size):
                writer.write(draw(min(size, n - i)))
    click.echo(f"wrote {n} samples {tuple(drawn)} to {out_path}")
