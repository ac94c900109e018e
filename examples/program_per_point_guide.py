"""A guide with a parameter per data point, trained on mini-batches (``batch_index``).

Non-amortised variational inference keeps one q(z_i) = N(m_i, s_i^2) per training point. The
program declares the keywords ``batch_index`` and ``data_size``: during training probgen calls
``model(x, batch_index=idx, data_size=N)`` with the batch rows' positions in the training set, so
the programs subsample their plate with ``pyro.plate("data", size=N, subsample=idx)`` (which
scales the batch by N/B itself) and the guide indexes its per-point parameters with ``idx``.
Outside training both keywords are ``None`` and the plate runs over the rows given.

    python examples/program_per_point_guide.py
    probgen fit examples/program_per_point_guide.py:model,guide -d moons --batch-size 256
"""

from __future__ import annotations

import argparse

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints


def model(x, batch_index=None, data_size=None):
    w = pyro.param("w", lambda: 0.1 * torch.randn(x.shape[1]))
    mu = pyro.param("mu", lambda: x.mean(0))
    sigma = pyro.param("sigma", torch.ones(()), constraint=constraints.positive)
    with pyro.plate("data", size=data_size or len(x), subsample=batch_index):
        z = pyro.sample("z", dist.Normal(0.0, 1.0))
        pyro.sample("x", dist.Normal(z[:, None] * w + mu, sigma).to_event(1), obs=x)


def guide(x, batch_index=None, data_size=None):
    n = data_size or len(x)
    loc = pyro.param("loc", lambda: torch.zeros(n))
    scale = pyro.param("scale", lambda: torch.ones(n), constraint=constraints.positive)
    with pyro.plate("data", size=n, subsample=batch_index) as idx:
        pyro.sample("z", dist.Normal(loc[idx], scale[idx]))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few steps, for the tests")
    args = parser.parse_args()
    import probgen

    fitted = probgen.fit(
        model, guide, data="moons", steps=20 if args.smoke else 3000, batch_size=256, lr=0.02
    )
    loc = fitted.model.param("loc")
    print(f"{len(loc)} per-point means, first: {loc[:4].numpy().round(2).tolist()}")
    print("samples:", fitted.sample(3).numpy().round(2).tolist())


if __name__ == "__main__":
    main()
