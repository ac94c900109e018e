"""Minibatches for the fit loop: shuffled, resumable, and the same across DDP ranks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.data import DistributedSampler

from probgen.distributed import ProcessGroup
from probgen.errors import ConfigError
from probgen.models.base import Batch

if TYPE_CHECKING:
    import numpy as np

    from probgen.data.preprocess import Preprocessor


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
        self.noisy = preprocessor.dequantize
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
