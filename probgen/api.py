"""The Python front door: ``probgen.fit(model, guide, data=...)`` and ``probgen.load(run)``.

``model`` is what ``probgen fit`` takes on the command line (a family name, a
``FILE.py:MODEL[,GUIDE]`` or ``module:MODEL[,GUIDE]`` spec) or the Python objects themselves: a
Pyro ``model`` callable and optional ``guide``, a class with ``model``/``guide`` methods, or a
:class:`~probgen.models.base.GenerativeModel` subclass. Both return a :class:`FittedModel` that
samples, evaluates and converts to ArviZ through the same code as the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from probgen.errors import ConfigError
from probgen.models.base import GenerativeModel
from probgen.models.registry import fit_target

if TYPE_CHECKING:
    import arviz as az

    from probgen.data.datasets import Dataset


class FittedModel:
    """A fitted model and (when it was saved) its run directory.

    Attributes:
        model: the :class:`~probgen.models.base.GenerativeModel` (a
            :class:`~probgen.programs.model.PyroProgram` for a user's program).
        path: the run directory, or ``None`` for a fit kept in memory.
    """

    def __init__(
        self, model: GenerativeModel, path: str | Path | None, dataset: Dataset | None = None
    ) -> None:
        self.model = model
        self.path = Path(path) if path is not None else None
        self._dataset = dataset

    def __repr__(self) -> str:
        return f"FittedModel({type(self.model).__name__}, path={self.path})"

    @property
    def dataset(self) -> Dataset:
        """The dataset the model was fitted on (reloaded from the run when needed)."""
        if self._dataset is None:
            if self.path is None:
                raise ConfigError("this fit kept no run directory: pass data= explicitly")
            from probgen.runs import Run
            from probgen.train import load_run_dataset

            self._dataset = load_run_dataset(Run(self.path).read_config()["data"])
        return self._dataset

    def capabilities(self) -> frozenset[str]:
        """What this model supports (the query the command line uses)."""
        return self.model.capabilities()

    def sample(
        self, n: int, site: str | None = None, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``n`` draws in the data's units (a program's ``site``, if given)."""
        options = {} if site is None else {"site": site}
        return self.model.sample(n, y=y, **options)

    def evaluate(
        self,
        data: str | None = None,
        metrics: list[str] | None = None,
        n: int | None = None,
        **options: Any,
    ) -> dict:
        """Metrics on the held-out split (or on every row of ``data``), as ``probgen
        evaluate`` reports them."""
        from probgen.data import load_dataset
        from probgen.evaluation import as_test_data, evaluate_model

        dataset = self.dataset if data is None else as_test_data(load_dataset(data))
        results, _ = evaluate_model(self.model, dataset, metrics, n, **options)
        return results

    def to_arviz(self, draws: int = 200, points: int = 8) -> az.InferenceData:
        """ArviZ ``InferenceData`` of the fit (posterior, predictive, chains, ...)."""
        from probgen.inspect import inference_data

        return inference_data(self.model, self.dataset, points=points, draws=draws)


def fit(
    model: str | type | Callable[..., Any],
    guide: str | Callable[..., Any] | None = None,
    *,
    data: str | Dataset,
    out: str | Path | None = None,
    **options: Any,
) -> FittedModel:
    """Fit ``model`` (and ``guide``) to ``data``; ``options`` are :func:`probgen.train.fit`'s.

    Example::

        def model(x):
            loc = pyro.param("loc", torch.zeros(2))
            with pyro.plate("data", len(x)):
                pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)

        fitted = probgen.fit(model, data="moons", steps=500)
        fitted.sample(10)
    """
    from probgen.data import load_dataset
    from probgen.data.datasets import Dataset
    from probgen.train import fit as train_fit

    target = fit_target(model, guide)
    dataset = data if isinstance(data, Dataset) else None
    if dataset is None and not options.get("resume"):
        dataset = load_dataset(
            data,
            data_key=options.get("data_key"),
            labels=options.get("labels"),
            seed=options.get("seed", 0),
        )
    net = train_fit(target, dataset if dataset is not None else data, out, **options)
    return FittedModel(net, out, dataset)


def load(path: str | Path, device: str = "cpu", trust_code: bool = False) -> FittedModel:
    """The fitted model saved in run directory ``path``."""
    from probgen.runs import load_model

    return FittedModel(load_model(path, device, trust_code=trust_code), path)
