"""Errors that reach the user as one clear line.

Every failure caused by the user's input (a missing file, a wrong shape, an unknown option, a
damaged run directory) raises a subclass of :class:`ProbgenError`. The command line prints its
message on one line and exits non-zero; library users catch it like any exception.
"""

from __future__ import annotations


class ProbgenError(Exception):
    """Base class of every error caused by the user's input or environment."""


class DataError(ProbgenError):
    """The data cannot be read or is not usable (missing, ragged, NaN, wrong key...)."""


class ConfigError(ProbgenError):
    """A hyperparameter or option is unknown or has the wrong type or value."""


class RunError(ProbgenError):
    """A run directory is missing, corrupt, or from an incompatible version."""


class TrainingDiverged(ProbgenError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (or just the type), for one-line error texts."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
