"""Drawing from a fitted program: new data points, codes, reconstructions, predictive density.

New points come from the model run forward (Pyro's ``uncondition`` turns the observed data site
into a sampled one, as ``Predictive`` does for a model called without data) with its global
latents fixed to posterior draws, one draw per chunk of points, so each point's law is the
posterior predictive

    p(x* | data) = E_{theta ~ posterior} p(x* | theta),      x* | theta drawn ancestrally,

where the posterior is the guide q(theta) (SVI runs) or the MCMC draws, resampled as needed.
Local latents are drawn from the model (they belong to the new points). The model is called on
rows of the stored setup batch, repeated to the chunk's size, so any likelihood's support and
shapes hold; only the number of rows matters to the draws.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from pyro import poutine

from probgen.errors import ConfigError

if TYPE_CHECKING:
    from probgen.programs.derived import ProgramModel

CHUNK = 1024


def _rows(site: dict[str, Any], data_dim: int | None, n: int) -> torch.Tensor:
    """A site's value with the data plate's dimension first, ``(n, ...)``."""
    value = site["value"]
    if data_dim is None:
        return value.reshape(n, *value.shape[1:]) if value.shape[:1] == (n,) else value
    event_dim = getattr(site["fn"], "event_dim", 0)
    position = value.dim() - event_dim + data_dim
    if position < 0:
        return value.expand(n, *value.shape)
    value = value.movedim(position, 0)
    return value.expand(n, *value.shape[1:]) if value.shape[0] == 1 else value


def placeholder(program: ProgramModel, n: int) -> torch.Tensor:
    """``n`` rows cycled from the setup batch (real values in the likelihood's support), or
    zeros before the program has seen data."""
    setup = program.setup_x
    if not len(setup):
        return setup.new_zeros(n, *setup.shape[1:])
    return setup[torch.arange(n, device=setup.device) % len(setup)]


def _labels(program: ProgramModel, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
    if y is None:
        if not len(program.setup_y):
            return None
        classes = program.data_info.num_classes or int(program.setup_y.max()) + 1
        return torch.arange(n, device=program.setup_y.device) % classes
    y = torch.as_tensor(y, device=program.setup_x.device).long().reshape(-1)
    return y.expand(n) if y.numel() == 1 else y


def global_draws(program: ProgramModel, count: int) -> dict[str, torch.Tensor]:
    """``count`` posterior draws of the global latents, ``{site: (count, ...)}``."""
    s = program.structure
    if not s.global_latents:
        return {}
    chains = program.chains()
    if chains:
        flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in chains.items() if k in s.global_latents}
        total = len(next(iter(flat.values())))
        pick = torch.randint(total, (count,))
        return {k: v[pick] for k, v in flat.items()}
    x, y = program.setup_x, (program.setup_y if len(program.setup_y) else None)
    index = program.setup_index if len(program.setup_index) else None
    out: dict[str, list] = {k: [] for k in s.global_latents}
    with program.pyro_context():
        for _ in range(count):
            trace = poutine.trace(program.guide).get_trace(x, y, index)
            for name in s.global_latents:
                out[name].append(trace.nodes[name]["value"])
    return {k: torch.stack(v) for k, v in out.items()}


def draw(
    program: ProgramModel, n: int, y: torch.Tensor | None = None, site: str | None = None
) -> torch.Tensor:
    """``n`` values of ``site`` (default: the data site) for new data points."""
    s = program.structure
    site = site or s.observed
    if site in s.global_latents:
        return global_draws(program, n)[site]
    draws = max(1, min(program.posterior_draws(), n))
    pool = global_draws(program, draws)
    labels = _labels(program, y, n)
    size = min(CHUNK, max(1, math.ceil(n / draws))) if pool else min(CHUNK, n)
    model = poutine.uncondition(program.model)
    out, done, chunk = [], 0, 0
    with program.pyro_context():
        while done < n:
            rows = min(size, n - done)
            fixed = {k: v[chunk % draws] for k, v in pool.items()}
            yc = labels[done : done + rows] if labels is not None else None
            trace = poutine.trace(poutine.condition(model, fixed)).get_trace(
                placeholder(program, rows), yc, None
            )
            if site not in trace.nodes:
                sites = ", ".join(n for n, v in trace.nodes.items() if v["type"] == "sample")
                raise ConfigError(f"the program has no site {site!r}; its sites: {sites}")
            out.append(_rows(trace.nodes[site], s.data_dim, rows))
            done, chunk = done + rows, chunk + 1
    values = torch.cat(out)
    shape = tuple(program.data_info.event_shape)
    if site == s.observed and tuple(values.shape[1:]) != shape:
        # a model may observe a view of the batch (``obs=x[:, 0]``): back to the data's shape
        if values[0].numel() == math.prod(shape):
            values = values.reshape(n, *shape)
    return values


def _local_latent(program: ProgramModel) -> str:
    s = program.structure
    return next(n for n in s.local_latents if n in s.guide_latents)


def encode(program: ProgramModel, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """The guide's mean of the first local latent (a 16-draw average where it has no mean)."""
    name = _local_latent(program)
    with program.pyro_context():
        trace = poutine.trace(program.guide).get_trace(x, y, None)
        site = trace.nodes[name]
        try:
            mean = site["fn"].mean
        except NotImplementedError:
            mean = torch.stack([site["fn"].sample() for _ in range(16)]).mean(0)
    return _rows({"value": mean, "fn": site["fn"]}, program.structure.data_dim, len(x))


def decode(program: ProgramModel, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """The mean of the data site given local latent codes ``z`` (a draw where it has none)."""
    s = program.structure
    name = _local_latent(program)
    model = poutine.condition(poutine.uncondition(program.model), {name: z})
    with program.pyro_context():
        trace = poutine.trace(model).get_trace(placeholder(program, len(z)), y, None)
    site = trace.nodes[s.observed]
    try:
        value = site["fn"].mean
    except NotImplementedError:
        value = site["value"]
    return _rows({"value": value, "fn": site["fn"]}, s.data_dim, len(z))


def posterior_predictive_log_density(
    program: ProgramModel, x: torch.Tensor, y: torch.Tensor | None = None, max_draws: int = 500
) -> torch.Tensor:
    """``log (1/S) sum_s p(x_i | theta_s)`` per point over (at most ``max_draws``) MCMC draws."""
    from probgen.programs.scoring import importance_bound, log_weights

    s = program.structure
    chains = program.chains()
    flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in chains.items()}
    total = len(next(iter(flat.values())))
    pick = torch.linspace(0, total - 1, min(total, max_draws)).long()
    rows = []
    with program.pyro_context():
        for i in pick.tolist():
            model = poutine.condition(program.model, {k: v[i] for k, v in flat.items()})
            rows.append(log_weights(model, None, s, (x, y, None), 1)[0])
    return importance_bound(torch.stack(rows))
