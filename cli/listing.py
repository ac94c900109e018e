"""``probgen list``: models, datasets, samplers and metrics."""

from __future__ import annotations

import click

from .common import trust_option


@click.command(name="list")
def list_all() -> None:
    """List the models (with their samplers), datasets and metrics."""
    from probgen.data import DATASETS
    from probgen.evaluation import METRICS
    from probgen.models.registry import MODELS, resolve_model

    click.echo("models:")
    for name in MODELS:
        cls = resolve_model(name)
        summary = (cls.__doc__ or "").strip().splitlines()[0]
        click.echo(f"  {name:<10} {summary}")
        click.echo(f"  {'':<10} samplers: {', '.join(cls.samplers)}")
    click.echo("datasets:")
    click.echo("  " + ", ".join(DATASETS))
    click.echo("  or a path: .npy, .npz, .csv, MNIST IDX (.gz), a folder of PNG/JPEG images")
    click.echo("your own Pyro program:")
    click.echo("  FILE.py:MODEL[,GUIDE] or package.module:MODEL[,GUIDE] (see `probgen info RUN`)")
    click.echo("metrics:")
    click.echo("  " + ", ".join(METRICS))


COMMANDS = {
    "sample": "sample",
    "log_prob": "evaluate: exact nll",
    "elbo": "evaluate: elbo",
    "log_marginal": "evaluate: nll_is (importance sampling)",
    "encode": "encode / interpolate",
    "decode": "decode",
    "chains": "inspect: MCMC chains (r-hat, ESS)",
    "guide": "inspect: guide posterior",
    "infer_discrete": "inspect: infer_discrete assignments",
    "sites": "sample --site NAME",
    "labels": "sample --class K",
}


@click.command()
@click.argument("run")
@trust_option
def info(run: str, trust_code: bool) -> None:
    """Say what the model in RUN is, how it was fitted and what it supports."""
    from probgen.runs import Run, load_model

    stored = Run(run).read_config()
    model = load_model(run, trust_code=trust_code)
    history = Run(run).read_history()
    click.echo(f"model: {stored['model']}")
    click.echo(
        f"data: {stored['data'].get('source')}, examples of shape {model.data_info.event_shape}"
    )
    if model.fits_by_mcmc():
        click.echo(f"fitted by MCMC ({model.config.mcmc}, {model.config.chains} chains)")
    elif history:
        click.echo(
            f"fitted by {int(history[-1]['step'])} steps, final loss {history[-1]['loss']:.4g}"
        )
    if model.supports("sites"):
        s = model.structure
        click.echo(
            f"program: data site {s.observed!r} in plate {s.data_plate!r}; "
            f"global latents {list(s.global_latents)}, local latents {list(s.local_latents)}, "
            f"enumerated {list(s.enumerated)}"
        )
    caps = model.capabilities()
    click.echo("supports: " + "; ".join(text for cap, text in COMMANDS.items() if cap in caps))
