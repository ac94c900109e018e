"""Fitting: from a model name and a dataset to a trained model in a run directory.

:func:`fit` validates what it was asked, holds the run directory (:mod:`probgen.run_lock`),
starts or resumes a session, and hands it to the loop (:func:`probgen.loop.train`) or, for
a model fitted by MCMC, to its chains. The loop and the model building live in
:mod:`probgen.loop` and :mod:`probgen.build`; their public names are importable from here too.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from probgen.batches import BatchStream
from probgen.build import (
    build_checked,
    build_model,
    check_contract,
    resolve_device,
    seed_everything,
)
from probgen.config import MAX_INT, parse_set_options, read_config_file
from probgen.data.datasets import DATASETS, Dataset, check_trainable, load_dataset
from probgen.distributed import ProcessGroup, barrier, init_process_group, shutdown, synchronise
from probgen.errors import ConfigError, RunError
from probgen.loop import LoopOptions, TrainingInterrupted, train
from probgen.models.base import GenerativeModel
from probgen.models.registry import spec_of
from probgen.precision import check_precision, resolve_precision
from probgen.run_lock import writing_run
from probgen.runs import Run, TrainState, config_payload

__all__ = [
    "BatchStream",
    "LoopOptions",
    "TrainingInterrupted",
    "build_model",
    "check_contract",
    "fit",
    "load_run_dataset",
    "resolve_device",
    "seed_everything",
    "train",
]


def fit(
    model: str | type,
    data: str | Dataset,
    out: str | Path | None = None,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
    options: dict | list[str] | None = None,
    config_file: str | Path | None = None,
    data_key: str | None = None,
    labels: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    checkpoint_every: int = 1000,
    precision: str = "auto",
) -> GenerativeModel:
    """Fit ``model`` (a registered name, a ``FILE.py:NAME[,GUIDE]`` spec or a class) to ``data``.

    Args:
        model: which model.
        data: a dataset name or path (see :func:`probgen.data.load_dataset`), or a Dataset.
        out: the run directory to write; ``None`` keeps everything in memory.
        steps: the training budget in steps (default: the model's ``default_steps``).
        epochs: the training budget in epochs, instead of ``steps``.
        options: hyperparameters as a dict or ``["key=value", ...]``.
        config_file: a JSON file of hyperparameters, applied before ``options``.
        resume: continue the run in ``out`` from its last checkpoint (model, optimiser and RNG
            state); ``steps`` is then the total to reach.
        overwrite: replace an existing run in ``out`` instead of refusing.
        precision: ``fp32``, ``bf16`` (bfloat16 autocast of the training step) or ``auto``
            (:mod:`probgen.precision`: bf16 where the model and the hardware gain from it).

    Returns:
        The trained model, in eval mode, on ``device``.
    """
    _check_fit_arguments(steps, epochs, batch_size, checkpoint_every, lr, seed)
    if resume and overwrite:
        raise ConfigError("give --resume or --overwrite, not both")
    check_precision(precision)
    request = FitRequest(
        model=model,
        data=data,
        out=out,
        budget=(steps, epochs),
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=resolve_device(device),
        sources=_config_sources(options, config_file),
        data_options={"data_key": data_key, "labels": labels},
        resume=resume,
        overwrite=overwrite,
        loop=LoopOptions(0, checkpoint_every, quiet, precision=precision),
    )
    return _fit_in_run_directory(request)


def _config_sources(options: dict | list[str] | None, config_file: str | Path | None) -> tuple:
    """The hyperparameter sources in the order they apply: the config file, then ``--set``."""
    if isinstance(options, (list, tuple)):
        options = parse_set_options(options)
    file_options = read_config_file(config_file) if config_file else None
    return tuple(s for s in (file_options, options) if s)


def _fit_in_run_directory(request: FitRequest) -> GenerativeModel:
    """Join the process group (if any), hold the run directory, fit, and leave the group."""
    group = init_process_group(request.device)
    if group.active and request.device.type == "cuda":
        request.device = torch.device("cuda", group.local_rank)
    out = request.out
    try:
        # one writer per run directory; --overwrite writes beside the old run, swaps on success
        holding = (
            writing_run(out, overwrite=request.overwrite and not request.resume, lock=group.is_main)
            if out is not None
            else contextlib.nullcontext(None)
        )
        with holding as target:
            request.out = target
            return _fit(request, group)
    finally:
        shutdown(group)


def _check_fit_arguments(
    steps: int | None,
    epochs: int | None,
    batch_size: int,
    checkpoint_every: int,
    lr: float,
    seed: int,
) -> None:
    """One line for a budget, batch size, learning rate or seed :func:`fit` cannot use."""
    if steps is not None and epochs is not None:
        raise ConfigError("give --steps or --epochs, not both")
    for name, value in (
        ("steps", steps),
        ("epochs", epochs),
        ("batch-size", batch_size),
        ("checkpoint-every", checkpoint_every),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
        if value is not None and value > MAX_INT:
            raise ConfigError(f"--{name} {value} is too large (at most {MAX_INT:,})")
    try:
        lr_ok = math.isfinite(float(lr)) and float(lr) > 0
    except (TypeError, ValueError):
        lr_ok = False
    if not lr_ok:
        raise ConfigError(f"--lr must be a positive finite number, got {lr}")
    if not 0 <= seed < 2**32:
        raise ConfigError(f"--seed must be in 0..{2**32 - 1}, got {seed}")


@dataclass
class FitRequest:
    """Everything :func:`fit` was asked, validated, for :func:`_fit`."""

    model: str | type
    data: str | Dataset
    out: str | Path | None
    budget: tuple[int | None, int | None]
    batch_size: int
    lr: float
    seed: int
    device: torch.device
    sources: tuple[dict, ...]
    data_options: dict
    resume: bool
    overwrite: bool
    loop: LoopOptions


@dataclass
class Session:
    """A model ready to train: its data stream, optimisers, progress and run directory."""

    net: GenerativeModel
    dataset: Dataset
    stream: BatchStream
    optimizers: list
    state: TrainState
    history: list[dict]
    seed: int
    target: int
    precision: str


def _fit(r: FitRequest, group: ProcessGroup) -> GenerativeModel:
    run = Run(r.out) if r.out is not None else None
    session = _resume(r, run, group) if r.resume else _start(r, run, group)
    net, stream = session.net, session.stream
    barrier(group)  # every process has checked the run directory before rank 0 writes to it
    writer = run if group.is_main else None
    if writer is not None and not r.resume:
        name = spec_of(type(net), r.model if isinstance(r.model, str) else "")
        writer.write_config(config_payload(name, net, session.dataset.spec, session.seed))
    if net.fits_by_mcmc():
        return _sample_chains(net, stream, session, writer, group, r.loop.quiet)
    if writer is not None and not r.resume:
        writer.save_checkpoint(net, session.optimizers, session.state, [], stream.state_tensors())
    if group.active:
        synchronise(net, session.optimizers, group)
        seed_everything(session.seed + 7919 * group.rank)  # distinct noise, same weights
    session.state.target_steps = session.target
    r.loop.steps = session.target
    r.loop.precision = session.precision
    train(net, stream, session.optimizers, r.loop, session.state, session.history, writer, group)
    net.eval()
    # forked so a later --resume continues from the RNG state training ended with
    with (
        torch.no_grad(),
        torch.random.fork_rng(devices=[] if net.device.type == "cpu" else [net.device]),
    ):
        net.on_fit_end(stream.all_model_space(), stream.y)
    if writer is not None:
        writer.save_checkpoint(
            net, session.optimizers, session.state, session.history, stream.state_tensors()
        )
    return net


def _start(r: FitRequest, run: Run | None, group: ProcessGroup) -> Session:
    if run is not None and run.path.exists() and any(run.path.iterdir()) and not r.overwrite:
        raise RunError(f"{run.path} is not empty; choose another -o, --resume it, or --overwrite")
    dataset = r.data if isinstance(r.data, Dataset) else _load(r.data, r.data_options, r.seed)
    check_trainable(dataset)
    net = build_checked(r.model, dataset, r.sources, r.seed).to(r.device)
    stream = BatchStream(
        dataset.train, dataset.train_labels, net.preprocessor, r.batch_size, r.device, r.seed, group
    )
    net.setup(stream.setup_batch(), stream.n)
    optimizers = net.configure_optimizers(r.lr)
    precision = resolve_precision(r.loop.precision, net, r.device)
    target = _target_steps(*r.budget, stream, net.default_steps_for(precision))
    state = TrainState(0, 0, target, stream.global_batch_size, r.lr)
    return Session(net, dataset, stream, optimizers, state, [], r.seed, target, precision)


def _resume(r: FitRequest, run: Run | None, group: ProcessGroup) -> Session:
    if run is None or not run.exists():
        raise RunError(f"--resume: no run to resume in {r.out}")
    if r.sources:
        raise ConfigError("--resume continues a run with its stored options; drop -c/--set")
    stored = run.read_config()
    if isinstance(r.model, str) and stored["model"] != r.model:
        raise ConfigError(f"--resume: {r.out} holds a {stored['model']!r} run, not {r.model!r}")
    _check_same_data(r, stored.get("data") or {})
    state, meta = run.read_train_state()
    dataset = load_run_dataset(stored["data"])
    net = run.build_model(trust_code=True)
    run.load_weights(net)
    if net.fits_by_mcmc():
        raise ConfigError("--resume continues optimisation; an MCMC run is complete as it is")
    net.to(r.device)
    optimizers = net.configure_optimizers(state.lr)
    stream = BatchStream(
        dataset.train,
        dataset.train_labels,
        net.preprocessor,
        state.batch_size,
        r.device,
        stored["seed"],
        group,
    )
    stream.load_state_tensors(run.load_optimizers(optimizers, meta))
    history = run.read_history()
    precision = resolve_precision(r.loop.precision, net, r.device)
    default = state.target_steps or net.default_steps_for(precision)
    target = _target_steps(*r.budget, stream, default)
    if target < state.step:
        asked = f"--steps {target}" if r.budget[0] is not None else f"a target of {target} steps"
        raise ConfigError(
            f"--resume: {r.out} has done {state.step} steps; {asked} is below that "
            "(--steps is the total to reach)"
        )
    return Session(
        net, dataset, stream, optimizers, state, history, stored["seed"], target, precision
    )


def _check_same_data(r: FitRequest, spec: dict) -> None:
    """``--resume`` continues on the run's own data: another ``-d`` is refused."""
    if isinstance(r.data, Dataset) or not spec.get("source"):
        return
    stored, given = str(spec["source"]), str(r.data)
    if given in DATASETS or stored in DATASETS:
        same = given == stored
    else:
        try:
            same = Path(given).resolve() == Path(stored).resolve()
        except OSError:
            same = False
    options = r.data_options
    for key in ("data_key", "labels"):
        if same and options.get(key) is not None and options[key] != spec.get(key):
            raise ConfigError(
                f"--resume: {r.out} was fitted with --{key.replace('_', '-')} "
                f"{spec.get(key)!r}, not {options[key]!r}"
            )
    if not same:
        raise ConfigError(
            f"--resume: {r.out} was fitted on {stored}, not {given}; "
            f"resume with -d {stored} (or fit a new run)"
        )


def _sample_chains(
    net: GenerativeModel,
    stream: BatchStream,
    session: Session,
    writer: Run | None,
    group: ProcessGroup,
    quiet: bool,
) -> GenerativeModel:
    """Fit by MCMC: chains over all training data, saved with their diagnostics."""
    if group.active:
        raise ConfigError("--mcmc runs in one process; drop --nproc / torchrun")
    net.eval()
    start = time.perf_counter()
    diagnostics = net.run_mcmc(stream.all_model_space(), stream.y, quiet)
    session.history.append({"step": 0, "epoch": 0, "wall_time": time.perf_counter() - start})
    if writer is not None:
        writer.write_diagnostics(diagnostics)
        writer.save_checkpoint(
            net, session.optimizers, session.state, session.history, stream.state_tensors()
        )
    return net


def _target_steps(steps: int | None, epochs: int | None, stream: BatchStream, default: int) -> int:
    if steps is not None:
        return steps
    if epochs is not None:
        return epochs * stream.steps_per_epoch
    return default


def _load(data: str, options: dict, seed: int) -> Dataset:
    return load_dataset(data, data_key=options["data_key"], labels=options["labels"], seed=seed)


def load_run_dataset(spec: dict) -> Dataset:
    """The dataset a run was fitted on, from the spec stored in its ``config.json``."""
    return load_dataset(
        spec["source"],
        data_key=spec.get("data_key"),
        labels=spec.get("labels"),
        seed=spec.get("seed", 0),
    )
