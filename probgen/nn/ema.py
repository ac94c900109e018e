"""Exponential moving average of a network's weights (Polyak averaging)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA(nn.Module):
    """A frozen copy of ``module`` whose weights track ``w_ema <- d w_ema + (1 - d) w``.

    Held as a submodule of the model, so the averaged weights are saved and loaded with the
    run; sample with ``ema.module`` rather than the raw network. The copy is never trained, so
    it stays in eval mode whatever mode the model is put in (no dropout when sampling).
    """

    def __init__(self, module: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        self.decay = float(decay)
        self.module = copy.deepcopy(module)
        self.module.requires_grad_(False)
        self.module.eval()

    def train(self, mode: bool = True) -> EMA:
        super().train(mode)
        self.module.eval()
        return self

    def decay_at(self, step: int | None) -> float:
        """The decay used at training ``step``: ``min(d, (1 + step) / (10 + step))``, or ``d``
        itself when ``step`` is None.

        The ramp is TensorFlow's ``ExponentialMovingAverage(num_updates=step)``; Tarvainen &
        Valpola 2017 ramp the same way with ``1 - 1 / (step + 1)``. Without it the average of a
        short run still carries ``d^steps`` of the random initial weights (5% after 3,000
        steps at ``d = 0.999``); with it, after ``t`` updates, update ``s`` weighs about
        ``9 (s + 6)^8 / (t + 6)^9``, an average over roughly the last tenth of the run, until
        that window reaches ``1 / (1 - d)`` (at ``t`` near ``9 / (1 - d)``).
        """
        if step is None:
            return self.decay
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, module: nn.Module, step: int | None = None) -> None:
        """Move the average towards ``module``'s weights with :meth:`decay_at` ``(step)``."""
        decay = self.decay_at(step)
        for ema_p, p in zip(self.module.parameters(), module.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.module.buffers(), module.buffers()):
            ema_b.copy_(b)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)
