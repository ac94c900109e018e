"""A fitted program as ArviZ ``InferenceData``: posterior, prior, predictive, likelihood.

Groups (dims ``chain, draw`` first):

- ``posterior``: for MCMC runs exactly the chains that ``fit`` saved; for SVI runs draws of the
  guide (one chain) of the global latents, and of the local latents of the observed points;
  for enumerated models, draws of the discrete sites from their exact conditional posterior by
  ``pyro.infer.infer_discrete`` (Obermeyer et al. 2019) at temperature 1;
- ``prior``: the latents drawn from the model without data, ``prior_predictive`` its data site;
- ``posterior_predictive``: replicates of the observed points given each posterior draw;
- ``observed_data``; ``log_likelihood``: log p(x_i | draw) of each observed point (for
  ``arviz.loo`` / ``arviz.waic``); ``sample_stats``: MCMC divergences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import arviz as az
import numpy as np
import torch
import xarray as xr
from pyro import poutine
from pyro.infer import infer_discrete

from probgen.programs.predictive import _labels, _rows, placeholder
from probgen.programs.scoring import _plate_sum

if TYPE_CHECKING:
    from probgen.programs.derived import ProgramModel


def _posterior_draws(
    program: ProgramModel, x: torch.Tensor, y: torch.Tensor | None, draws: int
) -> dict[str, torch.Tensor]:
    """Draws ``{site: (chains, draws, ...)}`` of every latent (and enumerated) site."""
    s = program.structure
    chains = program.chains()
    if chains:
        return chains
    out: dict[str, list] = {n: [] for n in s.guide_latents}
    if s.guide_latents:
        with program.pyro_context():
            for _ in range(draws):
                trace = poutine.trace(program.guide).get_trace(x, y, None)
                for name in s.guide_latents:
                    out[name].append(trace.nodes[name]["value"])
    found = {k: torch.stack(v)[None] for k, v in out.items() if v}
    if s.enumerated:
        found.update(_discrete_draws(program, x, y, draws, found))
    return found


def _discrete_draws(
    program: ProgramModel, x: torch.Tensor, y: torch.Tensor | None, draws: int, continuous: dict
) -> dict[str, torch.Tensor]:
    s = program.structure
    out: dict[str, list] = {n: [] for n in s.enumerated}
    first = -(s.max_plate_nesting + 1)
    with program.pyro_context():
        for i in range(draws):
            fixed = {k: v[0, i] for k, v in continuous.items()}
            model = infer_discrete(
                poutine.condition(program.model, fixed), first_available_dim=first, temperature=1
            )
            trace = poutine.trace(model).get_trace(x, y, None)
            for name in s.enumerated:
                out[name].append(trace.nodes[name]["value"].reshape(len(x), -1).squeeze(-1))
    return {k: torch.stack(v)[None] for k, v in out.items()}


def _flat(draws: dict[str, torch.Tensor]) -> tuple[list[dict], tuple[int, int]]:
    chains, num = next(iter(draws.values())).shape[:2]
    return [{k: v[c, d] for k, v in draws.items()} for c in range(chains) for d in range(num)], (
        chains,
        num,
    )


def _replicates(
    program: ProgramModel,
    posterior: list[dict[str, torch.Tensor]],
    x: torch.Tensor,
    y: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Posterior-predictive replicates of ``x`` and log p(x_i | draw), per draw."""
    s = program.structure
    replicate, loglik, observed = [], [], None
    model = poutine.uncondition(program.model)
    with program.pyro_context():
        for fixed in posterior:
            trace = poutine.trace(poutine.condition(model, fixed)).get_trace(x, y, None)
            replicate.append(_rows(trace.nodes[s.observed], s.data_dim, len(x)))
            scored = poutine.trace(poutine.condition(program.model, fixed)).get_trace(x, y, None)
            site = scored.nodes[s.observed]
            lp = site["fn"].log_prob(site["value"])
            loglik.append(_plate_sum(lp, s.data_dim, s.max_plate_nesting, len(x)).reshape(-1))
            observed = _rows(site, s.data_dim, len(x))
    return torch.stack(replicate), torch.stack(loglik), observed


def _prior(
    program: ProgramModel, n: int, y: torch.Tensor | None, draws: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    s = program.structure
    model = poutine.uncondition(program.model)
    latents = {k: [] for k in (*s.global_latents, *s.local_latents)}
    data = []
    with program.pyro_context():
        for _ in range(draws):
            trace = poutine.trace(model).get_trace(placeholder(program, n), y, None)
            for k in latents:
                latents[k].append(trace.nodes[k]["value"])
            data.append(_rows(trace.nodes[s.observed], s.data_dim, n))
    return {k: torch.stack(v)[None] for k, v in latents.items()}, torch.stack(data)[None]


def _numpy(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().double().cpu().numpy() for k, v in tensors.items()}


@torch.no_grad()
def program_inference_data(
    program: ProgramModel, x: torch.Tensor, y: torch.Tensor | None = None, draws: int = 200
) -> az.InferenceData:
    """The groups of the module docstring for the observed points ``x`` (model space)."""
    program.ensure_setup(x, y)
    s = program.structure
    posterior = _posterior_draws(program, x, y, draws)
    flat, shape = _flat(posterior) if posterior else ([{}], (1, 1))
    replicate, loglik, observed = _replicates(program, flat, x, y)
    prior, prior_data = _prior(program, len(x), _labels(program, y, len(x)), min(draws, 200))
    obs = s.observed
    groups = {
        "posterior": _numpy(posterior) if posterior else None,
        "posterior_predictive": {obs: replicate.reshape(*shape, *replicate.shape[1:]).numpy()},
        "log_likelihood": {obs: loglik.reshape(*shape, len(x)).double().numpy()},
        "observed_data": {obs: observed.detach().cpu().numpy()},
        "prior": _numpy(prior) if prior else None,
        "prior_predictive": {obs: prior_data.numpy()},
    }
    diverging = program.divergences()
    if diverging is not None:
        groups["sample_stats"] = {"diverging": diverging.cpu().numpy()}
    dims = {obs: ["point", *(f"{obs}_dim_{i}" for i in range(observed.dim() - 1))]}
    dims.update({n: ["point"] for n in (*s.local_latents, *s.enumerated) if n in posterior})
    idata = az.from_dict(**{k: v for k, v in groups.items() if v is not None}, dims=dims)
    if s.local_latents and program.supports("log_marginal"):
        # Pareto k-hat of each point's importance weights: < 0.7, the guide is a good proposal
        log_w = program.log_weights_per_point(x, y, max(draws, 20)).T.double().cpu().numpy()
        _, khat = az.psislw(log_w)
        idata.add_groups(
            guide_diagnostics=xr.Dataset({"pareto_k": ("point", np.asarray(khat, dtype=float))})
        )
    return idata
