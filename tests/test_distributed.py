"""Two gloo processes on the CPU train exactly like one process on the same global batch."""

import subprocess
import sys

import pytest
import torch

from probgen.runs import load_model
from probgen.train import fit
from tests.models.test_registry import USER_MODEL

OWN_STEP = """

class OwnStep(Gaussian):
    # computes its own gradients, as the GAN, the EBM and diffusion do
    def train_step(self, batch, optimizers, step):
        (optimizer,) = optimizers
        optimizer.zero_grad()
        loss = self.loss(batch)
        loss.backward()
        optimizer.step()
        return {"loss": loss.detach()}
"""


COMMON = ("-d", "moons", "--steps", "6", "--batch-size", "64", "--lr", "0.05", "-q")


def fit_on_two_processes(model: str, out, *options: str):
    """``probgen fit MODEL -o OUT --nproc 2 OPTIONS`` (torchrun, gloo), then the saved model."""
    command = [sys.executable, "-m", "probgen", "fit", model, "-o", str(out), "--nproc", "2"]
    launched = subprocess.run([*command, *options], capture_output=True, text=True, timeout=600)
    assert launched.returncode == 0, launched.stderr[-2000:]
    return load_model(out, trust_code=True)


@pytest.mark.parametrize("cls", ["Gaussian", "OwnStep"])
def test_two_processes_match_one_on_the_same_global_batch(tmp_path, cls):
    (tmp_path / "gauss.py").write_text(USER_MODEL + OWN_STEP)
    spec = f"{tmp_path / 'gauss.py'}:{cls}"
    two = fit_on_two_processes(spec, tmp_path / "two", *COMMON)
    one = fit(spec, "moons", tmp_path / "one", steps=6, batch_size=64, lr=0.05, quiet=True)
    assert not torch.allclose(one.loc, torch.zeros(2))  # it trained
    for name, p in one.state_dict().items():
        torch.testing.assert_close(two.state_dict()[name], p, rtol=1e-5, atol=1e-6, msg=name)


def test_uneven_batch_is_refused(monkeypatch):
    from probgen.batches import BatchStream
    from probgen.data.preprocess import Identity
    from probgen.distributed import ProcessGroup
    from probgen.errors import ConfigError

    x = torch.zeros(10, 2)
    try:
        BatchStream(x, None, Identity(), 5, torch.device("cpu"), 0, ProcessGroup(0, 2, 0))
    except ConfigError as exc:
        assert "must divide evenly among 2 processes" in str(exc)
    else:
        raise AssertionError("expected a ConfigError")


PROGRAM = """
import pyro, torch
import pyro.distributions as dist
from torch.distributions import constraints

def model(x):
    loc = pyro.param("loc", torch.zeros(2))
    scale = pyro.param("scale", torch.ones(2), constraint=constraints.positive)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(loc, scale).to_event(1), obs=x)
"""


def test_a_pyro_program_trains_alike_on_two_processes(tmp_path):
    (tmp_path / "prog.py").write_text(PROGRAM)
    spec = f"{tmp_path / 'prog.py'}:model"
    two = fit_on_two_processes(spec, tmp_path / "two", *COMMON)
    one = fit(spec, "moons", tmp_path / "one", steps=6, batch_size=64, lr=0.05, quiet=True)
    assert not torch.allclose(one.param("loc"), torch.zeros(2))  # it trained
    for name in ("loc", "scale"):
        torch.testing.assert_close(two.param(name), one.param(name), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "family, options, buffers",
    [
        ("ebm", ["--set", "hidden=(16,16)", "--set", "buffer_size=64"], ("box_low", "box_high")),
        ("score", ["--set", "hidden=(16,16)", "--set", "num_scales=3"], ("sigma_max",)),
    ],
)
def test_data_fitted_state_is_the_same_on_two_processes_and_one(tmp_path, family, options, buffers):
    common = ["-d", "8gaussians", "--steps", "2", "--batch-size", "64", "-q", *options]
    two = fit_on_two_processes(family, tmp_path / "two", *common)
    sets = [o.split("=", 1) for o in options[1::2]]
    one = fit(family, "8gaussians", tmp_path / "one", steps=2, batch_size=64, quiet=True,
              options=dict(sets))  # fmt: skip
    for name in buffers:
        torch.testing.assert_close(getattr(two, name), getattr(one, name), msg=name)
