"""The training loop: ``model.train_step`` on batches, with checkpoints, guards and a log.

The loop knows no family by name: it asks the model for a step on a batch and the optimisers
it was given, and keeps a history row per logged step.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from probgen.distributed import ProcessGroup, all_reduce_mean
from probgen.errors import ProbgenError, TrainingDiverged

if TYPE_CHECKING:
    from probgen.batches import BatchStream
    from probgen.models.base import Batch, GenerativeModel
    from probgen.runs import Run, TrainState


class TrainingInterrupted(ProbgenError):
    """Training stopped on Ctrl-C after saving a checkpoint."""


@dataclass
class LoopOptions:
    """How long and how loudly to train."""

    steps: int
    checkpoint_every: int = 1000
    quiet: bool = False
    log_every: int = 1
    precision: str = "fp32"  # fp32 or bf16, resolved from "auto" by the caller


def _scalar(value: torch.Tensor | float) -> float:
    return float(value.item() if torch.is_tensor(value) else value)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    # bf16 autocast runs matrix products in bfloat16 and keeps reductions, losses and the
    # optimiser's master weights in float32 (PyTorch's autocast op lists)
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _guarded_step(
    model: GenerativeModel,
    batch: Batch,
    optimizers: list,
    step: int,
    autocast: contextlib.AbstractContextManager,
) -> dict:
    """One ``train_step``; NaN weights become :class:`TrainingDiverged`, other errors pass."""
    try:
        with autocast:
            return model.train_step(batch, optimizers, step)
    except (ValueError, RuntimeError) as exc:
        # NaN weights surface as a distribution's failed argument check, not a NaN loss
        if all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise
        raise TrainingDiverged(
            f"the weights became NaN or infinite before step {step + 1} "
            f"({type(exc).__name__}); training stopped"
        ) from None


@dataclass
class _Checkpointer:
    """Saves the run (rank 0 only) and remembers the last step saved, for the error text."""

    run: Run | None
    model: GenerativeModel
    optimizers: list
    state: TrainState
    history: list[dict]
    stream: BatchStream

    def __post_init__(self) -> None:
        self.last_saved = self.state.step

    def save(self) -> None:
        if self.run is not None:
            self.state.epoch = self.stream.epochs_done
            self.run.save_checkpoint(
                self.model, self.optimizers, self.state, self.history, self.stream.state_tensors()
            )
            self.last_saved = self.state.step


def _progress_bar(options: LoopOptions, start: int, group: ProcessGroup | None) -> tqdm:
    return tqdm(
        total=options.steps,
        initial=start,
        disable=options.quiet or not (group is None or group.is_main),
        file=sys.stderr,
        unit="step",
        dynamic_ncols=True,
        mininterval=0.5,
    )


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
    bar = _progress_bar(options, state.step, group)
    saver = _Checkpointer(run, model, optimizers, state, history, stream)
    autocast = _autocast(stream.x.device, options.precision)
    try:
        while state.step < options.steps:
            logs = _guarded_step(model, stream.next(), optimizers, state.step, autocast)
            if group is not None and group.active:
                logs["loss"] = all_reduce_mean(logs["loss"], group)
            loss = _scalar(logs["loss"])
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss} at step {state.step + 1}; training stopped"
                )
            state.step += 1
            if state.step % options.log_every == 0 or state.step == options.steps:
                row = {"step": state.step, "epoch": stream.epochs_done}
                row["wall_time"] = round(time.perf_counter() - start_wall, 4)
                row.update({k: loss if k == "loss" else _scalar(v) for k, v in logs.items()})
                history.append(row)
            bar.update(1)
            if state.step % 25 == 0 or state.step == options.steps:
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            if options.checkpoint_every and state.step % options.checkpoint_every == 0:
                saver.save()
    except TrainingDiverged as exc:
        # every divergence (loss, weights, a family's own guard) names what is kept on disk
        if run is None:
            raise
        raise TrainingDiverged(
            f"{exc}; the last good checkpoint (step {saver.last_saved}) is kept in {run.path}"
        ) from None
    except KeyboardInterrupt:
        saver.save()
        where = f"; checkpoint saved in {run.path} (continue with --resume)" if run else ""
        raise TrainingInterrupted(f"interrupted at step {state.step}{where}") from None
    finally:
        bar.close()
    state.epoch = stream.epochs_done
    return history
