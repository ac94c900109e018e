"""The VAE of Pyro's tutorial, written as plain Pyro functions over module-level networks.

Digits intensities 0..16 are scored by a Binomial(16, .) so both sides of the benchmark see the
data as it is. Used by ``benchmarks/bench_programs.py`` (probgen vs a plain Pyro SVI loop).
"""

import pyro
import pyro.distributions as dist
import torch
from torch import nn

LATENT, HIDDEN, LEVELS = 8, 256, 16


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.Softplus(), nn.Linear(HIDDEN, 64))

    def forward(self, z):
        return self.net(z)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, HIDDEN), nn.Softplus(), nn.Linear(HIDDEN, 2 * LATENT)
        )

    def forward(self, x):
        loc, scale = self.net(x / LEVELS).chunk(2, dim=-1)
        return loc, nn.functional.softplus(scale) + 1e-4


decoder = Decoder()
encoder = Encoder()


def model(x):
    pyro.module("decoder", decoder)
    with pyro.plate("data", x.shape[0]):
        z = pyro.sample("z", dist.Normal(torch.zeros(LATENT), 1.0).to_event(1))
        pyro.sample("x", dist.Binomial(LEVELS, logits=decoder(z)).to_event(1), obs=x)


def guide(x):
    pyro.module("encoder", encoder)
    with pyro.plate("data", x.shape[0]):
        loc, scale = encoder(x)
        pyro.sample("z", dist.Normal(loc, scale).to_event(1))
