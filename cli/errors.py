"""One clear line and a non-zero exit for every user error; never a traceback."""

from __future__ import annotations

import click

from probgen.errors import ProbgenError


class ProbgenGroup(click.Group):
    """A click group that turns :class:`ProbgenError` into ``error: ...`` on stderr, exit 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ProbgenError as exc:
            from probgen.train import TrainingInterrupted

            click.echo(f"error: {exc}", err=True)
            ctx.exit(130 if isinstance(exc, TrainingInterrupted) else 1)
