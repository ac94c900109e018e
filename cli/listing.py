"""``probgen list``: models, datasets, samplers and metrics."""

from __future__ import annotations

import click


@click.command(name="list")
def list_all():
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
    click.echo("metrics:")
    click.echo("  " + ", ".join(METRICS))
