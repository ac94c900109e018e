"""Multi-process training with torch.distributed: process groups, DDP and sharded batches.

Launched by ``torchrun --nproc-per-node N -m probgen fit ...`` (or ``probgen fit --nproc N``,
which runs that command), each process reads its rank from the environment torchrun sets. The
model's loss is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, so gradients
are averaged across processes during ``backward``; each process draws its own shard of every
global batch through a :class:`~torch.utils.data.DistributedSampler`. Rank 0 writes the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from probgen.models.base import Batch, GenerativeModel


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_process_group(device: torch.device) -> ProcessGroup:
    """Join the group torchrun set up: NCCL on GPUs, gloo on CPUs. One process: no group."""
    if not launched_by_torchrun():
        return ProcessGroup()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return ProcessGroup(dist.get_rank(), dist.get_world_size(), int(os.environ["LOCAL_RANK"]))


def shutdown(group: ProcessGroup) -> None:
    if group.active and dist.is_initialized():
        dist.destroy_process_group()


class LossModule(nn.Module):
    """``forward(x, y) = model.loss(Batch(x, y))``: the module DDP wraps and synchronises."""

    def __init__(self, model: GenerativeModel):
        super().__init__()
        self.model = model

    def forward(self, x, y=None):
        return self.model.loss(Batch(x, y))


def wrap_loss(model: GenerativeModel, group: ProcessGroup) -> None:
    """Route the model's default ``train_step`` through DDP over its loss.

    DDP broadcasts rank 0's parameters and buffers, so every process starts identical; all
    parameters must exist before this call. ``find_unused_parameters`` is on because some
    options leave parameters out of the loss (a Bernoulli VAE's observation scale).
    """
    if not group.active:
        return
    device_ids = [model.device.index] if model.device.type == "cuda" else None
    ddp = DistributedDataParallel(
        LossModule(model), device_ids=device_ids, find_unused_parameters=True
    )
    model.use_distributed_loss(ddp)


def barrier(group: ProcessGroup) -> None:
    if group.active:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, group: ProcessGroup) -> torch.Tensor:
    """The mean of ``value`` over processes (itself when training alone)."""
    if not group.active:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / group.world_size
