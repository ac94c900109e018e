"""The run directory: a fitted model's config, weights, optimiser state and history.

```
RUN/
  config.json            model name and config, data spec, preprocessing, seed, versions
  model.safetensors      weights and buffers (never pickle)
  optimizer.safetensors  optimiser state and RNG state, for --resume
  train_state.json       step, epoch, optimiser hyperparameters
  history.csv            step, epoch, wall time and every logged term
  diagnostics.json       MCMC runs: each chain's kernel diagnostics
  metrics.json           written by `probgen evaluate`
```

Every write goes to a temporary file in the same directory and is renamed into place, so a
crash leaves the previous file whole; files get the permissions the user's umask gives any
other file. Loading reads only JSON and tensors; a run whose model is a user's own class imports
that code only when the caller says it trusts it.

One writer at a time: :func:`writing_run` holds a lock (``.RUN.lock`` beside the directory, an
``flock`` the kernel drops when its process dies, so a stale lock is simply taken over) for as
long as a fit writes, and a second writer gets one line naming the holder. ``--overwrite``
writes the new run beside the old one (``.RUN.new-PID``) and swaps the two only once the new
fit has succeeded; a failed or interrupted fit leaves the old run as it was.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyro
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

import probgen
from probgen.config import build_config, config_to_dict
from probgen.data.preprocess import Preprocessor
from probgen.errors import ConfigError, ProbgenError, RunError
from probgen.models.base import DataInfo, GenerativeModel
from probgen.models.registry import is_builtin, resolve_model

# 2: models made of Pyro programs (the VAE among them) store their setup batch and parameters
FORMAT_VERSION = 2
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
TRAIN_STATE = "train_state.json"
HISTORY = "history.csv"
METRICS = "metrics.json"
DIAGNOSTICS = "diagnostics.json"


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


# -- one writer at a time, and --overwrite that swaps only after success ----------------------


def _sibling(path: Path, tag: str) -> Path:
    return path.parent / f".{path.name}.{tag}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def check_model_fits(build: Callable[[], object], what: str = "the model", copies: int = 4) -> None:
    """Refuse, before anything is allocated, a model whose tensors would not fit in memory.

    ``build()`` is called under torch's ``meta`` device, which records shapes and allocates
    nothing; training holds about ``copies`` copies of the weights (weights, gradients and
    Adam's two moments). A model that cannot be built on ``meta`` is not checked here.
    """
    from probgen.data.files import available_memory, format_bytes

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


class RunLock:
    """An exclusive lock on run directory ``path`` (the file ``.NAME.lock`` beside it).

    The lock is an ``flock`` on that file: the kernel releases it when the holder exits, however
    it exits, so a lock file left by a dead process is taken over. The file names its holder
    (pid, host, start time) for the message the next writer gets. Where ``flock`` is not
    supported the holder's pid is checked instead.
    """

    def __init__(self, path: str | Path) -> None:
        self.run_path = Path(path)
        self.path = _sibling(self.run_path, "lock")
        self._fd: int | None = None

    def _holder(self) -> str:
        try:
            text = self.path.read_text().strip()
        except OSError:
            text = ""
        return text or "another process"

    def acquire(self, what: str = "probgen fit") -> RunLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            fcntl = None
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, file_mode())
            try:
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        raise RunError(
                            f"{self.run_path} is being written by {self._holder()}; wait for it "
                            "to finish or choose another -o"
                        ) from None
                    except OSError:  # no flock here (some network file systems): pid check
                        self._check_pid()
                else:  # pragma: no cover
                    self._check_pid()
                try:
                    same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if not same:  # the holder removed the file as we opened it: take the new one
                    os.close(fd)
                    continue
                stamp = time.strftime("%Y-%m-%d %H:%M:%S")
                os.ftruncate(fd, 0)
                os.write(
                    fd,
                    f"{what} (pid {os.getpid()} on {socket.gethostname()}, since {stamp})".encode(),
                )
                self._fd = fd
                return self
            except BaseException:
                if self._fd != fd:
                    os.close(fd)
                raise

    def _check_pid(self) -> None:
        match = re.search(r"pid (\d+) on (\S+?),", self._holder())
        if match and match.group(2) == socket.gethostname():
            pid = int(match.group(1))
            if pid != os.getpid() and _pid_alive(pid):
                raise RunError(
                    f"{self.run_path} is being written by {self._holder()}; wait for it to "
                    "finish or choose another -o"
                )

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _recover(path: Path) -> None:
    """Finish or undo what a writer that died left (called with the lock held).

    A new run still being written (``.NAME.new-*``) is discarded. An old run moved aside for the
    swap (``.NAME.old-*``) is put back if the new one never arrived, else removed.
    """
    for staged in path.parent.glob(f".{_glob_escape(path.name)}.new-*"):
        shutil.rmtree(staged, ignore_errors=True)
    for old in sorted(path.parent.glob(f".{_glob_escape(path.name)}.old-*")):
        if not path.exists():
            os.rename(old, path)
        else:
            shutil.rmtree(old, ignore_errors=True)


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _prepare_directory(path: Path) -> None:
    """``path`` can hold a run: an existing folder, or one that can be made (one line if not)."""
    if path.exists() and not path.is_dir():
        raise RunError(f"-o {path} is a file, not a run directory")
    try:
        made = []
        for folder in reversed(path.absolute().parents):
            if folder.exists() and not folder.is_dir():
                raise RunError(f"-o {path}: {folder} is a file, not a folder")
            if not folder.exists():
                folder.mkdir()
                made.append(folder)
    except FileExistsError:
        raise RunError(f"-o {path}: {path.parent} is a file, not a folder") from None
    except OSError as exc:
        raise RunError(f"-o {path}: cannot create {path.parent} ({exc.strerror})") from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise RunError(f"-o {path}: cannot write in {path.parent} (permission denied)")
    if path.exists() and not os.access(path, os.W_OK | os.X_OK):
        raise RunError(f"-o {path}: cannot write in {path} (permission denied)")
    return made


def _remove_unused(folders: list[Path]) -> None:
    """Remove the folders made for a run that never wrote anything (innermost first)."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def _swap(staged: Path, path: Path) -> None:
    """Put the finished run ``staged`` at ``path``; the old run there is removed only after."""
    old = _sibling(path, f"old-{os.getpid()}")
    os.rename(path, old)
    try:
        os.rename(staged, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def writing_run(
    out: str | Path, overwrite: bool = False, lock: bool = True, what: str = "probgen fit"
) -> Iterator[Path]:
    """Hold ``out`` for one writer and give the directory to write the run into.

    Without ``overwrite`` that is ``out`` itself. With it, and a run already in ``out``, it is a
    fresh folder beside ``out`` that replaces it only when the block ends without an error;
    on an error the new folder is removed and the old run is left as it was. ``lock=False``
    (processes other than the writing one) checks nothing and writes nothing.
    """
    path = Path(out)
    if not lock:
        yield path
        return
    if path.name in ("", ".", ".."):  # a name is needed for the lock and the swap beside it
        path = path.resolve()
    made = _prepare_directory(path)
    try:
        run_lock = RunLock(path).acquire(what)
    except PermissionError as exc:
        _remove_unused(made)
        raise RunError(f"-o {path}: cannot write in {path.parent} ({exc.strerror})") from None
    try:
        with run_lock:
            yield from _held(path, overwrite)
    finally:
        if not path.exists():
            _remove_unused(made)


def _held(path: Path, overwrite: bool) -> Iterator[Path]:
    """The body of :func:`writing_run` once the lock is held."""
    _recover(path)
    if not (overwrite and path.is_dir() and any(path.iterdir())):
        yield path
        return
    staged = _sibling(path, f"new-{os.getpid()}")
    staged.mkdir()
    try:
        yield staged
    except ProbgenError as exc:
        shutil.rmtree(staged, ignore_errors=True)
        message = str(exc)
        if str(staged) in message:  # the failed new run's location means nothing now
            head = message[: message.find(str(staged))].rsplit(";", 1)[0]
            message = head if head.strip() else message.replace(str(staged), str(path))
        raise type(exc)(
            f"{message}; --overwrite: the new run was discarded and the run in {path} "
            "is kept as it was"
        ) from None
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    try:
        _swap(staged, path)
    except OSError as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise RunError(
            f"--overwrite: could not move the new run into {path} ({exc.strerror or exc}); "
            "the old run is kept"
        ) from None


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


def _cpu_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def _optimizer_payload(
    optimizers: list[torch.optim.Optimizer],
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    tensors, meta = {}, []
    for i, opt in enumerate(optimizers):
        state = opt.state_dict()
        scalars = {}
        for pid, slots in state["state"].items():
            for name, value in slots.items():
                if torch.is_tensor(value):
                    tensors[f"opt{i}.{pid}.{name}"] = value
                else:
                    scalars[f"{pid}.{name}"] = value
        meta.append({"param_groups": state["param_groups"], "scalars": scalars})
    return tensors, meta


def _restore_optimizers(optimizers: list[torch.optim.Optimizer], tensors: dict, meta: list) -> None:
    if len(meta) != len(optimizers):
        raise RunError("the run's optimiser state does not match this model")
    for i, (opt, m) in enumerate(zip(optimizers, meta)):
        state: dict = {}
        prefix = f"opt{i}."
        for key, value in tensors.items():
            if key.startswith(prefix):
                pid, name = key[len(prefix) :].split(".", 1)
                state.setdefault(int(pid), {})[name] = value
        for key, value in m["scalars"].items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = value
        try:
            opt.load_state_dict({"state": state, "param_groups": m["param_groups"]})
        except (ValueError, KeyError) as exc:
            raise RunError(f"the run's optimiser state does not match this model ({exc})") from None


@dataclass
class TrainState:
    """Where training stands: the step and epoch reached and the target."""

    step: int = 0
    epoch: int = 0
    target_steps: int = 0
    batch_size: int = 128
    lr: float = 1e-3


class Run:
    """A run directory on disk (see the module docstring for its files)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return (self.path / CONFIG).exists()

    # -- writing ---------------------------------------------------------------------------
    def write_config(self, payload: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / CONFIG, payload, allow_nan=False)

    def save_checkpoint(
        self,
        model: GenerativeModel,
        optimizers: list[torch.optim.Optimizer],
        state: TrainState,
        history: list[dict],
        extra: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Weights, optimiser and RNG state, train state and history, each written atomically.

        The weights go last but one and ``train_state.json`` last, so a crash part-way leaves
        a train state that never claims more than the files beside it hold.
        """
        tensors, meta = _optimizer_payload(optimizers)
        tensors["rng.torch"] = torch.get_rng_state()
        tensors.update({f"extra.{k}": v for k, v in (extra or {}).items()})
        if torch.cuda.is_available():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        write_atomic(self.path / OPTIMIZER, save(_cpu_tensors(tensors)))
        write_atomic(self.path / WEIGHTS, save(_cpu_tensors(model.state_dict())))
        self.write_history(history)
        write_json(self.path / TRAIN_STATE, {**state.__dict__, "optimizers": meta})

    def write_history(self, history: list[dict]) -> None:
        columns: list[str] = []
        for row in history:
            columns.extend(k for k in row if k not in columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns or ["step"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        write_atomic(self.path / HISTORY, buf.getvalue().encode())

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.path / METRICS, metrics)

    def write_diagnostics(self, diagnostics: dict) -> None:
        write_json(self.path / DIAGNOSTICS, diagnostics)

    # -- reading ---------------------------------------------------------------------------
    def read_config(self) -> dict:
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"{self.path} is a file, not a run directory")
        if not self.path.is_dir():
            raise RunError(f"run directory {self.path} does not exist")
        config = read_json(self.path / CONFIG)
        version = config.get("format_version")
        if version != FORMAT_VERSION:
            raise RunError(
                f"{self.path} was written by probgen {config.get('probgen', '?')} "
                f"(run format {version}); this probgen reads format {FORMAT_VERSION}"
            )
        for key in ("model", "model_config", "data_info", "preprocessor"):
            if key not in config:
                raise RunError(f"{self.path / CONFIG} is corrupt (no {key!r})")
        return config

    def read_history(self) -> list[dict]:
        try:
            with open(self.path / HISTORY, newline="") as f:
                return [
                    {k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
                    for row in csv.DictReader(f)
                ]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, csv.Error) as exc:
            raise RunError(f"{self.path / HISTORY} is corrupt ({exc})") from None

    def read_train_state(self) -> tuple[TrainState, list]:
        raw = read_json(self.path / TRAIN_STATE)
        meta = raw.pop("optimizers", [])
        try:
            return TrainState(**raw), meta
        except TypeError as exc:
            raise RunError(f"{self.path / TRAIN_STATE} is corrupt ({exc})") from None

    def _read_tensors(self, name: str) -> dict[str, torch.Tensor]:
        path = self.path / name
        try:
            return load(path.read_bytes())
        except FileNotFoundError:
            raise RunError(f"{path} is missing") from None
        except (SafetensorError, OSError, ValueError) as exc:
            raise RunError(f"{path} is corrupt ({exc})") from None

    def build_model(self, trust_code: bool = False) -> GenerativeModel:
        """The model class from ``config.json``, built untrained with the stored config."""
        config = self.read_config()
        spec = config["model"]
        if not is_builtin(spec) and not trust_code:
            raise RunError(
                f"{self.path} uses the user model {spec}; pass --trust-code to import its code"
            )
        try:
            cls = resolve_model(spec)
            model_config = build_config(cls.Config, config["model_config"])
        except ConfigError as exc:
            raise RunError(f"{self.path}: {exc}") from None
        where = self.path / CONFIG
        try:
            data_info = DataInfo.from_dict(config["data_info"])
            shape = data_info.event_shape
            if not shape or not all(isinstance(d, int) and 0 < d <= 2**31 for d in shape):
                raise ValueError(f"event shape {list(shape)}")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RunError(f"{where} is corrupt (data_info: {_first_line(exc)})") from None
        try:
            preprocessor = Preprocessor.from_dict(config["preprocessor"])
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise RunError(f"{where} is corrupt (preprocessor: {_first_line(exc)})") from None
        if is_builtin(spec):
            try:  # the stored weights and the model built to receive them
                check_model_fits(lambda: cls(model_config, data_info), "this model", copies=2)
            except ConfigError as exc:
                raise RunError(f"{where}: {exc}") from None
        try:
            model = cls(model_config, data_info)
        except (ConfigError, ValueError, TypeError, KeyError, RuntimeError, MemoryError) as exc:
            if not is_builtin(spec):
                raise
            raise RunError(f"{where} does not build a model ({_first_line(exc)})") from None
        model.preprocessor = preprocessor
        return model

    def load_weights(self, model: GenerativeModel) -> None:
        tensors = self._read_tensors(WEIGHTS)
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise RunError(f"{self.path / WEIGHTS} does not fit the model ({first})") from None
        except ConfigError as exc:  # a program's structure could not be rebuilt
            raise RunError(f"{self.path}: cannot rebuild the model ({exc})") from None

    def load_optimizers(
        self, optimizers: list[torch.optim.Optimizer], meta: list
    ) -> dict[str, torch.Tensor]:
        """Restore optimiser and RNG state; returns the extra tensors saved beside them."""
        tensors = self._read_tensors(OPTIMIZER)
        rng = {k: tensors.pop(k) for k in list(tensors) if k.startswith("rng.")}
        extra = {
            k[len("extra.") :]: tensors.pop(k) for k in list(tensors) if k.startswith("extra.")
        }
        _restore_optimizers(optimizers, tensors, meta)
        if "rng.torch" in rng:
            torch.set_rng_state(rng["rng.torch"])
        if "rng.cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["rng.cuda"])
        return extra


def load_model(
    path: str | Path, device: str | torch.device = "cpu", trust_code: bool = False
) -> GenerativeModel:
    """The fitted model saved in run directory ``path``, on ``device``, in eval mode."""
    run = Run(path)
    model = run.build_model(trust_code=trust_code)
    run.load_weights(model)
    return model.to(device).eval()


def config_payload(
    model_spec: str,
    model: GenerativeModel,
    data_spec: dict,
    seed: int,
) -> dict:
    """What ``config.json`` holds for a new run."""
    return {
        "format_version": FORMAT_VERSION,
        "model": model_spec,
        "model_config": config_to_dict(model.config),
        "data": data_spec,
        "data_info": model.data_info.to_dict(),
        "preprocessor": model.preprocessor.to_dict(),
        "seed": seed,
        "probgen": probgen.__version__,
        "torch": torch.__version__,
        "pyro": pyro.__version__,
    }
