"""The variational objective of a program, and mini-batches that count as the whole data set.

Pyro's ELBO estimators are used as they are (``--set elbo=NAME``):

==============  =====================================================================
``trace``       ``Trace_ELBO``: the reparameterised (score-function where needed) ELBO
``tracegraph``  ``TraceGraph_ELBO``: variance-reduced score-function gradients
``meanfield``   ``TraceMeanField_ELBO``: KL terms in closed form where they exist
``renyi``       ``RenyiELBO(alpha)``: the Renyi alpha bound (Li & Turner 2016)
``iwae``        ``RenyiELBO(alpha=0)``: the importance-weighted bound (Burda et al. 2016)
``auto``        ``TraceEnum_ELBO`` when the model enumerates, ``Trace_ELBO`` otherwise
==============  =====================================================================

Mini-batches: ``model(x)`` receives a batch of B of the N training rows, as in Pyro's VAE
tutorial. :class:`ScaleDataPlate` multiplies the log-density of every site inside the data
plate by N/B, which is what Pyro's subsampled ``plate(size=N, subsample_size=B)`` does, so

    ELBO ~= E_q[log p(theta) - log q(theta)]
            + (N/B) sum_{i in batch} E_q[log p(x_i, z_i | theta) - log q(z_i)]

is an unbiased estimate of the full-data ELBO and models with global latents get the right
balance of prior and likelihood.
"""

from __future__ import annotations

from typing import Any

from pyro.infer import (
    ELBO,
    RenyiELBO,
    Trace_ELBO,
    TraceEnum_ELBO,
    TraceGraph_ELBO,
    TraceMeanField_ELBO,
)
from pyro.poutine.messenger import Messenger

ELBOS = ("auto", "trace", "tracegraph", "meanfield", "renyi", "iwae")


def make_elbo(
    name: str,
    enumerated: bool,
    particles: int,
    max_plate_nesting: int,
    renyi_alpha: float = 0.5,
) -> ELBO:
    """The Pyro ELBO called ``name`` (see the module docstring), particles vectorised."""
    options = {
        "num_particles": particles,
        "vectorize_particles": particles > 1,
        "max_plate_nesting": max_plate_nesting,
    }
    if name == "auto":
        name = "enum" if enumerated else "trace"
    if enumerated and name != "enum":
        raise ValueError(
            f"elbo={name} cannot sum out the enumerated sites; use elbo=auto (TraceEnum_ELBO)"
        )
    if name == "enum":
        return TraceEnum_ELBO(**options)
    if name == "renyi":
        return RenyiELBO(alpha=renyi_alpha, **options)
    if name == "iwae":
        return RenyiELBO(alpha=0.0, **options)
    return {"trace": Trace_ELBO, "tracegraph": TraceGraph_ELBO, "meanfield": TraceMeanField_ELBO}[
        name
    ](**options)


def has_differentiable_loss(elbo: ELBO) -> bool:
    """Whether ``elbo`` gives a loss tensor to back-propagate (and so to wrap in DDP)."""
    return hasattr(elbo, "differentiable_loss")


class ScaleDataPlate(Messenger):
    """Multiply the log-density of sites inside plate ``name`` by ``factor`` (N/B)."""

    def __init__(self, name: str, factor: float) -> None:
        super().__init__()
        self.name = name
        self.factor = factor

    def _pyro_sample(self, msg: dict[str, Any]) -> None:
        if any(frame.name == self.name for frame in msg["cond_indep_stack"]):
            msg["scale"] = self.factor * msg["scale"]
