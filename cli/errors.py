"""One clear line and a non-zero exit for every user error; never a traceback."""

from __future__ import annotations

import warnings
from typing import Any

import click

from probgen.errors import ProbgenError


class ProbgenGroup(click.Group):
    """A click group that turns :class:`ProbgenError` into ``error: ...`` on stderr, exit 1.

    Warnings raised while a command runs (a dependency's deprecation notice, say) are held back:
    shown once the command succeeds, dropped when it fails, so an error is one line alone.
    """

    def invoke(self, ctx: click.Context) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            try:
                result = super().invoke(ctx)
            except ProbgenError as exc:
                from probgen.train import TrainingInterrupted

                click.echo(f"error: {exc}", err=True)
                ctx.exit(130 if isinstance(exc, TrainingInterrupted) else 1)
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        return result
