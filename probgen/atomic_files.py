"""Files written whole or not at all: a temporary file in the same folder, then a rename.

A crash mid-write leaves the previous file as it was; new files get the permissions the user's
umask gives any other file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from probgen.errors import RunError


def file_mode() -> int:
    """The mode a new file gets from the user's umask (0o666 masked), as ``open`` would give."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; a run file is like any other file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any, allow_nan: bool = True) -> None:
    """``obj`` as JSON; ``allow_nan=False`` refuses NaN/inf (``config.json`` must be plain JSON
    any reader can load, and a non-finite option there is a bug upstream)."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=allow_nan)
    except ValueError:
        raise RunError(f"{path}: refusing to write a NaN or infinite value into JSON") from None
    write_atomic(path, (text + "\n").encode())


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise RunError(f"{path} is corrupt ({exc})") from None
    if not isinstance(data, dict):
        raise RunError(f"{path} is corrupt (not a JSON object)")
    return data
