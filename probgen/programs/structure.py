"""What a Pyro program is made of, read from one trace of it on a batch of data.

Everything probgen derives for a user's program starts here: which site observes the data, the
plate over data points (the *data plate*), which latent sites are local to a data point (inside
that plate) or global (outside it), which discrete sites are enumerated, and how deep plates
nest. The rules follow Pyro's own conventions:

- the data site is the observed ``pyro.sample`` whose ``obs`` is the batch (else the observed
  site of the batch's shape, else the only observed site);
- the data plate is the vectorised ``pyro.plate`` around the data site whose size is the number
  of rows in the batch (a subsampled ``plate(size=N, subsample=idx)`` included);
- enumerated sites carry ``infer={"enumerate": ...}`` (``config_enumerate``) and are summed out
  by ``TraceEnum_ELBO``; the guide must not sample them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from pyro.poutine.util import site_is_subsample

from probgen.errors import ConfigError

if TYPE_CHECKING:
    from pyro.poutine import Trace
    from pyro.poutine.indep_messenger import CondIndepStackFrame


@dataclass(frozen=True)
class ProgramStructure:
    """The sites and plates of a model (and guide) that probgen's derivations need.

    Attributes:
        observed: the data site's name.
        data_plate: the plate over data points, or ``None`` when the data site has none.
        data_dim: that plate's (negative) batch dimension.
        local_latents: model latent sites inside the data plate (not enumerated).
        global_latents: model latent sites outside it (not enumerated).
        enumerated: model sites summed out by enumeration.
        guide_latents: sites the guide samples.
        deterministic: ``pyro.deterministic`` sites of the model.
        max_plate_nesting: how many batch dimensions plates use, in model and guide.
        subsampled: whether the data plate is ``plate(size=N, subsample=...)``, which scales by
            N/B itself.
    """

    observed: str
    data_plate: str | None
    data_dim: int | None
    local_latents: tuple[str, ...]
    global_latents: tuple[str, ...]
    enumerated: tuple[str, ...]
    guide_latents: tuple[str, ...]
    deterministic: tuple[str, ...]
    max_plate_nesting: int
    subsampled: bool

    @property
    def latents(self) -> tuple[str, ...]:
        """Every latent site of the model that a guide or MCMC must handle."""
        return self.global_latents + self.local_latents


def sample_sites(trace: Trace) -> dict:
    """The ``pyro.sample`` sites of a trace, without plates' subsample sites."""
    return {
        name: site
        for name, site in trace.nodes.items()
        if site["type"] == "sample" and not site_is_subsample(site)
    }


def is_deterministic(site: dict[str, Any]) -> bool:
    return bool(site["infer"].get("_deterministic"))


def is_enumerated(site: dict[str, Any]) -> bool:
    return not site["is_observed"] and site["infer"].get("enumerate") in ("parallel", "sequential")


def plate_nesting(*traces: Trace) -> int:
    """The deepest vectorised plate dimension used by any sample site of ``traces``."""
    depth = 0
    for trace in traces:
        if trace is None:
            continue
        for site in sample_sites(trace).values():
            for frame in site["cond_indep_stack"]:
                if frame.vectorized:
                    depth = max(depth, -frame.dim)
    return depth


def _data_site(observed: dict, x: torch.Tensor) -> str:
    for name, site in observed.items():
        if site["value"] is x:
            return name
    same_shape = [n for n, s in observed.items() if tuple(s["value"].shape) == tuple(x.shape)]
    if len(same_shape) == 1:
        return same_shape[0]
    if len(observed) == 1:
        return next(iter(observed))
    raise ConfigError(
        f"the model observes {', '.join(observed)}, and none of them is the data batch: "
        "observe the data with pyro.sample(name, distribution, obs=x)"
    )


def _data_frame(site: dict[str, Any], rows: int) -> CondIndepStackFrame | None:
    for frame in site["cond_indep_stack"]:
        if frame.vectorized and frame.size == rows:
            return frame
    return None


def analyse(model_trace: Trace, guide_trace: Trace, x: torch.Tensor) -> ProgramStructure:
    """The :class:`ProgramStructure` of a model traced on the batch ``x`` (and its guide's).

    Raises :class:`~probgen.errors.ConfigError` when the model observes nothing, when no
    observed site is the data, or when the guide samples a site the model lacks or enumerates.
    """
    sites = sample_sites(model_trace)
    observed = {n: s for n, s in sites.items() if s["is_observed"] and not is_deterministic(s)}
    if not observed:
        raise ConfigError(
            "the model has no observed site: observe the data with "
            "pyro.sample(name, distribution, obs=x)"
        )
    data_site = _data_site(observed, x)
    frame = _data_frame(sites[data_site], x.shape[0])
    plate = frame.name if frame is not None else None
    enumerated = tuple(n for n, s in sites.items() if is_enumerated(s))
    latent = [n for n, s in sites.items() if not s["is_observed"] and n not in enumerated]
    local = tuple(n for n in latent if any(f.name == plate for f in sites[n]["cond_indep_stack"]))
    guide_latents: tuple[str, ...] = ()
    if guide_trace is not None:
        guide_sites = sample_sites(guide_trace)
        # AutoGuides sample auxiliary sites (``z_unconstrained``) the model never sees
        guide_latents = tuple(
            n
            for n, s in guide_sites.items()
            if not s["is_observed"] and not s["infer"].get("is_auxiliary")
        )
        unknown = [n for n in guide_latents if n not in sites]
        if unknown:
            raise ConfigError(f"the guide samples {', '.join(unknown)}, which the model lacks")
        both = [n for n in guide_latents if n in enumerated]
        if both:
            raise ConfigError(
                f"{', '.join(both)} is enumerated in the model and sampled by the guide: "
                "do one or the other"
            )
    deterministic = tuple(n for n, s in sites.items() if is_deterministic(s))
    return ProgramStructure(
        observed=data_site,
        data_plate=plate,
        data_dim=frame.dim if frame is not None else None,
        local_latents=local,
        global_latents=tuple(n for n in latent if n not in local),
        enumerated=enumerated,
        guide_latents=guide_latents,
        deterministic=deterministic,
        max_plate_nesting=plate_nesting(model_trace, guide_trace),
        subsampled=bool(frame is not None and frame.full_size not in (None, frame.size)),
    )


def trace_structure(model: Callable, guide: Callable | None, args: tuple) -> ProgramStructure:
    """:func:`analyse` of ``model`` and ``guide`` traced on ``args`` (the batch first)."""
    from pyro import poutine

    guide_trace = poutine.trace(guide).get_trace(*args) if guide is not None else None
    return analyse(poutine.trace(model).get_trace(*args), guide_trace, args[0])
