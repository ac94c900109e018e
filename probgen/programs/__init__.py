"""A user's Pyro program as a probgen model: parameters, objective, guide, sampling, scores and
MCMC, all derived from the program (see :mod:`probgen.programs.model`)."""

from probgen.programs.model import ProgramOptions, PyroProgram, program_class

__all__ = ["ProgramOptions", "PyroProgram", "program_class"]
