"""``probgen fit``: train a model on a dataset into a run directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import click

from .common import data_key_option, device_option, labels_option, seed_option


def _default_out(model: str, data: str) -> str:
    from pathlib import Path

    name = lambda s: re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(s.split(":")[-1]).stem)  # noqa: E731
    return f"runs/{name(model)}-{name(data)}"


def _launch(nproc: int) -> int:
    """Re-run this command under torchrun with ``nproc`` processes; returns its exit status."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "probgen",
        *args,
    ]
    return subprocess.call(command)


@click.command()
@click.argument("model")
@click.option("-d", "--data", required=True, help="Dataset name or path (see `probgen list`).")
@click.option("-o", "--out", default=None, help="Run directory [default: runs/MODEL-DATA].")
@click.option("--steps", type=int, default=None, help="Training steps [default: the model's].")
@click.option("--epochs", type=int, default=None, help="Training epochs (instead of --steps).")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Learning rate.")
@device_option
@seed_option
@click.option("-c", "--config", "config_file", default=None, help="JSON file of options.")
@click.option("--set", "options", multiple=True, metavar="KEY=VALUE", help="Set one option.")
@click.option("--resume", is_flag=True, help="Continue the run in -o from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run in -o.")
@click.option(
    "--checkpoint-every",
    type=int,
    default=1000,
    show_default=True,
    help="Steps between checkpoints.",
)
@data_key_option
@labels_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16"]),
    default="fp32",
    show_default=True,
    help="bf16: bfloat16 autocast of the training step.",
)
@click.option(
    "--nproc",
    type=int,
    default=1,
    show_default=True,
    help="Train with N processes (torchrun and DDP; gloo on CPUs, NCCL on GPUs).",
)
def fit(
    model,
    data,
    out,
    steps,
    epochs,
    batch_size,
    lr,
    device,
    seed,
    config_file,
    options,
    resume,
    overwrite,
    checkpoint_every,
    data_key,
    labels,
    quiet,
    precision,
    nproc,
):
    """Fit MODEL (a name from `probgen list`, file.py:Class or module:Class) to DATA."""
    from probgen.distributed import launched_by_torchrun
    from probgen.train import fit as fit_model

    out = out or _default_out(model, data)
    if nproc > 1 and not launched_by_torchrun():
        sys.exit(_launch(nproc))
    fit_model(
        model,
        data,
        out,
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        quiet=quiet,
        options=list(options),
        config_file=config_file,
        data_key=data_key,
        labels=labels,
        resume=resume,
        overwrite=overwrite,
        checkpoint_every=checkpoint_every,
        precision=precision,
    )
    from probgen.runs import Run

    if int(os.environ.get("RANK", "0")) != 0:
        return
    history = Run(out).read_history()
    last = history[-1] if history else {}
    click.echo(
        f"fitted {model} on {data}: {int(last.get('step', 0))} steps, "
        f"loss {last.get('loss', float('nan')):.4g}, {last.get('wall_time', 0):.1f} s; "
        f"run saved in {out}"
    )
