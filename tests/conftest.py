"""Shared fixtures: small deterministic data files and quiet, single-threaded torch."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_pyro_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield


@pytest.fixture
def blobs_csv(tmp_path):
    """A 2-D CSV with a header, far from the origin and with unequal scales."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 2)) * [1000.0, 0.01] + [5e4, -300.0]
    path = tmp_path / "blobs.csv"
    lines = ["a,b"] + [f"{r[0]},{r[1]}" for r in x]
    path.write_text("\n".join(lines) + "\n")
    return path
