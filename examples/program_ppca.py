"""Probabilistic PCA as a plain Pyro program, its parameters declared with ``pyro.param``.

    z ~ N(0, I_k),   x | z ~ N(W z + mu, sigma^2 I)        (Tipping & Bishop 1999)

with an amortised linear guide q(z | x) = N(A x + b, diag(s^2)). probgen trains every
``pyro.param`` (the constraint on ``sigma`` and ``s`` holds throughout), saves them with the run,
and derives sampling, the held-out ELBO and importance-sampled log-likelihood from the program.
The marginal p(x) = N(mu, W W^T + sigma^2 I) is known in closed form, so the numbers can be
checked (``tests/programs/test_examples.py`` does).

    python examples/program_ppca.py
    probgen fit examples/program_ppca.py:model,guide -d moons -o runs/ppca --lr 0.05
    probgen evaluate runs/ppca --trust-code
"""

from __future__ import annotations

import argparse

import pyro
import pyro.distributions as dist
import torch
from torch.distributions import constraints

LATENT_DIM = 1


def model(x):
    d = x.shape[1]
    w = pyro.param("W", lambda: 0.1 * torch.randn(d, LATENT_DIM))
    mu = pyro.param("mu", lambda: x.mean(0))
    sigma = pyro.param("sigma", torch.ones(()), constraint=constraints.positive)
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([LATENT_DIM]).to_event(1))
        pyro.sample("x", dist.Normal(z @ w.T + mu, sigma).to_event(1), obs=x)


def guide(x):
    d = x.shape[1]
    a = pyro.param("A", torch.zeros(LATENT_DIM, d))
    b = pyro.param("b", torch.zeros(LATENT_DIM))
    s = pyro.param("s", torch.ones(LATENT_DIM), constraint=constraints.positive)
    with pyro.plate("data", x.shape[0]):
        pyro.sample("z", dist.Normal(x @ a.T + b, s).to_event(1))


def marginal_log_prob(params: dict, x: torch.Tensor) -> torch.Tensor:
    """log p(x) under PPCA's closed form N(mu, W W^T + sigma^2 I)."""
    w, mu, sigma = params["W"], params["mu"], params["sigma"]
    cov = w @ w.T + sigma**2 * torch.eye(len(mu))
    return dist.MultivariateNormal(mu, covariance_matrix=cov).log_prob(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few steps, for the tests")
    args = parser.parse_args()
    import probgen

    fitted = probgen.fit(model, guide, data="moons", steps=50 if args.smoke else 2000, lr=0.05)
    print("sigma:", float(fitted.model.param("sigma")))
    print("samples in data units:", fitted.sample(3).numpy().round(2).tolist())
    print(fitted.evaluate(metrics=["elbo", "nll_is"], num_particles=100))


if __name__ == "__main__":
    main()
