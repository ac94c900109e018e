"""Small Pyro programs written to files, as a user would write them, and data for them."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

PROGRAMS = {
    "ppca": """
        import pyro, torch
        import pyro.distributions as dist
        from torch.distributions import constraints

        def model(x):
            w = pyro.param("W", lambda: 0.1 * torch.randn(x.shape[1], 1))
            mu = pyro.param("mu", lambda: x.mean(0))
            sigma = pyro.param("sigma", lambda: x.std(), constraint=constraints.positive)
            with pyro.plate("data", x.shape[0]):
                z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([1]).to_event(1))
                pyro.sample("x", dist.Normal(z @ w.T + mu, sigma).to_event(1), obs=x)

        def guide(x):
            a = pyro.param("A", torch.zeros(1, x.shape[1]))
            b = pyro.param("b", torch.zeros(1))
            s = pyro.param("s", torch.ones(1), constraint=constraints.positive)
            mu = pyro.param("mu")  # the model's parameter, shared as Pyro allows
            with pyro.plate("data", x.shape[0]):
                pyro.sample("z", dist.Normal((x - mu) @ a.T + b, s).to_event(1))
    """,
    "gaussian_mean": """
        import pyro, torch
        import pyro.distributions as dist

        def model(x):
            loc = pyro.sample("loc", dist.Normal(torch.zeros(x.shape[1]), 10.0).to_event(1))
            with pyro.plate("data", x.shape[0]):
                pyro.sample("x", dist.Normal(loc, 1.0).to_event(1), obs=x)
    """,
    "gmm": """
        import pyro, torch
        import pyro.distributions as dist
        from pyro.infer import config_enumerate
        from torch.distributions import constraints

        @config_enumerate
        def model(x):
            weights = pyro.param("weights", torch.ones(3) / 3, constraint=constraints.simplex)
            locs = pyro.param("locs", lambda: torch.tensor([[-4.0, 0.0], [0.0, 0.0], [4.0, 0.0]]))
            scale = pyro.param("scale", torch.ones(()), constraint=constraints.positive)
            with pyro.plate("data", x.shape[0]):
                c = pyro.sample("c", dist.Categorical(weights))
                pyro.sample("x", dist.Normal(locs[c], scale).to_event(1), obs=x)
    """,
    "broken": """
        import pyro, torch
        import pyro.distributions as dist

        def model(x):
            loc = torch.zeros(3)
            return loc + x  # shapes do not match: raises on the first batch

        def unobserved(x):
            with pyro.plate("data", x.shape[0]):
                pyro.sample("x", dist.Normal(torch.zeros(x.shape[1]), 1.0).to_event(1))

        not_a_function = 3
    """,
}


@pytest.fixture
def program_file(tmp_path):
    """``program_file(name)`` writes the program ``name`` to ``tmp_path / f"{name}.py"``."""

    def write(name: str):
        path = tmp_path / f"{name}.py"
        path.write_text(textwrap.dedent(PROGRAMS[name]))
        return path

    return write


@pytest.fixture
def points_csv(tmp_path):
    """400 2-D points with an offset and unequal scales, along a line plus noise."""
    rng = np.random.default_rng(0)
    t = rng.standard_normal(400)
    x = np.c_[3.0 * t + 100.0, 0.5 * t - 20.0] + 0.3 * rng.standard_normal((400, 2))
    path = tmp_path / "points.csv"
    np.savetxt(path, x, delimiter=",", header="a,b", comments="")
    return path


@pytest.fixture
def clusters_csv(tmp_path):
    """600 points from three clusters at (-4, 0), (0, 0), (4, 0) with weights 0.2/0.3/0.5."""
    rng = np.random.default_rng(1)
    c = rng.choice(3, size=600, p=[0.2, 0.3, 0.5])
    x = np.c_[4.0 * (c - 1.0), np.zeros(600)] + 0.5 * rng.standard_normal((600, 2))
    path = tmp_path / "clusters.csv"
    np.savetxt(path, x, delimiter=",")
    return path
