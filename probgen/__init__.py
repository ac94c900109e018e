"""probgen: deep generative models as Pyro programs.

The families (VAEs, normalizing flows, diffusion, score models, GANs and energy-based models)
are Pyro programs, as is any model a user writes (``probgen.fit(model, guide, data=...)``); all
share one model contract (:mod:`probgen.models.base`), one data layer (:mod:`probgen.data`), one
fit loop (:mod:`probgen.train`) and one run directory format (:mod:`probgen.runs`).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["fit", "load", "FittedModel"]


def __getattr__(name: str) -> Any:
    # the Python API loads torch and Pyro on first use, so `probgen --version` stays instant
    if name in __all__:
        from probgen import api

        return getattr(api, name)
    raise AttributeError(f"module 'probgen' has no attribute {name!r}")
