"""probgen: deep generative models as Pyro programs.

The families (VAEs, normalizing flows, diffusion, score models, GANs and energy-based models)
share one model contract (:mod:`probgen.models.base`), one data layer (:mod:`probgen.data`), one
fit loop (:mod:`probgen.train`) and one run directory format (:mod:`probgen.runs`).
"""

__version__ = "0.1.0"
