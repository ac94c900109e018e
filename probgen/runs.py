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

Every write is atomic (:mod:`probgen.atomic_files`): a crash mid-write leaves the previous file
whole. One writer at a time, and ``--overwrite`` that swaps only after success, are
:mod:`probgen.run_lock`'s. Loading reads only JSON and tensors; a run whose model is a user's
own class imports that code only when the caller says it trusts it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import pyro
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

import probgen
from probgen.atomic_files import read_json, write_atomic, write_json
from probgen.config import build_config, config_to_dict
from probgen.data.preprocess import Preprocessor
from probgen.errors import ConfigError, RunError, first_line
from probgen.model_memory import check_model_fits
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
            raise RunError(f"{where} is corrupt (data_info: {first_line(exc)})") from None
        try:
            preprocessor = Preprocessor.from_dict(config["preprocessor"])
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise RunError(f"{where} is corrupt (preprocessor: {first_line(exc)})") from None
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
            raise RunError(f"{where} does not build a model ({first_line(exc)})") from None
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
