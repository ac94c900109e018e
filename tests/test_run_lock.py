"""One writer per run directory, and ``--overwrite`` that never loses the old run.

Fault injection: the new fit fails on bad data, diverges, is interrupted, the swap itself fails,
or the process dies in the middle of the swap; each time the old run must stay whole and
loadable, and nothing of the failed attempt may be left beside it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

import probgen.run_lock as run_lock
import probgen.train as train_module
from probgen.atomic_files import write_atomic
from probgen.cli.main import main
from probgen.errors import RunError, TrainingDiverged
from probgen.run_lock import RunLock, writing_run
from probgen.runs import load_model
from probgen.train import TrainingInterrupted, fit

pytestmark = pytest.mark.timeout(120)

FLOW = {"hidden": "8", "transforms": "2"}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def snapshot(run):
    return {f.name: f.read_bytes() for f in sorted(run.iterdir())}


def leftovers(run):
    return sorted(f.name for f in run.parent.iterdir() if f.name.startswith(f".{run.name}."))


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data.npy"
    np.save(path, np.random.default_rng(0).standard_normal((60, 2)).astype(np.float32))
    return path


@pytest.fixture
def old_run(tmp_path, data):
    run = tmp_path / "run"
    fit("flow", str(data), run, steps=3, quiet=True, options=FLOW)
    (run / "metrics.json").write_text('{"stale": true}\n')
    return run


def assert_intact(run, before):
    assert snapshot(run) == before
    assert load_model(run).sample(2).shape == (2, 2)
    assert leftovers(run) == []


# -- the lock ---------------------------------------------------------------------------------


def test_a_second_writer_gets_one_line_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    with RunLock(run).acquire("probgen fit"):
        with pytest.raises(RunError, match=rf"being written by probgen fit \(pid {os.getpid()}"):
            RunLock(run).acquire()
    RunLock(run).acquire().release()  # free again once released
    assert leftovers(run) == []


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, data):
    run = tmp_path / "run"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".run.lock").write_text(f"probgen fit (pid {dead.pid} on here, since then)")
    fit("flow", str(data), run, steps=2, quiet=True, options=FLOW)
    assert load_model(run) is not None
    assert leftovers(run) == []


def test_concurrent_fits_never_both_succeed(tmp_path, data):
    """A real second process holds the lock; the fit here is refused, then succeeds once the
    holder is killed (the kernel drops its lock: no stale state to clean by hand)."""
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from probgen.run_lock import RunLock
                RunLock({str(run)!r}).acquire("probgen fit")
                print("held", flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = invoke("fit", "flow", "-d", data, "-o", run, "--steps", 2, "-q")
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert f"being written by probgen fit (pid {holder.pid}" in result.stderr
        assert not run.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    result = invoke("fit", "flow", "-d", data, "-o", run, "--steps", 2, "-q", "--set", "hidden=8")
    assert result.exit_code == 0, result.output
    assert leftovers(run) == []


def test_run_files_follow_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        write_atomic(tmp_path / "a.json", b"{}")
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o664
        os.umask(0o077)
        write_atomic(tmp_path / "b.json", b"{}")
        assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


# -- --overwrite ------------------------------------------------------------------------------


def test_overwrite_swaps_only_after_success_and_drops_stale_files(old_run, data):
    fit("flow", str(data), old_run, steps=4, quiet=True, options=FLOW, overwrite=True)
    assert not (old_run / "metrics.json").exists()
    assert '"step": 4' in (old_run / "train_state.json").read_text()
    assert leftovers(old_run) == []


def test_overwrite_with_bad_data_keeps_the_old_run(old_run, tmp_path):
    before = snapshot(old_run)
    np.save(tmp_path / "one.npy", np.zeros((1, 2), np.float32))
    result = invoke("fit", "flow", "-d", tmp_path / "one.npy", "-o", old_run, "-q", "--overwrite")
    assert result.exit_code == 1
    assert "only 1 training row" in result.stderr and "kept as it was" in result.stderr
    assert_intact(old_run, before)


@pytest.mark.parametrize(
    "fault", [TrainingDiverged("loss became nan at step 2"), KeyboardInterrupt]
)
def test_overwrite_that_fails_while_training_keeps_the_old_run(old_run, data, monkeypatch, fault):
    before = snapshot(old_run)
    real_train = train_module.train

    def failing(model, stream, optimizers, options, state, history, run=None, group=None):
        options.steps = 2
        real_train(model, stream, optimizers, options, state, history, run, group)
        if isinstance(fault, Exception):
            raise fault
        run.save_checkpoint(model, optimizers, state, history, stream.state_tensors())
        raise TrainingInterrupted(f"interrupted at step 2; checkpoint saved in {run.path} (...)")

    monkeypatch.setattr(train_module, "train", failing)
    with pytest.raises((TrainingDiverged, TrainingInterrupted)) as info:
        fit("flow", str(data), old_run, steps=5, quiet=True, options=FLOW, overwrite=True)
    assert "kept as it was" in str(info.value) and ".new-" not in str(info.value)
    assert_intact(old_run, before)


def test_a_failed_swap_puts_the_old_run_back(old_run, data, monkeypatch):
    before = snapshot(old_run)
    calls = []
    real_rename = os.rename

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new run into place
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(run_lock.os, "rename", rename)
    with pytest.raises(RunError, match="could not move the new run.*the old run is kept"):
        fit("flow", str(data), old_run, steps=2, quiet=True, options=FLOW, overwrite=True)
    monkeypatch.undo()
    assert_intact(old_run, before)


def test_a_crash_in_the_middle_of_the_swap_is_repaired_by_the_next_writer(old_run, data):
    """The process died after moving the old run aside and before moving the new one in."""
    before = snapshot(old_run)
    aside = old_run.parent / f".{old_run.name}.old-99999"
    staged = old_run.parent / f".{old_run.name}.new-99999"
    os.rename(old_run, aside)
    staged.mkdir()
    (staged / "config.json").write_text("{}")
    with writing_run(old_run, overwrite=False) as target:
        assert target == old_run
    assert_intact(old_run, before)
    # and the same when the new run had arrived: the old copy is the one removed
    os.mkdir(aside)
    with writing_run(old_run, overwrite=False):
        pass
    assert_intact(old_run, before)
