"""``probgen inspect``: ArviZ InferenceData, a summary table and diagnostic plots for a run."""

from __future__ import annotations

from pathlib import Path

import click

from .common import device_option, load_run_model, run_dataset, seed_option, trust_option


@click.command(name="inspect")
@click.argument("run")
@click.option(
    "-d", "--data", default=None, help="Data for the guide's posterior [default: the run's]."
)
@click.option("-o", "--out", default=None, help="Output folder [default: RUN/inspect].")
@click.option(
    "--points",
    type=int,
    default=8,
    show_default=True,
    help="Held-out points whose posterior is drawn (latent models).",
)
@click.option("--draws", type=int, default=500, show_default=True, help="Draws per chain/point.")
@click.option("--chains", type=int, default=4, show_default=True, help="MCMC chains.")
@click.option("--warmup", type=int, default=200, show_default=True, help="MCMC warm-up steps.")
@click.option("--kernel", default=None, help="MCMC kernel for chain-based models.")
@seed_option
@device_option
@trust_option
def inspect_run(
    run: str,
    data: str | None,
    out: str | None,
    points: int,
    draws: int,
    chains: int,
    warmup: int,
    kernel: str | None,
    seed: int,
    device: str,
    trust_code: bool,
) -> None:
    """Build ArviZ InferenceData for RUN, save it as netCDF, print a summary, plot diagnostics."""
    import torch

    from probgen import inspect as pg_inspect
    from probgen.errors import ConfigError
    from probgen.runs import Run

    for name, value in (("--points", points), ("--draws", draws), ("--chains", chains)):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1")
    model = load_run_model(run, device, trust_code)
    out_dir = Path(out) if out else Path(run) / "inspect"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    dataset = run_dataset(run, data) if model.supports("sites") or model.supports("guide") else None
    idata = pg_inspect.inference_data(
        model, dataset, points=points, draws=draws, kernel=kernel, chains=chains, warmup=warmup
    )
    trace = pg_inspect.loss_trace(Run(run).read_history())
    if trace.data_vars:
        idata.add_groups(loss_trace=trace)
    path = out_dir / "inference_data.nc"
    tmp = out_dir / ".inference_data.nc.tmp"
    idata.to_netcdf(str(tmp))
    tmp.replace(path)
    click.echo(f"groups: {', '.join(idata.groups())}")
    if "posterior" in idata.groups():
        table = pg_inspect.summary(idata)
        click.echo(table.to_string())
        table.to_csv(out_dir / "summary.csv")
        for name in pg_inspect.write_plots(idata, out_dir):
            click.echo(f"wrote {out_dir / name}")
    if "guide_diagnostics" in idata.groups():
        khat = idata.guide_diagnostics["pareto_k"].values
        click.echo(
            f"Pareto k-hat per point: {', '.join(f'{v:.2f}' for v in khat)} "
            "(< 0.7: the guide is a good importance proposal)"
        )
    click.echo(f"wrote {path}")
