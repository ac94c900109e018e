"""``probgen fit``: train a model on a dataset into a run directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import click

from .common import check_count, data_key_option, device_option, labels_option, seed_option


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
    type=click.Choice(["auto", "fp32", "bf16"]),
    default="auto",
    show_default=True,
    help="bf16: bfloat16 autocast of the training step; auto: bf16 for image models on CPUs "
    "with bfloat16 matrix units (AMX), else fp32.",
)
@click.option(
    "--guide",
    type=click.Choice(["auto_normal", "auto_mvn", "auto_lowrank", "auto_iaf", "auto_delta"]),
    default=None,
    help="AutoGuide for a Pyro program without a guide [default: auto_normal].",
)
@click.option(
    "--mcmc",
    type=click.Choice(["nuts", "hmc", "mala", "ula"]),
    default=None,
    help="Fit a Pyro program's latents by MCMC instead of SVI.",
)
@click.option("--chains", type=int, default=None, help="MCMC chains [default: 2].")
@click.option("--num-samples", type=int, default=None, help="MCMC draws per chain [default: 500].")
@click.option("--warmup", type=int, default=None, help="MCMC warm-up steps [default: 500].")
@click.option(
    "--nproc",
    type=int,
    default=1,
    show_default=True,
    help="Train with N processes (torchrun and DDP; gloo on CPUs, NCCL on GPUs).",
)
def fit(
    model: str,
    data: str,
    out: str | None,
    steps: int | None,
    epochs: int | None,
    batch_size: int,
    lr: float,
    device: str,
    seed: int,
    config_file: str | None,
    options: tuple[str, ...],
    resume: bool,
    overwrite: bool,
    checkpoint_every: int,
    data_key: str | None,
    labels: str | None,
    quiet: bool,
    precision: str,
    guide: str | None,
    mcmc: str | None,
    chains: int | None,
    num_samples: int | None,
    warmup: int | None,
    nproc: int,
) -> None:
    """Fit MODEL to DATA: a name from `probgen list`, or a Pyro program FILE.py:MODEL[,GUIDE]
    or package.module:MODEL[,GUIDE] (plain functions, or a class with model/guide methods)."""
    from probgen.distributed import launched_by_torchrun
    from probgen.train import fit as fit_model

    options = [*options, *_program_options(model, guide, mcmc, chains, num_samples, warmup)]
    check_count("--nproc", nproc)
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
        options=options,
        config_file=config_file,
        data_key=data_key,
        labels=labels,
        resume=resume,
        overwrite=overwrite,
        checkpoint_every=checkpoint_every,
        precision=precision,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(_mcmc_summary(model, data, out) if mcmc else _fit_summary(model, data, out))


def _program_options(
    model: str,
    guide: str | None,
    mcmc: str | None,
    chains: int | None,
    num_samples: int | None,
    warmup: int | None,
) -> list[str]:
    """The Pyro-program flags (--guide, --mcmc, ...) as ``KEY=VALUE`` options, refused for a
    built-in family."""
    from probgen.errors import ConfigError
    from probgen.models.registry import is_builtin

    check_count("--chains", chains)
    check_count("--num-samples", num_samples)
    check_count("--warmup", warmup, low=0)
    flags = {
        "guide": guide,
        "mcmc": mcmc,
        "chains": chains,
        "num_samples": num_samples,
        "warmup": warmup,
    }
    given = {k: v for k, v in flags.items() if v is not None}
    if given and is_builtin(model):
        flag = "--" + next(iter(given)).replace("_", "-")
        raise ConfigError(f"{flag} applies to Pyro programs (FILE.py:MODEL), not to {model!r}")
    return [f"{k}={v}" for k, v in given.items()]


def _fit_summary(model: str, data: str, out: str) -> str:
    from probgen.runs import Run

    history = Run(out).read_history()
    last = history[-1] if history else {}
    return (
        f"fitted {model} on {data}: {int(last.get('step', 0))} steps, "
        f"loss {last.get('loss', float('nan')):.4g}, {last.get('wall_time', 0):.1f} s; "
        f"run saved in {out}"
    )


def _mcmc_summary(model: str, data: str, out: str) -> str:
    from probgen.atomic_files import read_json
    from probgen.runs import Run

    run = Run(out)
    diag = read_json(run.path / "diagnostics.json")
    chains = diag["chains"]
    rhat, ess = diag.get("max_r_hat"), diag.get("min_ess")
    return (
        f"fitted {model} on {data} by MCMC: {len(chains)} chains x {diag['num_samples']} draws, "
        f"{sum(int(c.get('divergences', 0)) for c in chains)} divergences, "
        f"max r-hat {'n/a' if rhat is None else f'{rhat:.3f}'}, "
        f"min ESS {'n/a' if ess is None else f'{ess:.0f}'}; run saved in {run.path}"
    )
