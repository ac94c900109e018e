"""MCMC over a program's latent sites given all the data: Pyro's ``MCMC`` with NUTS, HMC or
probgen's Langevin kernels (``--mcmc nuts|hmc|mala|ula``).

Chains run one after another, each its own ``pyro.infer.MCMC`` with one chain: the program's
parameters are served by a messenger in this process (Pyro's parallel chains would run the
program in worker processes without it), and the result is the same set of independent chains
that ``num_chains=C`` gives. Draws come back grouped by chain, ``(chains, draws, ...)``, with the
post-warm-up divergences of each chain, which is what ArviZ needs for r-hat, ESS and
``sample_stats.diverging``.

References: Hoffman & Gelman 2014 (NUTS); Neal 2011, "MCMC using Hamiltonian dynamics";
Roberts & Tweedie 1996 (Langevin kernels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from pyro.infer import HMC, MCMC, NUTS
from pyro.ops.stats import effective_sample_size, split_gelman_rubin

from probgen.infer.langevin import MALA, ULA

if TYPE_CHECKING:
    from pyro.infer.mcmc.mcmc_kernel import MCMCKernel

MCMC_KERNELS = ("none", "nuts", "hmc", "mala", "ula")


def make_kernel(name: str, model: Callable, max_plate_nesting: int, step_size: float) -> MCMCKernel:
    """The MCMC kernel called ``name`` over the latent sites of ``model``."""
    if name == "nuts":
        return NUTS(model, max_plate_nesting=max_plate_nesting)
    if name == "hmc":
        return HMC(model, step_size=step_size, num_steps=10, max_plate_nesting=max_plate_nesting)
    if name == "mala":
        return MALA(model=model, step_size=step_size, max_plate_nesting=max_plate_nesting)
    if name == "ula":
        return ULA(model=model, step_size=step_size, max_plate_nesting=max_plate_nesting)
    raise ValueError(f"unknown MCMC kernel {name!r}; choose from {', '.join(MCMC_KERNELS[1:])}")


def run_chains(
    make: Callable[[], object],
    args: tuple,
    chains: int,
    num_samples: int,
    warmup: int,
    quiet: bool = False,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[dict]]:
    """Run ``chains`` chains of the kernel ``make()`` builds on ``model(*args)``.

    Returns the draws ``{site: (chains, num_samples, ...)}``, a boolean ``(chains,
    num_samples)`` tensor of divergent transitions, and each chain's ``diagnostics()``.
    """
    per_chain, diverging, diagnostics = [], [], []
    for _ in range(chains):
        mcmc = MCMC(make(), num_samples=num_samples, warmup_steps=warmup, disable_progbar=quiet)
        mcmc.run(*args)
        per_chain.append(mcmc.get_samples())
        diag = mcmc.diagnostics()
        flags = torch.zeros(num_samples, dtype=torch.bool)
        for index in _divergences(diag):
            if 0 <= index < num_samples:
                flags[index] = True
        diverging.append(flags)
        diagnostics.append(_plain(diag))
    draws = {k: torch.stack([c[k] for c in per_chain]) for k in per_chain[0]}
    return draws, torch.stack(diverging), diagnostics


def chain_summary(draws: dict[str, torch.Tensor]) -> dict:
    """Split r-hat and effective sample size per site (worst element), and the extremes.

    Uses Pyro's ``split_gelman_rubin`` and ``effective_sample_size`` (Gelman et al. 2013,
    BDA3 ch. 11) on draws grouped by chain; r-hat needs at least two chains.
    """
    sites = {}
    for name, value in draws.items():
        value = value.double()
        ess = float(effective_sample_size(value).min())
        # one chain has no between-chain variance: no r-hat (JSON null)
        rhat = float(split_gelman_rubin(value).max()) if value.shape[0] > 1 else None
        sites[name] = {"r_hat": rhat, "ess": ess}
    rhats = [s["r_hat"] for s in sites.values() if s["r_hat"] is not None]
    return {
        "sites": sites,
        "max_r_hat": max(rhats) if rhats else None,
        "min_ess": min((s["ess"] for s in sites.values()), default=None),
    }


def _divergences(diag: dict) -> list[int]:
    found = diag.get("divergences", {})
    if isinstance(found, dict):
        return [int(i) for chain in found.values() for i in chain]
    return [int(i) for i in found]


def _plain(diag: dict) -> dict:
    """The JSON-ready scalars of a kernel's diagnostics (per-site r-hat/ESS come from ArviZ)."""
    out = {}
    for key, value in diag.items():
        if isinstance(value, dict):
            value = next(iter(value.values()), None) if len(value) == 1 else None
        if isinstance(value, (int, float)):
            out[key] = float(value)
        elif torch.is_tensor(value) and value.numel() == 1:
            out[key] = float(value)
    out["divergences"] = len(_divergences(diag))
    return out
