"""Every family through the real command line: fit a toy, sample with each sampler, evaluate."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from probgen.cli.main import main
from probgen.models.registry import resolve_model

TINY = {
    "vae": ["hidden=16", "latent_dim=2", "aggregate_components=2"],
    "flow": ["transforms=2", "hidden=16,16"],
    "diffusion": ["timesteps=50", "hidden=32,32"],
    "score": [
        "hidden=32,32",
        "num_scales=5",
        "n_steps_each=2",
        "pc_steps=20",
        "ode_steps=10",
        "likelihood_steps=10",
    ],
    "gan": ["hidden=16,16", "disc_hidden=16,16"],
    "ebm": [
        "hidden=16,16",
        "langevin_steps=5",
        "buffer_size=256",
        "sample_steps=10",
        "quadrature_points=64",
        "mcmc_chains=2",
        "mcmc_warmup=5",
    ],
}
SAMPLE_STEPS = {"diffusion": 10, "score": 10, "ebm": 10}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module", params=sorted(TINY))
def fitted(request, tmp_path_factory):
    name = request.param
    run = tmp_path_factory.mktemp("fam") / name
    sets = [arg for pair in TINY[name] for arg in ("--set", pair)]
    result = invoke("fit", name, "-d", "moons", "-o", run, "--steps", 30, "-q", *sets)
    assert result.exit_code == 0, result.output + result.stderr
    return name, run


def test_sample_with_every_sampler(fitted, tmp_path):
    name, run = fitted
    from probgen.runs import load_model

    for sampler in load_model(run).samplers:
        out = tmp_path / f"{sampler}.npy"
        args = ["sample", run, "-n", 40, "-o", out, "--sampler", sampler]
        if name in SAMPLE_STEPS:
            args += ["--steps", SAMPLE_STEPS[name]]
        result = invoke(*args)
        assert result.exit_code == 0, f"{sampler}: {result.output}{result.stderr}"
        x = np.load(out)
        assert x.shape == (40, 2) and np.isfinite(x).all(), sampler


def test_evaluate(fitted):
    name, run = fitted
    result = invoke(
        "evaluate",
        run,
        "-m",
        "nll,elbo,mmd,precision",
        "-n",
        200,
        "--json",
        "--particles",
        10,
        *(["--steps", 10] if name in SAMPLE_STEPS else []),
    )
    assert result.exit_code == 0, result.output + result.stderr
    metrics = json.loads(result.stdout)
    assert np.isfinite(metrics["mmd"]) and 0 <= metrics["precision"] <= 1
    if name in ("flow", "ebm"):
        assert np.isfinite(metrics["nll"])


def test_listed_samplers_are_valid():
    for name in TINY:
        assert resolve_model(name).samplers


@pytest.fixture(scope="module")
def digits_28(tmp_path_factory):
    """48 MNIST-shaped images (28x28 bytes) in an IDX file, as ``probgen fit -d`` takes them."""
    import gzip
    import struct

    rng = np.random.default_rng(0)
    images = np.zeros((48, 28, 28), np.uint8)
    for image, (row, col) in zip(images, rng.integers(4, 20, size=(48, 2))):
        image[row : row + 6, col : col + 3] = 255  # a stroke somewhere, like a "1"
    path = tmp_path_factory.mktemp("idx") / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBBIII", 0, 8, 3, *images.shape) + images.tobytes())
    return path


@pytest.mark.parametrize("name", sorted(TINY))
def test_image_defaults_fit_and_sample_28x28_digits(name, digits_28, tmp_path):
    """Each family's own 28x28 defaults (networks, samplers) run end to end; 2 steps only."""
    run = tmp_path / name
    result = invoke("fit", name, "-d", digits_28, "-o", run, "--steps", 2, "--batch-size", 16, "-q")
    assert result.exit_code == 0, result.output + result.stderr
    out = tmp_path / "samples.npy"
    result = invoke(
        "sample", run, "-n", 4, "-o", out, *(["--steps", 3] if name in SAMPLE_STEPS else [])
    )
    assert result.exit_code == 0, result.output + result.stderr
    x = np.load(out)
    assert x.shape == (4, 1, 28, 28) and np.isfinite(x).all()
    assert x.min() >= 0 and x.max() <= 255  # in the data's own units
