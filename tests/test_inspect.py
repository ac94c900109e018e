import arviz as az
import numpy as np
import pytest
import torch

from probgen import inspect as pg_inspect
from probgen.models.base import DataInfo
from probgen.models.vae import VAE, VAEConfig
from probgen.programs.inference_data import program_inference_data


@pytest.fixture(scope="module")
def vae_idata():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(hidden=(16,), latent_dim=3, likelihood="gaussian"), DataInfo((4,)))
    x = torch.randn(5, 4)
    return program_inference_data(vae, x, draws=100)


def test_groups_and_dims(vae_idata):
    assert set(vae_idata.groups()) >= {
        "posterior",
        "prior",
        "observed_data",
        "posterior_predictive",
        "log_likelihood",
        "guide_diagnostics",
    }
    z = vae_idata.posterior["z"]
    assert z.dims[:3] == ("chain", "draw", "point") and z.shape == (1, 100, 5, 3)
    assert vae_idata.prior["z"].shape == (1, 100, 5, 3)
    assert vae_idata.observed_data["x"].shape == (5, 4)
    assert vae_idata.log_likelihood["x"].shape == (1, 100, 5)


def test_pareto_k_is_finite_per_point(vae_idata):
    k = vae_idata.guide_diagnostics["pareto_k"].values
    assert k.shape == (5,) and np.isfinite(k).all()


def test_netcdf_round_trip(vae_idata, tmp_path):
    vae_idata.to_netcdf(str(tmp_path / "i.nc"))
    back = az.from_netcdf(str(tmp_path / "i.nc"))
    assert set(back.groups()) == set(vae_idata.groups())
    np.testing.assert_array_equal(back.posterior["z"].values, vae_idata.posterior["z"].values)


def test_summary_equals_arviz(vae_idata):
    ours = pg_inspect.summary(vae_idata)
    direct = az.summary(vae_idata, kind="stats")
    assert ours.equals(direct)


def test_loss_trace_group():
    history = [
        {"step": 1, "loss": 3.0, "wall_time": 0.1},
        {"step": 2, "loss": 2.0, "wall_time": 0.2},
    ]
    trace = pg_inspect.loss_trace(history)
    assert list(trace["loss"].values) == [3.0, 2.0] and list(trace["step"].values) == [1, 2]


def test_plots_are_written(vae_idata, tmp_path):
    names = pg_inspect.write_plots(vae_idata, tmp_path)
    assert {"trace.png", "forest.png", "pair.png"} <= set(names)
    assert all((tmp_path / n).stat().st_size > 1000 for n in names)


@pytest.mark.filterwarnings("ignore:num_chains")
def test_chains_of_a_score_model_read_by_arviz():
    from probgen.train import fit

    model = fit(
        "score",
        "moons",
        None,
        steps=5,
        quiet=True,
        options={"hidden": (16, 16), "num_scales": 3, "n_steps_each": 1},
    )
    idata = pg_inspect.mcmc_inference_data(
        model, None, num_samples=30, warmup_steps=5, num_chains=2
    )
    assert idata.posterior["x"].shape == (2, 30, 2)
    assert "divergences" in idata.sample_stats or "diverging" in idata.sample_stats
    table = pg_inspect.summary(idata)
    assert {"r_hat", "ess_bulk", "mcse_mean"} <= set(table.columns)
    assert table.equals(az.summary(idata, kind="all"))
