"""Every bad input ends in one line on stderr and a non-zero exit, within seconds.

A table of cases: each is a command line (``{p}`` the folder of bad files, ``{flow}`` and
``{vae}`` two small fitted runs) and the text its one ``error: ...`` line must contain. To give
a new option the same treatment, add its bad values here. After each case the runs are checked
to be byte for byte as they were, and still loadable; a fit into a fresh ``-o`` that fails leaves
no directory behind.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import time
import warnings

import click
import numpy as np
import pytest
from click.testing import CliRunner

from probgen.cli.errors import ProbgenGroup
from probgen.cli.main import main
from probgen.errors import ConfigError
from probgen.runs import load_model

pytestmark = pytest.mark.timeout(120)

TINY_FLOW = ["--set", "hidden=8", "--set", "transforms=2"]
TINY_VAE = ["--set", "hidden=8", "--set", "latent_dim=2", "--set", "aggregate_components=2"]
SECONDS = 20  # "within seconds", with room for a slow CI machine


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_one_line_error(result, message):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]


def snapshot(run):
    return {f.name: f.read_bytes() for f in sorted(run.iterdir())}


def _write_config(run, change):
    config = json.loads((run / "config.json").read_text())
    change(config)
    (run / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The bad files and two small runs every case may use."""
    p = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    np.save(p / "data.npy", rng.standard_normal((60, 2)).astype(np.float32))
    flow = p / "flow"
    result = invoke("fit", "flow", "-d", p / "data.npy", "-o", flow, "--steps", 5, "-q", *TINY_FLOW)
    assert result.exit_code == 0, result.output
    vae = p / "vae"
    result = invoke("fit", "vae", "-d", p / "data.npy", "-o", vae, "--steps", 3, "-q", *TINY_VAE)
    assert result.exit_code == 0, result.output

    rows = "\n".join(f"{a},{b}" for a, b in rng.standard_normal((20, 2)))
    (p / "big.csv").write_text(f"{rows}\n1e39,0\n")
    np.save(p / "one.npy", np.zeros((1, 2), np.float32))
    np.save(p / "two.npy", np.zeros((2, 2), np.float32))
    os.mkfifo(p / "fifo")
    os.mkfifo(p / "pipe.npy")
    header = struct.pack(">BBBB3I", 0, 0, 0x08, 3, 2**31, 2**31, 2**31)
    (p / "huge-idx3-ubyte").write_bytes(header + bytes(16))
    (p / "afile").write_text("not a folder\n")
    (p / "folder.npy").mkdir()
    np.save(p / "str.npy", np.array(["a", "b"]))
    np.savez(p / "nan.npz", x=np.full((3, 2), np.nan, np.float32))
    np.savez(p / "labels3.npz", x=np.zeros((5, 2), np.float32), y=np.arange(3))
    np.save(p / "ones.npy", np.ones((5, 2), np.float32))
    np.save(p / "wide.npy", np.ones((5, 7), np.float32))

    for name, change in {
        "bad_activation": lambda c: c["model_config"].update(activation="bogus"),
        "bad_preprocessor": lambda c: c.update(preprocessor={"kind": "bogus"}),
        "bad_event_shape": lambda c: c["data_info"].update(event_shape=[-3]),
        "device_data": lambda c: c["data"].update(source="/dev/zero"),
    }.items():
        shutil.copytree(flow, p / name)
        _write_config(p / name, change)
    return {"p": p, "flow": flow, "vae": vae, "before": (snapshot(flow), snapshot(vae))}


# (id, command line, the text of its one error line)
CASES = [
    # data files
    ("csv-overflows-float32", "fit flow -d {p}/big.csv", "values overflow float32 (first 1e+39"),
    ("one-row", "fit flow -d {p}/one.npy", "only 1 training row"),
    ("two-rows", "fit vae -d {p}/two.npy", "only 1 training row"),
    ("fifo-data", "fit flow -d {p}/fifo", "is a FIFO, not a regular file"),
    ("device-data", "fit flow -d /dev/zero", "is a character device, not a regular file"),
    ("idx-header-2^93", "fit flow -d {p}/huge-idx3-ubyte", "IDX header promises shape (2147483648"),
    ("fifo-config", "fit flow -d {p}/data.npy -c {p}/fifo", "is a FIFO"),
    # fit options
    ("o-is-a-file", "fit flow -d {p}/data.npy -o {p}/afile", "is a file, not a run directory"),
    ("o-under-a-file", "fit flow -d {p}/data.npy -o {p}/afile/run", "is a file, not a folder"),
    ("latent-dim-1e11", "fit vae -d moons --set latent_dim=100000000000", "is too large"),
    ("hidden-1e9", "fit flow -d moons --set hidden=1000000000", "of memory available"),
    ("beta-inf", "fit vae -d moons --set beta=inf", "beta expects a finite number"),
    ("lr-inf", "fit flow -d moons --lr inf", "--lr must be a positive finite number"),
    ("lr-nan", "fit flow -d moons --lr nan", "--lr must be a positive finite number"),
    ("checkpoint-every-0", "fit flow -d moons --checkpoint-every 0", "--checkpoint-every must be"),
    ("nproc-0", "fit flow -d moons --nproc 0", "--nproc must be at least 1"),
    ("seed-negative", "fit flow -d moons --seed -1", "--seed must be in 0.."),
    ("batch-size-0", "fit flow -d moons --batch-size 0", "--batch-size must be at least 1"),
    ("resume-other-data", "fit flow -d circles -o {flow} --resume", "was fitted on"),
    ("resume-steps-below", "fit flow -d {p}/data.npy -o {flow} --resume --steps 2", "below that"),
    ("resume-and-overwrite", "fit flow -d moons -o {flow} --resume --overwrite", "not both"),
    ("fit-into-a-run", "fit flow -d {p}/data.npy -o {flow}", "is not empty"),
    # sample
    ("sample-n-negative", "sample {flow} -n -5 -o {p}/s.npy", "-n must be at least 1"),
    ("sample-steps-negative", "sample {flow} --steps -3 -o {p}/s.npy", "--steps must be at least"),
    ("sample-o-under-a-file", "sample {flow} -o {p}/afile/s.npy", "is a file, not a folder"),
    ("sample-o-a-folder", "sample {flow} -o {p}/folder.npy", "is a directory"),
    ("sample-png-10M", "sample {flow} -n 10000000 -o {p}/s.png", "a PNG shows at most"),
    ("sample-beyond-disk", "sample {flow} -n 1000000000000000 -o {p}/s.npy", "is free there"),
    ("run-bad-activation", "sample {p}/bad_activation -o {p}/s.npy", "does not build a model"),
    ("run-bad-preprocessor", "sample {p}/bad_preprocessor -o {p}/s.npy", "(preprocessor:"),
    ("run-bad-event-shape", "sample {p}/bad_event_shape -o {p}/s.npy", "(data_info:"),
    ("run-device-data-png", "sample {p}/device_data -n 4 -o {p}/s.png", "is a character device"),
    ("run-is-a-file", "sample {p}/afile -o {p}/s.npy", "is a file, not a run directory"),
    # decode
    ("decode-string-codes", "decode {vae} {p}/str.npy -o {p}/d.npy", "codes must be numbers"),
    ("decode-nan-codes", "decode {vae} {p}/nan.npz -o {p}/d.npy", "codes are NaN, infinite"),
    ("decode-3-labels-5-codes", "decode {vae} {p}/labels3.npz -o {p}/d.npy", "3 labels for 5"),
    ("decode-fifo", "decode {vae} {p}/pipe.npy -o {p}/d.npy", "is a FIFO"),
    ("decode-wrong-width", "decode {vae} {p}/wide.npy -o {p}/d.npy", "do not fit the model"),
    # evaluate / compare
    ("evaluate-particles-0", "evaluate {vae} --particles 0", "--particles must be at least 1"),
    ("evaluate-n-0", "evaluate {flow} -n 0", "-n must be at least 1"),
    ("evaluate-n-negative", "evaluate {flow} -n -5", "-n must be at least 1"),
    ("evaluate-samples-fifo", "evaluate --samples {p}/pipe.npy -d moons", "is a FIFO"),
    ("evaluate-samples-shape", "evaluate --samples {p}/ones.npy -d digits", "samples have shape"),
    ("compare-n-0", "compare {flow} -n 0 -o {p}/cmp", "-n must be at least 1"),
]


@pytest.mark.parametrize("command, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(env, command, message, request):
    p = env["p"]
    args = command.format(p=p, flow=env["flow"], vae=env["vae"]).split()
    fresh = None
    if args[0] == "fit":
        args.append("-q")
        if "-o" not in args:
            fresh = p / f"out-{request.node.callspec.id}"
            args += ["-o", str(fresh)]
    start = time.perf_counter()
    result = invoke(*args)
    assert time.perf_counter() - start < SECONDS
    assert_one_line_error(result, message)
    if fresh is not None:
        assert not fresh.exists(), "a failed fit left a run directory behind"
    assert (snapshot(env["flow"]), snapshot(env["vae"])) == env["before"]
    assert not [f for f in p.iterdir() if f.name.startswith((".flow.", ".vae."))]


def test_the_runs_are_still_loadable(env):
    for run in (env["flow"], env["vae"]):
        assert load_model(run).sample(3).shape == (3, 2)


def test_every_issue_case_is_in_the_table():
    """The table covers the issue's list; a new option's bad values belong here too."""
    ids = {c[0] for c in CASES}
    assert len(ids) == len(CASES)
    assert {"csv-overflows-float32", "idx-header-2^93", "beta-inf", "lr-inf"} <= ids


def test_flat_samples_of_the_datas_size_are_scored_with_a_range_warning(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "unit.npy", rng.random((100, 64)).astype(np.float32))
    np.save(tmp_path / "pixels.npy", rng.integers(0, 17, (100, 64)).astype(np.float32))
    result = invoke("evaluate", "--samples", tmp_path / "unit.npy", "-d", "digits", "-m", "kid")
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: "), result.stderr
    assert "[0, 16]" in lines[0] and "[" in lines[0].split("but")[0]
    assert "kid" in result.stdout
    result = invoke("evaluate", "--samples", tmp_path / "pixels.npy", "-d", "digits", "-m", "kid")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr


def test_an_error_comes_without_the_warnings_raised_before_it():
    @click.group(cls=ProbgenGroup)
    def app():
        pass

    @app.command()
    @click.option("--fail", is_flag=True)
    def noisy(fail):
        warnings.warn("a dependency's deprecation notice", DeprecationWarning, stacklevel=1)
        if fail:
            raise ConfigError("the one line")
        click.echo("done")

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, ["noisy", "--fail"])
    assert result.exit_code == 1
    assert result.stderr == "error: the one line\n"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, ["noisy"])
    assert result.exit_code == 0 and result.stdout == "done\n"
    assert any("deprecation notice" in str(w.message) for w in caught)


def test_sample_draws_in_chunks_and_streams_npy(env, tmp_path, monkeypatch):
    """Memory does not grow with -n: the model is asked for one chunk at a time."""
    from probgen.cli import sample as sample_cli
    from probgen.models.base import GenerativeModel

    asked = []
    original = GenerativeModel.sample

    def recording(self, n, *args, **kwargs):
        asked.append(n)
        return original(self, n, *args, **kwargs)

    monkeypatch.setattr(GenerativeModel, "sample", recording)
    monkeypatch.setattr(sample_cli, "chunk_rows", lambda shape: 1000)
    for suffix in (".npy", ".npz"):
        asked.clear()
        out = tmp_path / f"s{suffix}"
        result = invoke("sample", env["flow"], "-n", 3500, "-o", out)
        assert result.exit_code == 0, result.output
        assert asked == [1000, 1000, 1000, 500]
        x = np.load(out) if suffix == ".npy" else np.load(out)["x"]
        assert x.shape == (3500, 2) and x.dtype == np.float32 and np.isfinite(x).all()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["s.npy", "s.npz"]


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_place_is_one_line(env, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert_one_line_error(
            invoke("fit", "flow", "-d", "moons", "-o", locked / "run", "-q"), "cannot write in"
        )
        assert_one_line_error(
            invoke("sample", env["flow"], "-o", locked / "s.npy"), "cannot write in"
        )
    finally:
        locked.chmod(0o700)
