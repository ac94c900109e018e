"""The command line through click's runner and through the installed entry point."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from probgen.cli.main import main

TINY = ["--set", "hidden=16", "--set", "latent_dim=2", "--set", "aggregate_components=2"]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_clean_error(result, message):
    assert result.exit_code != 0
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "vae-moons"
    result = invoke("fit", "vae", "-d", "moons", "-o", run, "--steps", 30, "--quiet", *TINY)
    assert result.exit_code == 0, result.output
    assert "run saved in" in result.output
    return run


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "vae-digits"
    result = invoke(
        "fit",
        "vae",
        "-d",
        "digits",
        "-o",
        run,
        "--steps",
        20,
        "--quiet",
        "--set",
        "hidden=32",
        "--set",
        "aggregate_components=3",
    )
    assert result.exit_code == 0, result.output
    return run


def test_list_names_models_datasets_metrics():
    result = invoke("list")
    assert result.exit_code == 0
    for word in ("vae", "moons", "digits", "aggregate", "nll_is", "fid"):
        assert word in result.output


def test_sample_npy_npz_png(moons_run, tmp_path):
    assert invoke("sample", moons_run, "-n", 50, "-o", tmp_path / "s.npy").exit_code == 0
    assert np.load(tmp_path / "s.npy").shape == (50, 2)
    assert (
        invoke(
            "sample", moons_run, "-n", 5, "-o", tmp_path / "s.npz", "--sampler", "prior"
        ).exit_code
        == 0
    )
    assert np.load(tmp_path / "s.npz")["x"].shape == (5, 2)
    assert invoke("sample", moons_run, "-n", 100, "-o", tmp_path / "s.png").exit_code == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_samples_come_back_in_data_units(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "far.npy", rng.standard_normal((400, 2)) * [1000, 0.01] + [5e4, -300])
    run = tmp_path / "run"
    assert (
        invoke(
            "fit", "vae", "-d", tmp_path / "far.npy", "-o", run, "--steps", 30, "--quiet", *TINY
        ).exit_code
        == 0
    )
    assert invoke("sample", run, "-n", 200, "-o", tmp_path / "s.npy").exit_code == 0
    s = np.load(tmp_path / "s.npy")
    assert abs(s[:, 0].mean() - 5e4) < 3000 and abs(s[:, 1].mean() + 300) < 0.1


def test_evaluate_writes_metrics(moons_run):
    result = invoke("evaluate", moons_run, "-m", "elbo,nll_is,mmd", "--particles", 10, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert {"elbo", "nll_is", "mmd", "n_samples"} <= set(metrics)
    assert metrics["nll_is"] <= -metrics["elbo"] + 0.5
    assert json.loads((moons_run / "metrics.json").read_text()) == metrics


def test_evaluate_a_samples_file(tmp_path):
    np.save(tmp_path / "s.npy", np.random.default_rng(0).standard_normal((300, 2)))
    result = invoke(
        "evaluate",
        "--samples",
        tmp_path / "s.npy",
        "-d",
        "8gaussians",
        "-m",
        "mmd,modes,high_quality",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)) >= {"mmd", "modes", "high_quality"}


def test_encode_decode_interpolate(digits_run, tmp_path):
    assert invoke("encode", digits_run, "-d", "digits", "-o", tmp_path / "c.npz").exit_code == 0
    with np.load(tmp_path / "c.npz") as f:
        assert f["x"].shape == (1797, 16) and f["y"].shape == (1797,)
    assert invoke("decode", digits_run, tmp_path / "c.npz", "-o", tmp_path / "x.npy").exit_code == 0
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (1797, 1, 8, 8) and x.min() >= 0 and x.max() <= 16
    for path in ("linear", "spherical"):
        result = invoke(
            "interpolate",
            digits_run,
            "--a",
            0,
            "--b",
            3,
            "-k",
            6,
            "--path",
            path,
            "-o",
            tmp_path / f"{path}.npy",
        )
        assert result.exit_code == 0, result.output
        assert np.load(tmp_path / f"{path}.npy").shape == (6, 1, 8, 8)
    assert (
        invoke("interpolate", digits_run, "--a", 0, "--b", 3, "-o", tmp_path / "i.png").exit_code
        == 0
    )
    assert invoke("sample", digits_run, "-n", 16, "-o", tmp_path / "g.png").exit_code == 0


def test_resume_through_the_cli(tmp_path):
    run = tmp_path / "r"
    assert invoke("fit", "vae", "-d", "moons", "-o", run, "--steps", 5, "-q", *TINY).exit_code == 0
    result = invoke("fit", "vae", "-d", "moons", "-o", run, "--steps", 9, "-q", "--resume")
    assert result.exit_code == 0 and "9 steps" in result.output


@pytest.fixture
def bad_files(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[1.0, 2.0], [np.nan, 0.0]]))
    np.savez(tmp_path / "two.npz", a=np.zeros((3, 2)), b=np.zeros((3, 2)))
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    (tmp_path / "cfg.json").write_text('{"latent_dim": "many"}')
    return tmp_path


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "vae", "-d", "{p}/missing.npy"], "no dataset or file named"),
        (["fit", "vae", "-d", "{p}/nan.npy"], "1 NaN/inf values (first at example 1"),
        (["fit", "vae", "-d", "{p}/ragged.csv"], "line 2 has 1 values, expected 2"),
        (["fit", "vae", "-d", "{p}/two.npz", "--data-key", "c"], "no array 'c'; it holds: a, b"),
        (["fit", "nope", "-d", "moons"], "unknown model 'nope'"),
        (["fit", "vae", "-d", "moons", "--set", "nope=1"], "unknown option 'nope'"),
        (["fit", "vae", "-d", "moons", "--set", "latent_dim=x"], "latent_dim expects an integer"),
        (["fit", "vae", "-d", "moons", "-c", "{p}/cfg.json"], "latent_dim expects an integer"),
        (["fit", "vae", "-d", "moons", "--set", "net=conv"], "net=conv needs image data"),
        (["fit", "vae", "-d", "moons", "--steps", "0"], "--steps must be at least 1"),
        (["sample", "{p}/norun", "-n", "2", "-o", "{p}/s.npy"], "does not exist"),
        (["evaluate"], "give a RUN directory"),
        (["evaluate", "--samples", "{p}/nan.npy", "-d", "moons"], "NaN"),
    ],
)
def test_bad_input_gets_one_clear_line(bad_files, args, message):
    args = [a.format(p=bad_files) for a in args]
    assert_clean_error(invoke(*args, "-q") if args[0] == "fit" else invoke(*args), message)


def test_bad_use_of_a_run_leaves_it_untouched(moons_run, tmp_path):
    before = {f.name: f.read_bytes() for f in moons_run.iterdir()}
    assert_clean_error(invoke("fit", "vae", "-d", "moons", "-o", moons_run, "-q"), "not empty")
    assert_clean_error(
        invoke("sample", moons_run, "-n", 2, "-o", tmp_path / "s.txt"),
        "output must end in .npy, .npz, .png",
    )
    assert_clean_error(
        invoke("sample", moons_run, "-n", 2, "-o", tmp_path / "s.npy", "--sampler", "nope"),
        "unknown sampler 'nope'",
    )
    assert_clean_error(
        invoke("sample", moons_run, "-n", 2, "-o", tmp_path / "s.npy", "--class", 1),
        "--class needs a conditional model",
    )
    assert_clean_error(
        invoke("interpolate", moons_run, "--a", 0, "--b", 99999, "-o", tmp_path / "i.png"),
        "out of range",
    )
    assert_clean_error(invoke("evaluate", moons_run, "-m", "nope"), "unknown metric(s) nope")
    after = {f.name: f.read_bytes() for f in moons_run.iterdir()}
    assert before == after


def test_corrupt_run(moons_run, tmp_path):
    run = tmp_path / "corrupt"
    shutil.copytree(moons_run, run)
    (run / "model.safetensors").write_bytes(b"junk")
    assert_clean_error(invoke("sample", run, "-n", 2, "-o", tmp_path / "s.npy"), "is corrupt")
    assert (run / "model.safetensors").read_bytes() == b"junk"


def test_user_model_file_through_the_cli(tmp_path):
    from tests.models.test_registry import USER_MODEL

    (tmp_path / "mine.py").write_text(USER_MODEL)
    run = tmp_path / "mine"
    spec = f"{tmp_path / 'mine.py'}:Gaussian"
    assert invoke("fit", spec, "-d", "moons", "-o", run, "-q").exit_code == 0
    assert_clean_error(invoke("sample", run, "-n", 3, "-o", tmp_path / "s.npy"), "--trust-code")
    assert invoke("sample", run, "-n", 3, "-o", tmp_path / "s.npy", "--trust-code").exit_code == 0
    result = invoke("evaluate", run, "--trust-code", "-m", "nll,mmd", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["nll"] > 0


def test_installed_entry_point(tmp_path):
    exe = shutil.which("probgen")
    cmd = [exe] if exe else [sys.executable, "-m", "probgen"]
    ok = subprocess.run(
        cmd + ["fit", "vae", "-d", "moons", "-o", str(tmp_path / "r"), "--steps", "3", "-q", *TINY],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        cmd + ["fit", "vae", "-d", str(tmp_path / "none.csv")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error: no dataset or file named")
    assert "Traceback" not in bad.stderr
    module = subprocess.run(
        [sys.executable, "-m", "probgen", "--version"], capture_output=True, text=True, timeout=300
    )
    assert module.returncode == 0 and "0.1.0" in module.stdout


def test_inspect_writes_netcdf_summary_and_plots(digits_run, tmp_path):
    import arviz as az

    result = invoke("inspect", digits_run, "--points", 3, "--draws", 50, "-o", tmp_path / "i")
    assert result.exit_code == 0, result.output
    assert "Pareto k-hat per point" in result.output
    idata = az.from_netcdf(str(tmp_path / "i" / "inference_data.nc"))
    assert {"posterior", "prior", "loss_trace", "guide_diagnostics"} <= set(idata.groups())
    assert (tmp_path / "i" / "trace.png").exists() and (tmp_path / "i" / "summary.csv").exists()


def test_compare_prints_one_table_and_a_figure_per_run(moons_run, tmp_path):
    other = tmp_path / "other"
    assert (
        invoke("fit", "vae", "-d", "moons", "-o", other, "--steps", 5, "-q", *TINY).exit_code == 0
    )
    result = invoke("compare", moons_run, other, "-m", "mmd,swd", "-n", 300, "-o", tmp_path / "c")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("|")]
    assert lines[0].startswith("| run | ") and "mmd" in lines[0] and len(lines) == 4
    assert (tmp_path / "c" / "vae-moons.png").exists() and (tmp_path / "c" / "other.png").exists()


def test_evaluate_digits_samples_file_with_image_metrics(tmp_path):
    from probgen.data.digits import load_digits_split

    np.save(tmp_path / "real.npy", load_digits_split()[2])
    result = invoke(
        "evaluate",
        "--samples",
        tmp_path / "real.npy",
        "-d",
        "digits",
        "-m",
        "fid,precision,recall,sharpness",
        "--json",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["fid"] < 1e-6 and metrics["precision"] == 1.0
