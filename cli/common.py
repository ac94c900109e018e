"""Options and helpers shared by several commands."""

from __future__ import annotations

import math
import os
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from probgen.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike, DTypeLike

    from probgen.data.datasets import Dataset
    from probgen.models.base import GenerativeModel

device_option = click.option(
    "--device", default="auto", show_default=True, help="auto, cpu or cuda."
)
trust_option = click.option(
    "--trust-code",
    is_flag=True,
    help="Allow a run made from a user model file to import that file's code.",
)
seed_option = click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
data_key_option = click.option("--data-key", default=None, help="Array to read from a .npz file.")
labels_option = click.option(
    "--labels",
    default=None,
    help="Labels: an .npz key, a CSV column (name or index), or a .npy/IDX labels file.",
)


def load_run_model(run: str, device: str, trust_code: bool) -> GenerativeModel:
    from probgen.runs import load_model
    from probgen.train import resolve_device

    return load_model(run, resolve_device(device), trust_code=trust_code)


def run_dataset(
    run: str,
    data: str | None,
    data_key: str | None = None,
    labels: str | None = None,
    as_test: bool = True,
) -> Dataset:
    """The dataset given with ``-d`` (a file: every row held out, unless ``as_test`` is
    false), else the run's own."""
    from probgen.data import load_dataset
    from probgen.evaluation import as_test_data
    from probgen.runs import Run
    from probgen.train import load_run_dataset

    if data is not None:
        dataset = load_dataset(data, data_key=data_key, labels=labels)
        return as_test_data(dataset) if as_test else dataset
    return load_run_dataset(Run(run).read_config()["data"])


def check_count(name: str, value: int | None, low: int = 1) -> None:
    """``--name`` is at least ``low`` (when given)."""
    if value is not None and value < low:
        raise ConfigError(f"{name} must be at least {low}, got {value}")


def check_output(path: str, suffixes: tuple[str, ...]) -> Path:
    """``-o`` ends in one of ``suffixes`` and names a place this user can write."""
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise ConfigError(f"{out}: output must end in {', '.join(suffixes)}")
    if out.exists() and out.is_dir():
        raise ConfigError(f"{out} is a directory")
    if out.exists() and not out.is_file():
        raise ConfigError(f"-o {out} exists and is not a regular file")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"-o {out}: {out.parent} is a file, not a folder") from None
    except OSError as exc:
        raise ConfigError(f"-o {out}: cannot create {out.parent} ({exc.strerror})") from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"-o {out}: cannot write in {out.parent} (permission denied)")
    return out


def check_disk_space(out: Path, nbytes: int) -> None:
    """Refuse, before drawing anything, an output larger than the free space where it goes."""
    from probgen.data.files import format_bytes

    try:
        free = shutil.disk_usage(out.parent).free
    except OSError:
        return
    if nbytes > free:
        raise ConfigError(
            f"-o {out} would need {format_bytes(nbytes)} but only {format_bytes(free)} "
            "is free there; ask for fewer samples"
        )


class ArrayWriter:
    """An ``.npy`` (or an ``.npz`` with one array ``x``) written chunk by chunk.

    The header promises ``(n, *shape)`` float32; rows are appended as they come, so memory does
    not grow with ``n``. Everything goes to a temporary file renamed into place by
    :meth:`close`; :meth:`discard` (or an error inside ``with``) removes it.
    """

    def __init__(
        self, out: Path, n: int, shape: tuple[int, ...], dtype: DTypeLike = np.float32
    ) -> None:
        self.out, self.n, self.shape = out, n, tuple(shape)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self.tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
        self._file = open(self.tmp, "wb")  # noqa: SIM115 - closed in close()/discard()
        self._zip = None
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (n, *self.shape),
        }
        if out.suffix.lower() == ".npz":
            self._zip = zipfile.ZipFile(self._file, "w")
            self._stream = self._zip.open("x.npy", "w", force_zip64=True)
        else:
            self._stream = self._file
        np.lib.format.write_array_header_2_0(self._stream, header)

    def write(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if tuple(rows.shape[1:]) != self.shape or self.rows + len(rows) > self.n:
            raise ValueError(f"rows of shape {rows.shape} do not fit {(self.n, *self.shape)}")
        self._stream.write(rows.tobytes())
        self.rows += len(rows)

    def close(self) -> None:
        if self.rows != self.n:
            self.discard()
            raise ValueError(f"wrote {self.rows} rows of the {self.n} promised")
        if self._zip is not None:
            self._stream.close()
            self._zip.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.tmp.replace(self.out)

    def discard(self) -> None:
        for closing in (self._stream, self._zip, self._file):
            try:
                if closing is not None:
                    closing.close()
            except (OSError, ValueError):
                pass
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> ArrayWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


def chunk_rows(event_shape: tuple[int, ...], budget: int = 1 << 20, most: int = 65_536) -> int:
    """Rows per chunk so a chunk holds about ``budget`` numbers (at least 1, at most ``most``)."""
    return max(1, min(most, budget // max(1, math.prod(event_shape))))


def save_array(
    out: Path, array: np.ndarray, labels: np.ndarray | None = None, **extra: ArrayLike
) -> None:
    """``.npy`` or ``.npz`` (with labels and extras), written through a temporary file."""
    tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
    if out.suffix.lower() == ".npz":
        arrays = {"x": array, **extra}
        if labels is not None:
            arrays["y"] = labels
        np.savez(tmp, **arrays)
    else:
        np.save(tmp, array)
    tmp.replace(out)


def save_samples_png(
    out: Path, samples: np.ndarray, model: GenerativeModel, reference: np.ndarray | None = None
) -> None:
    from probgen import plots

    if samples.ndim == 4:
        levels = model.data_info.levels
        vmax = float(levels - 1) if levels else None
        vmin = 0.0 if levels else None
        plots.image_grid(
            samples, out, vmin=vmin if vmin is not None else float(samples.min()), vmax=vmax
        )
    elif samples.ndim == 2 and samples.shape[1] == 2:
        plots.scatter(samples, out, reference=reference)
    else:
        raise DataError(
            f"PNG output needs images or 2-D points; these samples have shape "
            f"{samples.shape[1:]} (write .npy or .npz instead)"
        )


def sample_in_chunks(model: GenerativeModel) -> GenerativeModel:
    """``model`` with ``sample(n, ...)`` drawing ``n`` in chunks (see :func:`chunk_rows`).

    The draws are concatenated, so the result is as before, but the sampler's working memory
    (activations, chains) is that of one chunk, not of ``n`` at once. The override is on this
    instance only.
    """
    import functools

    import torch

    original = model.sample
    size = chunk_rows(tuple(model.data_info.event_shape))

    @functools.wraps(original)
    def sample(n: int, *args: Any, y: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        if n <= size:
            return original(n, *args, y=y, **kwargs)
        parts = [
            original(min(size, n - i), *args, y=None if y is None else y[i : i + size], **kwargs)
            for i in range(0, n, size)
        ]
        return torch.cat(parts)

    object.__setattr__(model, "sample", sample)
    return model
