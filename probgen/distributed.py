"""Multi-process training with torch.distributed: process groups, DDP and sharded batches.

Launched by ``torchrun --nproc-per-node N -m probgen fit ...`` (or ``probgen fit --nproc N``,
which runs that command), each process reads its rank from the environment torchrun sets. The
model's loss is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, so gradients
are averaged across processes during ``backward``; each process draws its own shard of every
global batch through a :class:`~torch.utils.data.DistributedSampler`. Rank 0 writes the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
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
    """``forward(x, y, index) = model.loss(Batch(x, y, index))``: what DDP wraps and syncs."""

    def __init__(self, model: GenerativeModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, index: torch.Tensor | None = None
    ) -> torch.Tensor:
        # tells the optimisers' pre-step hooks that DDP has already averaged these gradients
        self.model.__dict__["_gradients_synchronised"] = True
        return self.model.loss(Batch(x, y, index))


def synchronise(
    model: GenerativeModel, optimizers: list[torch.optim.Optimizer], group: ProcessGroup
) -> None:
    """Make every process take the same update.

    The model's default ``train_step`` (and any that calls ``distributed_loss``) runs its loss
    through :class:`DistributedDataParallel`, which broadcasts rank 0's parameters and buffers
    at construction and averages gradients during ``backward``. Families whose step is not one
    loss (the GAN's two games, the EBM's contrastive step, diffusion's clipped step) compute
    their own gradients; for them each optimiser averages its gradients across processes
    (``all_reduce``) in a pre-step hook, the same arithmetic DDP performs. All parameters must
    exist before this call; ``find_unused_parameters`` is on because some options leave
    parameters out of the loss (a Bernoulli VAE's observation scale).
    """
    if not group.active:
        return
    device_ids = [model.device.index] if model.device.type == "cuda" else None
    ddp = DistributedDataParallel(
        LossModule(model), device_ids=device_ids, find_unused_parameters=True
    )
    model.use_distributed_loss(ddp)
    for optimizer in optimizers:
        optimizer.register_step_pre_hook(_average_gradients_hook(model, group))


def _average_gradients_hook(
    model: GenerativeModel, group: ProcessGroup
) -> Callable[[torch.optim.Optimizer, tuple, dict], None]:
    def hook(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        if model.__dict__.pop("_gradients_synchronised", False):
            return
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        if grads:
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            flat /= group.world_size
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()

    return hook


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
