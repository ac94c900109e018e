"""``probgen sample``: draw from a fitted model into .npy, .npz or .png."""

from __future__ import annotations

import click

from .common import (
    check_output,
    device_option,
    load_run_model,
    run_dataset,
    save_array,
    save_samples_png,
    seed_option,
    trust_option,
)


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
def sample(run, n, out, sampler, steps, label, site, seed, device, trust_code):
    """Draw N samples from the model in RUN, in the data's own units and shape."""
    import torch

    from probgen.errors import ConfigError

    out_path = check_output(out, (".npy", ".npz", ".png"))
    if n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}")
    model = load_run_model(run, device, trust_code)
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
    torch.manual_seed(seed)
    options = {} if steps is None else {"steps": steps}
    if site is not None:
        options["site"] = site
    y = None if label is None else torch.full((n,), label, dtype=torch.long)
    samples = model.sample(n, y=y, sampler=sampler, **options).cpu().numpy()
    if out_path.suffix.lower() == ".png":
        reference = None
        if samples.ndim == 2 and samples.shape[1] == 2:
            reference = run_dataset(run, None).test
        save_samples_png(out_path, samples, model, reference)
    else:
        save_array(out_path, samples)
    click.echo(f"wrote {n} samples {tuple(samples.shape[1:])} to {out_path}")
