"""A user's Pyro program from the command line: fit, sample, evaluate, inspect, info, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import arviz as az
import numpy as np
import pytest
from click.testing import CliRunner

from probgen.cli.main import main
from tests.cli.test_cli import assert_clean_error
from tests.programs.conftest import PROGRAMS


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def project(tmp_path):
    """A user's folder: the PPCA program importing a sibling module, and data."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "shapes.py").write_text("LATENT = 1\n")
    source = textwrap.dedent(PROGRAMS["ppca"]).replace(
        "import pyro, torch", "import pyro, torch\nfrom shapes import LATENT  # a sibling import"
    )
    (folder / "ppca.py").write_text(source)
    (folder / "broken.py").write_text(textwrap.dedent(PROGRAMS["broken"]))
    rng = np.random.default_rng(0)
    t = rng.standard_normal(200)
    x = np.c_[2 * t + 10, -t] + 0.2 * rng.standard_normal((200, 2))
    np.savetxt(folder / "points.csv", x, delimiter=",")
    return folder


def test_fit_sample_evaluate_inspect_and_info(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the program is named by a relative path from elsewhere
    run = tmp_path / "run"
    result = invoke(
        "fit", "project/ppca.py:model,guide", "-d", "project/points.csv", "-o", run,
        "--steps", 200, "--lr", 0.05, "--batch-size", 180, "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = json.loads((run / "config.json").read_text())
    assert stored["model"] == f"{project / 'ppca.py'}:model,guide"  # stored absolute
    monkeypatch.chdir(project.parent.parent)
    assert invoke("sample", run, "-n", 7, "-o", tmp_path / "s.npy", "--trust-code").exit_code == 0
    assert np.load(tmp_path / "s.npy").shape == (7, 2)
    result = invoke("sample", run, "-n", 3, "--site", "z", "-o", tmp_path / "z.npy", "--trust-code")
    assert result.exit_code == 0 and np.load(tmp_path / "z.npy").shape == (3, 1)
    result = invoke(
        "evaluate", run, "--trust-code", "--json", "-m", "elbo,nll_is", "--particles", 20,
        "-d", project / "points.csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["n_test"] == 200  # a file given to evaluate is all test data
    assert metrics["elbo"] <= -metrics["nll_is"] + 0.05
    result = invoke("inspect", run, "--trust-code", "--draws", 20, "-o", tmp_path / "ins")
    assert result.exit_code == 0, result.output
    idata = az.from_netcdf(tmp_path / "ins" / "inference_data.nc")
    assert {"posterior", "posterior_predictive", "log_likelihood", "guide_diagnostics"} <= set(
        idata.groups()
    )
    result = invoke("info", run, "--trust-code")
    assert "evaluate: elbo" in result.output and "encode" in result.output


@pytest.mark.parametrize(
    "spec, message",
    [
        ("missing.py:model", "missing.py does not exist"),
        ("broken.py:nothing", "has no name 'nothing'"),
        ("broken.py:not_a_function", "not_a_function is a int, not callable"),
        ("broken.py:model", "broken.py:7: running the model on the first batch: RuntimeError"),
        ("broken.py:unobserved", "the model has no observed site"),
    ],
)
def test_program_errors_are_one_line_and_write_nothing(project, tmp_path, spec, message):
    run = tmp_path / "run"
    result = invoke("fit", project / spec, "-d", "moons", "-o", run, "--steps", 1)
    assert_clean_error(result, message)
    assert not run.exists()


def test_program_flags_are_refused_for_families(tmp_path):
    assert_clean_error(
        invoke("fit", "vae", "-d", "moons", "--mcmc", "nuts", "-o", tmp_path / "r"),
        "--mcmc applies to Pyro programs",
    )


def test_mcmc_from_the_installed_entry_point(tmp_path):
    path = tmp_path / "gaussian_mean.py"
    path.write_text(textwrap.dedent(PROGRAMS["gaussian_mean"]))
    data = np.random.default_rng(0).normal([1.0, 2.0], 1.0, size=(100, 2))
    np.save(tmp_path / "unit.npy", data)
    probgen = [sys.executable, "-m", "probgen"]
    fit = subprocess.run(
        [*probgen, "fit", f"{path}:model", "-d", tmp_path / "unit.npy", "-o", tmp_path / "run",
         "--mcmc", "nuts", "--chains", "2", "--num-samples", "100", "--warmup", "100", "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    assert "2 chains x 100 draws" in fit.stdout and "max r-hat" in fit.stdout
    inspect = subprocess.run(
        [*probgen, "inspect", tmp_path / "run", "--trust-code", "-o", tmp_path / "ins"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert inspect.returncode == 0, inspect.stderr
    idata = az.from_netcdf(tmp_path / "ins" / "inference_data.nc")
    assert idata.posterior.sizes["chain"] == 2 and "diverging" in idata.sample_stats
    assert float(az.rhat(idata)["loc"].max()) <= 1.05
