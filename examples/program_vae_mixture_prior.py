"""A VAE with a learned mixture prior, written as an ``nn.Module`` with ``model``/``guide``.

    z ~ sum_k pi_k N(m_k, diag(s_k^2))           (a learned mixture prior, VampPrior-like)
    x | z ~ Binomial(16, sigmoid(decoder(z)))    (the digits' own 0..16 intensities)
    q(z | x) = N(mu(x), diag(sigma(x)^2))        (an amortised encoder)

``pyro.module("vae", self)`` registers the networks and the prior's parameters; probgen builds
the class with ``--set`` keywords (``--set latent_dim=8``), trains everything, and derives
sampling (prior z through the decoder), the held-out ELBO, importance-sampled log p(x),
``encode`` and ``decode`` from the two programs. The Binomial scores the data's discrete values,
so the ELBO is in nats of the digits as given.

    python examples/program_vae_mixture_prior.py
    probgen fit examples/program_vae_mixture_prior.py:MixturePriorVAE -d digits -o runs/mvae
    probgen sample runs/mvae -n 64 -o mvae.png --trust-code
"""

from __future__ import annotations

import argparse

import pyro
import pyro.distributions as dist
import torch
from torch import nn

LEVELS = 16  # digits' intensities are 0..16


class MixturePriorVAE(nn.Module):
    """A VAE on 8x8 digits whose prior is a learned mixture of Gaussians."""

    def __init__(self, latent_dim: int = 8, hidden: int = 256, components: int = 10):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.Softplus())
        self.encoder_head = nn.Linear(hidden, 2 * latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.Softplus(), nn.Linear(hidden, 64)
        )
        self.prior_logits = nn.Parameter(torch.zeros(components))
        self.prior_locs = nn.Parameter(torch.randn(components, latent_dim))
        self.prior_log_scales = nn.Parameter(torch.zeros(components, latent_dim))

    def prior(self):
        components = dist.Normal(self.prior_locs, self.prior_log_scales.exp()).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.prior_logits), components)

    def model(self, x):
        pyro.module("vae", self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", self.prior())
            logits = self.decoder(z).reshape(-1, 1, 8, 8)
            pyro.sample("x", dist.Binomial(LEVELS, logits=logits).to_event(3), obs=x)

    def guide(self, x):
        pyro.module("vae", self)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder_head(self.encoder(x / LEVELS)).chunk(2, dim=-1)
            pyro.sample("z", dist.Normal(loc, nn.functional.softplus(scale) + 1e-4).to_event(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few steps, for the tests")
    args = parser.parse_args()
    import probgen

    fitted = probgen.fit(
        MixturePriorVAE, data="digits", steps=20 if args.smoke else 3000, options={"latent_dim": 8}
    )
    print(fitted.evaluate(metrics=["elbo", "nll_is"], num_particles=10 if args.smoke else 200))
    codes = fitted.model.encode(fitted.model.setup_x[:4])
    print("codes:", tuple(codes.shape), "reconstructions:", tuple(fitted.model.decode(codes).shape))
    print("samples:", tuple(fitted.sample(16).shape))


if __name__ == "__main__":
    main()
