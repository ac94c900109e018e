"""The ``probgen`` command: fit, sample, evaluate, compare, inspect and walk latent spaces."""

from __future__ import annotations

import click

from .errors import ProbgenGroup
from .evaluate import compare, evaluate
from .fit import fit
from .inspect import inspect_run
from .latent import decode, encode, interpolate
from .listing import info, list_all
from .sample import sample


@click.group(cls=ProbgenGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="probgen")
def main() -> None:
    """probgen: deep generative models as Pyro programs."""


for command in (
    list_all,
    info,
    fit,
    sample,
    evaluate,
    compare,
    encode,
    decode,
    interpolate,
    inspect_run,
):
    main.add_command(command)
