"""A Gaussian mixture whose cluster assignments are enumerated out: no guide at all.

    c_i ~ Categorical(w),   x_i | c_i ~ N(mu_{c_i}, s^2 I)

``config_enumerate`` marks ``c`` for parallel enumeration; probgen sees it in the trace and
trains with ``TraceEnum_ELBO``, which sums c out exactly, so the loss is the exact negative
log-likelihood and ``probgen evaluate`` reports the exact held-out ``nll``. ``probgen inspect``
draws each point's cluster from its exact posterior with ``infer_discrete``.

    python examples/program_gmm.py
    probgen fit examples/program_gmm.py:model -d 8gaussians -o runs/gmm --lr 0.05
    probgen evaluate runs/gmm --trust-code && probgen inspect runs/gmm --trust-code
"""

from __future__ import annotations

import argparse

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import config_enumerate
from torch.distributions import constraints

COMPONENTS = 8


@config_enumerate
def model(x):
    uniform = torch.ones(COMPONENTS) / COMPONENTS
    weights = pyro.param("weights", uniform, constraint=constraints.simplex)
    locs = pyro.param("locs", lambda: x[torch.randperm(len(x))[:COMPONENTS]].clone())
    scale = pyro.param("scale", lambda: x.std(), constraint=constraints.positive)
    with pyro.plate("data", x.shape[0]):
        c = pyro.sample("c", dist.Categorical(weights))
        pyro.sample("x", dist.Normal(locs[c], scale).to_event(1), obs=x)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few steps, for the tests")
    args = parser.parse_args()
    import probgen

    fitted = probgen.fit(model, data="8gaussians", steps=20 if args.smoke else 1500, lr=0.05)
    print("weights:", fitted.model.param("weights").numpy().round(3))
    print(fitted.evaluate(metrics=["nll"]))
    idata = fitted.to_arviz(draws=5 if args.smoke else 50)
    print("posterior cluster of the first points:", idata.posterior["c"].values[0, 0, :8])


if __name__ == "__main__":
    main()
