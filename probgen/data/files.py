"""Readers for the files users bring: ``.npy``, ``.npz``, ``.csv``, MNIST IDX and image folders.

Each reader returns ``(array, labels_or_None)`` with examples along axis 0, or raises
:class:`~probgen.errors.DataError` with one line saying what is wrong and where.
"""

from __future__ import annotations

import csv
import gzip
import os
import stat
import struct
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from probgen.errors import DataError

if TYPE_CHECKING:
    from numpy.lib.npyio import NpzFile

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_regular(path: str | Path, what: str = "data", folder: bool = False) -> Path:
    """``path`` if it names a regular file (or a folder, when ``folder``), after links.

    FIFOs, devices and sockets would hang a reader or feed it without end (``/dev/zero``), so
    they are refused with one line before anything is read.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(f"{what} file {path} does not exist") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISREG(mode) or (folder and stat.S_ISDIR(mode)):
        return path
    if stat.S_ISDIR(mode):
        raise DataError(f"{what} file {path} is a directory")
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise DataError(f"{path} is {kind}, not a regular file; give the {what} as a file")


def available_memory() -> int:
    """Bytes of memory available to allocate now (MemAvailable; else physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} EB"  # pragma: no cover


def is_idx(path: Path) -> bool:
    """MNIST's naming: ``...-idx3-ubyte``, ``....idx1-ubyte``, ``.idx``, optionally ``.gz``."""
    name = path.name.lower().removesuffix(".gz")
    return "idx" in name and (name.endswith("ubyte") or name.endswith(".idx"))


def _check_npy_header(path: Path) -> None:
    """Compare the shape an ``.npy`` header promises with the file's size, before reading."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(f)
            else:
                return  # let numpy judge versions it knows and this does not
            offset = f.tell()
    except (ValueError, OSError, SyntaxError):
        return  # numpy's own reader gives the message
    if dtype.hasobject:
        return
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    held = path.stat().st_size - offset
    if expected > held:
        raise DataError(
            f"{path}: the .npy header promises shape {tuple(shape)} ({format_bytes(expected)}) "
            f"but the file holds {format_bytes(held)}"
        )


def read_npy(path: Path) -> np.ndarray:
    path = check_regular(path)
    _check_npy_header(path)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path}: not a numeric .npy array ({exc})") from None
    except MemoryError:
        raise DataError(f"{path}: the array does not fit in memory") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def read_npz(
    path: Path, key: str | None, labels_key: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    path = check_regular(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read .npz ({exc})") from None
    with archive:
        try:
            return _npz_arrays(path, archive, key, labels_key)
        except MemoryError:
            raise DataError(f"{path}: the arrays do not fit in memory") from None
        except (ValueError, OSError, EOFError) as exc:
            raise DataError(f"{path}: cannot read .npz ({exc})") from None


def _npz_arrays(
    path: Path, archive: NpzFile, key: str | None, labels_key: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    keys = list(archive.keys())
    if not keys:
        raise DataError(f"{path}: the .npz holds no arrays")
    if key is None:
        candidates = [k for k in keys if k not in ("y", "labels")]
        if len(candidates) != 1:
            raise DataError(
                f"{path} holds several arrays ({', '.join(keys)}); choose one with --data-key"
            )
        key = candidates[0]
    if key not in keys:
        raise DataError(f"{path} has no array {key!r}; it holds: {', '.join(keys)}")
    labels = None
    if labels_key is not None:
        if labels_key not in keys:
            raise DataError(
                f"{path} has no labels array {labels_key!r}; it holds: {', '.join(keys)}"
            )
        labels = archive[labels_key]
    return archive[key], labels


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv(path: Path, labels_column: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Numeric CSV; a first row with any non-numeric cell is a header."""
    path = check_regular(path)
    try:
        with open(path, newline="") as f:
            rows = [row for row in csv.reader(f) if row and any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read as CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path} has no rows")
    header = None
    if not all(_is_number(c) for c in rows[0]):
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise DataError(f"{path} has a header but no data rows")
    width = len(header) if header else len(rows[0])
    first_line = 2 if header else 1
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataError(
                f"{path}: line {i + first_line} has {len(row)} values, "
                f"expected {width} (ragged rows)"
            )
    label_index = None
    if labels_column is not None:
        if header and labels_column in header:
            label_index = header.index(labels_column)
        elif labels_column.lstrip("-").isdigit() and -width <= int(labels_column) < width:
            label_index = int(labels_column) % width
        else:
            raise DataError(f"{path} has no column {labels_column!r}")
    labels = None
    if label_index is not None:
        labels = np.array([row[label_index].strip() for row in rows])
        rows = [row[:label_index] + row[label_index + 1 :] for row in rows]
    values = np.empty((len(rows), len(rows[0])), dtype=np.float64)
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}: line {i + first_line}, column {j + 1}: {cell.strip()!r} "
                    "is not a number"
                ) from None
    return values, labels


def read_idx(path: Path) -> np.ndarray:
    """An IDX array (LeCun's MNIST format), plain or gzip-compressed.

    The header is read first and the size it promises checked (against the file's size, or
    against what decompresses) before the body is read, so a damaged header cannot ask for
    more memory than the file holds.
    """
    path = check_regular(path)
    compressed = path.suffix == ".gz"
    opener = gzip.open if compressed else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
                raise DataError(f"{path}: not an IDX file (bad magic number)")
            dtype, ndim = _IDX_TYPES[magic[2]], magic[3]
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header")
            shape = struct.unpack(f">{ndim}I", dims)
            expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if compressed:
                body = bytearray()
                while len(body) <= expected:
                    block = f.read(min(1 << 24, expected + 1 - len(body)))
                    if not block:
                        break
                    body += block
                held = len(body)
            else:
                held = os.fstat(f.fileno()).st_size - 4 - 4 * ndim
            if held != expected:
                more = " or more" if compressed and held > expected else ""
                raise DataError(
                    f"{path}: IDX header promises shape {shape} ({format_bytes(expected)}) "
                    f"but the file holds {format_bytes(held)}{more}"
                )
            raw = bytes(body) if compressed else f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def read_image_folder(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Every PNG/JPEG under ``path``; images in sub-folders are labelled by sub-folder name."""
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{path}: no .png/.jpg/.jpeg images in this folder")
    images, modes = [], set()
    for file in files:
        check_regular(file, "image")
        try:
            with Image.open(file) as im:
                im.load()
                modes.add("L" if im.mode in ("L", "1", "I;16", "I", "F", "LA") else "RGB")
                images.append((file, im.copy()))
        except (UnidentifiedImageError, OSError) as exc:
            raise DataError(f"{file}: cannot read image ({exc})") from None
    mode = "L" if modes == {"L"} else "RGB"
    first_file, first = images[0]
    arrays = []
    for file, im in images:
        if im.size != first.size:
            raise DataError(
                f"mixed image sizes: {first_file.name} is {first.size[0]}x{first.size[1]} "
                f"but {file.relative_to(path)} is {im.size[0]}x{im.size[1]}"
            )
        a = np.asarray(im.convert(mode), dtype=np.float32)
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    parents = [f.parent.relative_to(path).as_posix() for f, _ in images]
    labels = np.array(parents) if any(p != "." for p in parents) else None
    return np.stack(arrays), labels
