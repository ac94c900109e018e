"""Refusing, before anything is allocated, a model too large for this machine's memory."""

from __future__ import annotations

from collections.abc import Callable

import torch

from probgen.data.files import available_memory, format_bytes
from probgen.errors import ConfigError


def check_model_fits(build: Callable[[], object], what: str = "the model", copies: int = 4) -> None:
    """Refuse, before anything is allocated, a model whose tensors would not fit in memory.

    ``build()`` is called under torch's ``meta`` device, which records shapes and allocates
    nothing; training holds about ``copies`` copies of the weights (weights, gradients and
    Adam's two moments). A model that cannot be built on ``meta`` is not checked here.
    """
    try:
        with torch.device("meta"):
            net = build()
        tensors = [*net.parameters(), *net.buffers()]
        size = sum(t.numel() * t.element_size() for t in tensors)
    except (RuntimeError, OverflowError) as exc:
        if "overflow" in str(exc):  # a tensor with more elements than an int64 counts
            raise ConfigError(
                f"{what} would hold tensors too large to index; choose smaller sizes"
            ) from None
        return  # the real build reports its own errors
    except Exception:  # noqa: BLE001 - the real build reports its own errors
        return
    need = copies * size
    free = available_memory()
    if need > free:
        raise ConfigError(
            f"{what} would hold {sum(t.numel() for t in tensors):,} numbers "
            f"({format_bytes(size)}; about {format_bytes(need)} in use), more than the "
            f"{format_bytes(free)} of memory available; choose smaller sizes"
        )
