import json

import pytest

from probgen.atomic_files import write_atomic
from probgen.errors import RunError
from probgen.runs import Run, load_model
from probgen.train import fit
from tests.models.test_registry import USER_MODEL

TINY_VAE = {"hidden": "16", "latent_dim": "2", "aggregate_components": "2"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "vae"
    fit("vae", "moons", path, steps=3, quiet=True, options=TINY_VAE)
    return path


def copy_run(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_write_atomic_leaves_no_temporary_files(tmp_path):
    write_atomic(tmp_path / "a.bin", b"123")
    write_atomic(tmp_path / "a.bin", b"456")
    assert (tmp_path / "a.bin").read_bytes() == b"456"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_corrupt_weights_are_reported_and_left_alone(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "bad")
    (run / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(RunError, match="model.safetensors is corrupt"):
        load_model(run)
    assert (run / "model.safetensors").read_bytes() == b"garbage"


def test_weights_of_another_model_are_refused(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "other")
    config = json.loads((run / "config.json").read_text())
    config["model_config"]["latent_dim"] = 3
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match="does not fit the model"):
        load_model(run)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(format_version=99), r"\(run format 99\); this probgen reads format 2"),
        (lambda c: c.pop("preprocessor"), "corrupt \\(no 'preprocessor'\\)"),
        (lambda c: c["model_config"].update(nope=1), "unknown option 'nope'"),
    ],
)
def test_bad_config_json(run_dir, tmp_path, edit, message):
    run = copy_run(run_dir, tmp_path / "edited")
    config = json.loads((run / "config.json").read_text())
    edit(config)
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunError, match=message):
        load_model(run)


def test_missing_run_and_unparsable_config(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        load_model(tmp_path / "nothing")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text("{")
    with pytest.raises(RunError, match="config.json is corrupt"):
        load_model(tmp_path / "r")


def test_user_model_runs_need_trust(tmp_path):
    (tmp_path / "m.py").write_text(USER_MODEL)
    fit(f"{tmp_path / 'm.py'}:Gaussian", "moons", tmp_path / "run", steps=3, quiet=True)
    with pytest.raises(RunError, match="pass --trust-code"):
        load_model(tmp_path / "run")
    model = load_model(tmp_path / "run", trust_code=True)
    assert model.loc.shape == (2,)


def test_config_records_versions_and_data(run_dir):
    config = Run(run_dir).read_config()
    assert config["model"] == "vae" and config["data"]["source"] == "moons"
    assert {"torch", "pyro", "probgen", "seed"} <= set(config)
    assert config["preprocessor"]["kind"] == "standardize"
