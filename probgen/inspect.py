"""ArviZ InferenceData for fitted models: guide posteriors, MCMC chains and loss traces.

- Models made of Pyro programs (a user's program, the VAE): posterior (guide draws or the saved
  MCMC chains), prior, posterior predictive, log-likelihood and, for local latents, the Pareto
  k-hat of each point's importance weights log p(x, z) - log q(z | x) (``arviz.psislw``;
  Vehtari et al. 2017/2024): k-hat < 0.7 means importance sampling with the guide is reliable
  (:mod:`probgen.programs.inference_data`).
- Models with an MCMC kernel of their own (capability ``mcmc_kernel``: the EBM, score models):
  chains from ``pyro.infer.MCMC`` with several chains, converted by ``arviz.from_pyro``, so
  r-hat, ESS and MCSE come from ArviZ.
- Every run: its loss trace (``history.csv``) as a group of its own, ``loss_trace``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import arviz as az
import numpy as np
import torch
import xarray as xr
from pyro.infer import MCMC

from probgen.errors import ConfigError
from probgen.models.base import GenerativeModel

if TYPE_CHECKING:
    import pandas as pd

    from probgen.data.datasets import Dataset


def loss_trace(history: list[dict]) -> xr.Dataset:
    """The run's logged scalars indexed by step."""
    if not history:
        return xr.Dataset()
    steps = np.array([row["step"] for row in history], dtype=np.int64)
    names = [k for k in history[0] if k != "step"]
    data = {
        k: ("step", np.array([row.get(k, np.nan) for row in history], dtype=float)) for k in names
    }
    return xr.Dataset(data, coords={"step": steps})


def mcmc_inference_data(
    model: GenerativeModel,
    kernel_name: str | None = None,
    num_samples: int = 500,
    warmup_steps: int = 200,
    num_chains: int = 4,
) -> az.InferenceData:
    """Chains of the model's own MCMC kernel under ``pyro.infer.MCMC``, as InferenceData."""
    if not model.supports("mcmc_kernel"):
        raise ConfigError(f"{type(model).__name__} has no MCMC kernel to inspect")
    kernel = model.mcmc_kernel(kernel_name)
    # chains run one after another unless cpu_count - 1 >= num_chains (Pyro's rule)
    mcmc = MCMC(
        kernel,
        num_samples=num_samples,
        warmup_steps=warmup_steps,
        num_chains=num_chains,
        initial_params=model.mcmc_initial_params(num_chains),
        disable_progbar=True,
    )
    mcmc.run()
    return az.from_pyro(mcmc)


def inference_data(
    model: GenerativeModel,
    dataset: Dataset | None = None,
    points: int = 8,
    draws: int = 500,
    kernel: str | None = None,
    chains: int = 4,
    warmup: int = 200,
) -> az.InferenceData:
    """The InferenceData ``probgen inspect`` writes, by what the model supports.

    Pyro programs: :func:`~probgen.programs.inference_data.program_inference_data` on the points
    the posterior conditions on (the training data for MCMC runs and global latents, else
    ``points`` held-out rows), the built-in VAE included; families with an MCMC kernel:
    :func:`mcmc_inference_data`.
    """
    if model.supports("sites"):
        from probgen.programs.inference_data import program_inference_data

        local = bool(model.structure.local_latents) and not model.fits_by_mcmc()
        rows, labels = (
            (dataset.test[:points], dataset.test_labels)
            if local
            else (dataset.train[:5000], dataset.train_labels)
        )
        x, y = _model_space(model, rows, labels)
        return program_inference_data(model, x, y, draws)
    if model.supports("mcmc_kernel"):
        return mcmc_inference_data(model, kernel, draws, warmup, chains)
    return az.InferenceData()


def _model_space(
    model: GenerativeModel, rows: np.ndarray, labels: np.ndarray | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    x = model.preprocessor.forward(torch.as_tensor(rows).to(model.device))
    y = None
    if labels is not None and model.supports("labels"):
        y = torch.as_tensor(labels[: len(rows)]).to(model.device)
    return x, y


def summary(idata: az.InferenceData) -> pd.DataFrame:
    """``arviz.summary`` of the posterior (r-hat and ESS need more than one chain)."""
    return az.summary(idata, kind="all" if idata.posterior.sizes.get("chain", 1) > 1 else "stats")


def write_plots(idata: az.InferenceData, out_dir: str | Path, max_variables: int = 4) -> list[str]:
    """Trace, rank, pair and forest plots of the first few posterior variables, as PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    post = idata.posterior
    names = list(post.data_vars)[:max_variables]
    extra = [d for d in post.dims if d not in ("chain", "draw")]

    def first(dims_and_counts: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
        return {d: list(range(min(k, post.sizes[d]))) for d, k in dims_and_counts}

    # two coordinates of the first extra dimension, one of the others: readable figures
    coords = first([(d, 2 if i == 0 else 1) for i, d in enumerate(extra)])
    written = []
    plots = {"trace.png": az.plot_trace, "rank.png": az.plot_rank, "forest.png": az.plot_forest}
    if post.sizes.get("chain", 1) < 2:
        plots.pop("rank.png")
    for filename, plot in plots.items():
        plot(idata, var_names=names, coords=coords)
        plt.gcf().savefig(f"{out_dir}/{filename}", dpi=80, bbox_inches="tight")
        plt.close("all")
        written.append(filename)
    pair_coords = first([(d, 2 if i == len(extra) - 1 else 1) for i, d in enumerate(extra)])
    n_pair = len(names) * max(len(v) for v in pair_coords.values()) if pair_coords else len(names)
    if n_pair >= 2:
        az.plot_pair(idata, var_names=names[:2], coords=pair_coords, kind="kde")
        plt.gcf().savefig(f"{out_dir}/pair.png", dpi=80, bbox_inches="tight")
        plt.close("all")
        written.append("pair.png")
    return written
