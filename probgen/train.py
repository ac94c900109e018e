"""The one fit loop: every family trains here through the model contract.

:func:`fit` goes from a model name and a dataset to a trained model in a run directory;
:func:`train` is the loop itself for a model and data already built. The loop knows no family
by name: it asks the model for its optimisers and calls ``model.train_step`` on batches.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyro
import torch
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from probgen.config import MAX_INT, build_config, parse_set_options, read_config_file
from probgen.data.datasets import DATASETS, Dataset, check_trainable, fit_preprocessor, load_dataset
from probgen.data.preprocess import Identity, Preprocessor
from probgen.distributed import (
    ProcessGroup,
    all_reduce_mean,
    barrier,
    init_process_group,
    shutdown,
    synchronise,
)
from probgen.errors import ConfigError, ProbgenError, RunError, TrainingDiverged
from probgen.models.base import Batch, DataInfo, GenerativeModel
from probgen.models.registry import fit_target, is_builtin, resolve_model, spec_of
from probgen.runs import Run, TrainState, check_model_fits, config_payload, writing_run

if TYPE_CHECKING:
    import numpy as np


class TrainingInterrupted(ProbgenError):
    """Training stopped on Ctrl-C after saving a checkpoint."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present; asking for an absent CUDA device is an error."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available on this machine")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda") from None


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), NumPy and Python's ``random`` through Pyro."""
    pyro.set_rng_seed(seed)


class BatchStream:
    """Shuffled minibatches in model space, drawn without replacement epoch by epoch.

    Indices come from a :class:`~torch.utils.data.DistributedSampler` (one replica when
    training alone): a permutation seeded by ``seed + epoch``, so the order is reproducible,
    resumable from (epoch, position), and the same global batches are seen whatever the
    number of processes. Every example is seen once per epoch; the last batch holds the
    remainder. Dequantisation noise (when the preprocessor has it) is drawn per batch.
    """

    def __init__(
        self,
        x: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor | None,
        preprocessor: Preprocessor,
        batch_size: int,
        device: torch.device,
        seed: int,
        group: ProcessGroup | None = None,
    ) -> None:
        group = group or ProcessGroup()
        x = torch.as_tensor(x).to(device)
        self.noisy = getattr(preprocessor, "dequantize", False)
        self.preprocessor = preprocessor
        self.x = x if self.noisy else preprocessor.forward(x)
        self.y = torch.as_tensor(y).to(device) if y is not None else None
        self.n = len(self.x)
        self.global_batch_size = min(batch_size, self.n)
        if self.global_batch_size % group.world_size:
            raise ConfigError(
                f"--batch-size {self.global_batch_size} must divide evenly among "
                f"{group.world_size} processes"
            )
        self.batch_size = self.global_batch_size // group.world_size
        self.sampler = DistributedSampler(
            range(self.n),
            num_replicas=group.world_size,
            rank=group.rank,
            shuffle=True,
            seed=seed,
        )
        self._indices = torch.empty(0, dtype=torch.long)
        self._pos = 0
        self.epochs_done = 0

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def _start_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self._indices = torch.tensor(list(self.sampler), device=self.x.device)

    def next(self) -> Batch:
        if self._pos >= len(self._indices):
            if len(self._indices):
                self.epochs_done += 1
            self._start_epoch(self.epochs_done)
            self._pos = 0
        idx = self._indices[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        x = self.x[idx]
        if self.noisy:
            x = self.preprocessor.forward(x, train=True)
        return Batch(x, self.y[idx] if self.y is not None else None, idx)

    def setup_batch(self) -> Batch:
        """The first *global* batch of epoch 0, for ``model.setup``: the same shuffled rows on
        every process, whatever their number, so data-fitted state (an EBM's box, a score
        model's sigma ladder, a program's data-derived initial values) is identical on every
        rank and to a one-process run, and no sorted file biases it."""
        generator = torch.Generator().manual_seed(self.sampler.seed)  # DistributedSampler's
        order = torch.randperm(self.n, generator=generator)
        idx = order[: self.global_batch_size].to(self.x.device)
        x = self.x[idx]
        if self.noisy:
            x = self.preprocessor.forward(x)
        return Batch(x, self.y[idx] if self.y is not None else None, idx)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Where the stream stands, saved with checkpoints so a resumed run continues exactly."""
        started = len(self._indices) > 0
        return {
            "batches.epoch": torch.tensor(self.epochs_done),
            "batches.position": torch.tensor(self._pos if started else -1),
        }

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if "batches.epoch" in tensors:
            self.epochs_done = int(tensors["batches.epoch"])
            position = int(tensors["batches.position"])
            if position >= 0:
                self._start_epoch(self.epochs_done)
                self._pos = position

    def all_model_space(self) -> torch.Tensor:
        """The whole set in model space (dequantised at the bin centres)."""
        return self.preprocessor.forward(self.x) if self.noisy else self.x


@dataclass
class LoopOptions:
    """How long and how loudly to train."""

    steps: int
    checkpoint_every: int = 1000
    quiet: bool = False
    log_every: int = 1
    precision: str = "fp32"


def _scalar(value: torch.Tensor | float) -> float:
    return float(value.item() if torch.is_tensor(value) else value)


def train(
    model: GenerativeModel,
    stream: BatchStream,
    optimizers: list[torch.optim.Optimizer],
    options: LoopOptions,
    state: TrainState,
    history: list[dict],
    run: Run | None = None,
    group: ProcessGroup | None = None,
) -> list[dict]:
    """Run ``model.train_step`` until ``options.steps``; checkpoint, guard and log on the way.

    A non-finite loss stops training with :class:`TrainingDiverged` and leaves the last good
    checkpoint on disk; Ctrl-C saves a checkpoint and raises :class:`TrainingInterrupted`.
    Across processes the logged loss is the mean over processes, so all stop together; only
    the process given ``run`` (rank 0) writes.
    """
    model.train()
    start_wall = time.perf_counter() - (history[-1]["wall_time"] if history else 0.0)
    bar = tqdm(
        total=options.steps,
        initial=state.step,
        disable=options.quiet or not (group is None or group.is_main),
        file=sys.stderr,
        unit="step",
        dynamic_ncols=True,
        mininterval=0.5,
    )
    last_saved = state.step
    # bf16 autocast runs matrix products in bfloat16 and keeps reductions, losses and the
    # optimiser's master weights in float32 (PyTorch's autocast op lists)
    autocast = (
        torch.autocast(stream.x.device.type, dtype=torch.bfloat16)
        if options.precision == "bf16"
        else contextlib.nullcontext()
    )

    def checkpoint() -> None:
        nonlocal last_saved
        if run is not None:
            state.epoch = stream.epochs_done
            run.save_checkpoint(model, optimizers, state, history, stream.state_tensors())
            last_saved = state.step

    try:
        while state.step < options.steps:
            batch = stream.next()
            try:
                with autocast:
                    logs = model.train_step(batch, optimizers, state.step)
            except (ValueError, RuntimeError) as exc:
                # NaN weights surface as a distribution's failed argument check, not a NaN loss
                if all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                    raise
                raise TrainingDiverged(
                    f"the weights became NaN or infinite before step {state.step + 1} "
                    f"({type(exc).__name__}); training stopped"
                ) from None
            if group is not None and group.active:
                logs["loss"] = all_reduce_mean(logs["loss"], group)
            loss = _scalar(logs["loss"])
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss} at step {state.step + 1}; training stopped"
                )
            state.step += 1
            if state.step % options.log_every == 0 or state.step == options.steps:
                row = {
                    "step": state.step,
                    "epoch": stream.epochs_done,
                    "wall_time": round(time.perf_counter() - start_wall, 4),
                }
                row.update({k: loss if k == "loss" else _scalar(v) for k, v in logs.items()})
                history.append(row)
            bar.update(1)
            if state.step % 25 == 0 or state.step == options.steps:
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            if options.checkpoint_every and state.step % options.checkpoint_every == 0:
                checkpoint()
    except TrainingDiverged as exc:
        # every divergence (loss, weights, a family's own guard) names what is kept on disk
        if run is not None:
            raise TrainingDiverged(
                f"{exc}; the last good checkpoint (step {last_saved}) is kept in {run.path}"
            ) from None
        raise
    except KeyboardInterrupt:
        checkpoint()
        where = f"; checkpoint saved in {run.path} (continue with --resume)" if run else ""
        raise TrainingInterrupted(f"interrupted at step {state.step}{where}") from None
    finally:
        bar.close()
    state.epoch = stream.epochs_done
    return history


def build_model(
    model: str | type, dataset: Dataset, config_sources: tuple[dict, ...] = (), seed: int = 0
) -> GenerativeModel:
    """A fresh model for ``dataset``: its config validated, its preprocessor fitted.

    ``model`` is a registered name, a spec (``FILE.py:NAME[,GUIDE]``), a model class or a Pyro
    program's callable or class (:func:`~probgen.models.registry.fit_target`).
    """
    target = fit_target(model)
    cls = resolve_model(target) if isinstance(target, str) else target
    check_contract(cls)
    config = build_config(cls.Config, *config_sources)
    preprocessor = (
        fit_preprocessor(dataset, cls.image_range, cls.dequantize)
        if cls.wants_preprocessing(config)
        else Identity()
    )
    data_info = DataInfo(
        event_shape=dataset.event_shape,
        kind=dataset.kind,
        num_classes=dataset.num_classes,
        value_range=tuple(cls.image_range) if dataset.kind == "image" else None,
        levels=dataset.levels,
    )
    seed_everything(seed)
    try:
        net = cls(config, data_info)
    except ValueError as exc:
        raise ConfigError(f"{spec_of(cls, str(model))}: {exc}") from None
    net.preprocessor = preprocessor
    return net


def check_contract(cls: type) -> None:
    """One line, before any run directory is written, when a model class cannot be fitted."""
    if not (isinstance(cls, type) and issubclass(cls, GenerativeModel)):
        raise ConfigError(f"{cls!r} is not a probgen model")
    missing = []
    if cls.loss is GenerativeModel.loss and cls.train_step is GenerativeModel.train_step:
        missing.append("loss() (or train_step())")
    if cls.generate is GenerativeModel.generate:
        missing.append("generate()")
    if missing:
        raise ConfigError(
            f"{cls.__name__} defines no {' and no '.join(missing)}: a GenerativeModel subclass "
            "must, or give its model/guide as a plain Pyro program (FILE.py:model,guide)"
        )


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
    precision: str = "fp32",
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
        precision: ``fp32``, or ``bf16`` for bfloat16 autocast of the training step.

    Returns:
        The trained model, in eval mode, on ``device``.
    """
    dev = resolve_device(device)
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
    if resume and overwrite:
        raise ConfigError("give --resume or --overwrite, not both")
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"--precision must be fp32 or bf16, got {precision!r}")
    if isinstance(options, (list, tuple)):
        options = parse_set_options(options)
    sources = tuple(
        s for s in (read_config_file(config_file) if config_file else None, options) if s
    )
    group = init_process_group(dev)
    if group.active and dev.type == "cuda":
        dev = torch.device("cuda", group.local_rank)
    request = FitRequest(
        model=model,
        data=data,
        out=out,
        budget=(steps, epochs),
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=dev,
        sources=sources,
        data_options={"data_key": data_key, "labels": labels},
        resume=resume,
        overwrite=overwrite,
        loop=LoopOptions(
            steps=0, checkpoint_every=checkpoint_every, quiet=quiet, precision=precision
        ),
    )
    try:
        # one writer per run directory; --overwrite writes beside the old run, swaps on success
        holding = (
            writing_run(out, overwrite=overwrite and not resume, lock=group.is_main)
            if out is not None
            else contextlib.nullcontext(None)
        )
        with holding as target:
            request.out = target
            return _fit(request, group)
    finally:
        shutdown(group)


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
    net = _build_checked(r, dataset).to(r.device)
    stream = BatchStream(
        dataset.train, dataset.train_labels, net.preprocessor, r.batch_size, r.device, r.seed, group
    )
    net.setup(stream.setup_batch(), stream.n)
    optimizers = net.configure_optimizers(r.lr)
    target = _target_steps(*r.budget, stream, net.default_steps)
    state = TrainState(0, 0, target, stream.global_batch_size, r.lr)
    return Session(net, dataset, stream, optimizers, state, [], r.seed, target)


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
    target = _target_steps(*r.budget, stream, state.target_steps or net.default_steps)
    if target < state.step:
        asked = f"--steps {target}" if r.budget[0] is not None else f"a target of {target} steps"
        raise ConfigError(
            f"--resume: {r.out} has done {state.step} steps; {asked} is below that "
            "(--steps is the total to reach)"
        )
    return Session(net, dataset, stream, optimizers, state, history, stored["seed"], target)


def _build_checked(r: FitRequest, dataset: Dataset) -> GenerativeModel:
    """``build_model``, after checking (allocating nothing) that the model fits in memory.

    A built-in family whose options do not build (a size too large for torch, a negative
    width) is one line; a user's own model keeps its traceback, which is what its author needs.
    """
    builtin = isinstance(r.model, str) and is_builtin(r.model)
    if builtin:
        check_model_fits(
            lambda: build_model(r.model, dataset, r.sources, r.seed),
            f"{r.model} with these options",
        )
    try:
        return build_model(r.model, dataset, r.sources, r.seed)
    except (RuntimeError, MemoryError, OverflowError, TypeError, ValueError) as exc:
        if not builtin:
            raise
        text = str(exc).strip().splitlines()
        raise ConfigError(
            f"{r.model}: these options do not build a model "
            f"({type(exc).__name__}: {text[0] if text else ''})"
        ) from None


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
