import math

import pytest
import torch

from probgen.errors import ConfigError, RunError, TrainingDiverged
from probgen.runs import Run, load_model
from probgen.train import TrainingInterrupted, fit
from tests.models.test_registry import USER_MODEL

TINY_VAE = {"hidden": "16", "latent_dim": "2", "aggregate_components": "2"}


@pytest.fixture
def user_model(tmp_path):
    path = tmp_path / "user_model.py"
    path.write_text(
        USER_MODEL
        + """

class ExplodesAt5(Gaussian):
    def loss(self, batch):
        loss = super().loss(batch)
        return loss * float("nan") if self.steps_taken == 5 else loss

    def train_step(self, batch, optimizers, step):
        self.steps_taken = step
        return super().train_step(batch, optimizers, step)


class PoisonsWeightsAt3(Gaussian):
    def train_step(self, batch, optimizers, step):
        logs = super().train_step(batch, optimizers, step)
        if step == 3:
            with torch.no_grad():
                self.loc.fill_(float("nan"))
        return logs


class InterruptedAt5(Gaussian):
    def train_step(self, batch, optimizers, step):
        if step == 5 and not getattr(self, "resumed", False):
            raise KeyboardInterrupt
        return super().train_step(batch, optimizers, step)
"""
    )
    return path


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_fit_writes_a_run_that_loads_identically(tmp_path):
    model = fit(
        "vae", "moons", tmp_path / "run", steps=20, batch_size=64, quiet=True, options=TINY_VAE
    )
    for name in (
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "history.csv",
        "train_state.json",
    ):
        assert (tmp_path / "run" / name).exists()
    loaded = load_model(tmp_path / "run")
    assert_same_state(state(model), state(loaded))
    history = Run(tmp_path / "run").read_history()
    assert [row["step"] for row in history] == list(range(1, 21))
    assert all(math.isfinite(row["loss"]) for row in history)


def test_same_seed_same_result():
    a = fit("vae", "moons", None, steps=15, batch_size=32, seed=7, quiet=True, options=TINY_VAE)
    b = fit("vae", "moons", None, steps=15, batch_size=32, seed=7, quiet=True, options=TINY_VAE)
    c = fit("vae", "moons", None, steps=15, batch_size=32, seed=8, quiet=True, options=TINY_VAE)
    assert_same_state(state(a), state(b))
    assert not torch.equal(a.encoder_head.weight, c.encoder_head.weight)


def test_resume_continues_exactly(tmp_path):
    whole = fit("vae", "moons", None, steps=30, batch_size=4096, quiet=True, options=TINY_VAE)
    fit("vae", "moons", tmp_path / "r", steps=12, batch_size=4096, quiet=True, options=TINY_VAE)
    resumed = fit("vae", "moons", tmp_path / "r", steps=30, quiet=True, resume=True)
    assert_same_state(state(whole), state(resumed))
    assert len(Run(tmp_path / "r").read_history()) == 30


def test_epochs_budget(tmp_path):
    fit("vae", "moons", tmp_path / "r", epochs=2, batch_size=5000, quiet=True, options=TINY_VAE)
    history = Run(tmp_path / "r").read_history()
    assert len(history) == 4 and history[-1]["epoch"] == 1


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, user_model):
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 6.*step 4\) is kept"):
        fit(f"{user_model}:ExplodesAt5", "moons", run, steps=20, quiet=True, checkpoint_every=2)
    loaded = load_model(run, trust_code=True)
    assert all(torch.isfinite(p).all() for p in loaded.parameters())
    state_json = Run(run).read_train_state()[0]
    assert state_json.step == 4


def test_nan_weights_stop_training_with_a_clear_error(tmp_path, user_model):
    with pytest.raises(TrainingDiverged, match="weights became NaN or infinite before step 5"):
        fit(f"{user_model}:PoisonsWeightsAt3", "moons", tmp_path / "r", steps=20, quiet=True)


def test_ctrl_c_saves_and_resume_finishes(tmp_path, user_model):
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="interrupted at step 5; checkpoint saved"):
        fit(f"{user_model}:InterruptedAt5", "moons", run, steps=10, quiet=True)
    assert Run(run).read_train_state()[0].step == 5


def test_existing_run_is_not_overwritten(tmp_path):
    run = tmp_path / "run"
    fit("vae", "moons", run, steps=2, quiet=True, options=TINY_VAE)
    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(RunError, match="not empty; choose another -o, --resume it, or --overwrite"):
        fit("vae", "moons", run, steps=2, quiet=True, options=TINY_VAE)
    assert (run / "model.safetensors").read_bytes() == before
    fit("vae", "moons", run, steps=2, quiet=True, options=TINY_VAE, overwrite=True, seed=3)
    assert (run / "model.safetensors").read_bytes() != before


def test_bad_budget_and_device():
    with pytest.raises(ConfigError, match="not both"):
        fit("vae", "moons", steps=2, epochs=2)
    with pytest.raises(ConfigError, match="--steps must be at least 1"):
        fit("vae", "moons", steps=0)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            fit("vae", "moons", steps=1, device="cuda")


def test_resume_refuses_new_options(tmp_path):
    fit("vae", "moons", tmp_path / "r", steps=2, quiet=True, options=TINY_VAE)
    with pytest.raises(ConfigError, match="drop -c/--set"):
        fit("vae", "moons", tmp_path / "r", steps=4, resume=True, options={"beta": 2})
    with pytest.raises(RunError, match="no run to resume"):
        fit("vae", "moons", tmp_path / "missing", resume=True)


def test_bf16_autocast_trains():
    model = fit("vae", "moons", None, steps=10, quiet=True, options=TINY_VAE, precision="bf16")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ConfigError, match="--precision must be auto, fp32 or bf16"):
        fit("vae", "moons", steps=1, precision="fp16")


def test_resume_refuses_other_data_and_a_budget_below_the_steps_done(tmp_path):
    fit("flow", "moons", tmp_path / "r", steps=4, quiet=True, options={"hidden": "8"})
    with pytest.raises(ConfigError, match="was fitted on moons, not circles"):
        fit("flow", "circles", tmp_path / "r", steps=6, resume=True, quiet=True)
    with pytest.raises(ConfigError, match="has done 4 steps; --steps 2 is below that"):
        fit("flow", "moons", tmp_path / "r", steps=2, resume=True, quiet=True)
    assert Run(tmp_path / "r").read_train_state()[0].step == 4


def test_three_rows_fit_and_fewer_training_rows_are_refused(tmp_path):
    import numpy as np

    from probgen.errors import DataError

    rows = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
    np.save(tmp_path / "three.npy", rows)
    model = fit("vae", str(tmp_path / "three.npy"), None, steps=2, quiet=True, options=TINY_VAE)
    assert model.sample(4).shape == (4, 2)
    np.save(tmp_path / "two.npy", rows[:2])
    with pytest.raises(DataError, match="only 1 training row"):
        fit("vae", str(tmp_path / "two.npy"), None, steps=2, quiet=True)


def test_options_are_checked_before_any_run_is_written(tmp_path):
    for kwargs, message in (
        ({"lr": math.inf}, "--lr must be a positive finite number"),
        ({"checkpoint_every": 0}, "--checkpoint-every must be at least 1"),
        ({"options": {"beta": "inf"}}, "beta expects a finite number"),
        ({"resume": True, "overwrite": True}, "not both"),
    ):
        with pytest.raises(ConfigError, match=message):
            fit("vae", "moons", tmp_path / "r", steps=2, quiet=True, **kwargs)
        assert not (tmp_path / "r").exists()
