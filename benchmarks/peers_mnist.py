"""Tutorial-style peers on MNIST for the same wall-clock budget: a DDPM and a DCGAN.

What a user would write from a tutorial, in plain PyTorch (nothing of probgen's models):

- DDPM (Ho et al. 2020): linear betas 1e-4..0.02 over T = 1,000 steps, a small U-Net on the
  28x28 pixels (32 and 64 channels, residual blocks with group norm and a sinusoidal time
  embedding), the eps-prediction mean squared error, Adam at 2e-4, no weight average; sampled
  with 50 deterministic DDIM steps (Song et al. 2021).
- DCGAN (Radford et al. 2016; the PyTorch DCGAN tutorial sized for 28x28): a 100-d latent,
  transposed convolutions 7 -> 14 -> 28 with batch norm, a strided-convolution discriminator,
  binary cross-entropy, Adam at 2e-4 with beta1 = 0.5.

Each trains on the same training digits as ``bench_mnist.py`` (batch 128) until the budget is
spent, then draws 1,000 samples scored by ``bench_mnist.score`` against the same test digits.

Usage: python benchmarks/peers_mnist.py [--peers ddpm,dcgan] [--budget 900] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from bench_mnist import NUM_SAMPLES, row, score
from torch import nn

from probgen.data.mnist import load_mnist_split

BATCH = 128


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, t_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm1, self.norm2 = nn.GroupNorm(8, c_in), nn.GroupNorm(8, c_out)
        self.time = nn.Linear(t_dim, c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(t)[:, :, None, None]
        return self.conv2(F.silu(self.norm2(h))) + self.skip(x)


class TutorialUNet(nn.Module):
    """28 -> 14 -> 7 and back, one block per level each way, skips concatenated."""

    def __init__(self, c: int = 32, t_dim: int = 128) -> None:
        super().__init__()
        self.t_dim = t_dim
        self.t_mlp = nn.Sequential(nn.Linear(t_dim, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.stem = nn.Conv2d(1, c, 3, padding=1)
        self.d1, self.d2 = Block(c, c, t_dim), Block(c, 2 * c, t_dim)
        self.pool1 = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.pool2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)
        self.mid = Block(2 * c, 2 * c, t_dim)
        self.u2, self.u1 = Block(4 * c, 2 * c, t_dim), Block(3 * c, c, t_dim)
        self.out = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = self.t_mlp(time_embedding(t, self.t_dim))
        h0 = self.stem(x)  # 28
        h1 = self.d1(h0, e)  # 28
        h2 = self.d2(self.pool1(h1), e)  # 14
        h = self.mid(self.pool2(h2), e)  # 7
        h = self.u2(torch.cat([F.interpolate(h, size=14), h2], 1), e)
        h = self.u1(torch.cat([F.interpolate(h, size=28), h1], 1), e)
        return self.out(h)


def train_for(budget: float, step: Callable[[], None]) -> tuple[int, float]:
    """Call ``step`` until ``budget`` seconds have passed: ``(steps taken, seconds)``."""
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < budget:
        step()
        steps += 1
    return steps, time.perf_counter() - start


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def train_ddpm(x: torch.Tensor, budget: float) -> tuple[np.ndarray, float, float, int]:
    betas = torch.linspace(1e-4, 0.02, 1000)
    alpha_bar = torch.cumprod(1 - betas, 0)
    net = TutorialUNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-4)

    def step() -> None:
        x0 = x[torch.randint(len(x), (BATCH,))]
        t = torch.randint(1000, (BATCH,))
        eps = torch.randn_like(x0)
        a = alpha_bar[t][:, None, None, None]
        descend(opt, F.mse_loss(net(a.sqrt() * x0 + (1 - a).sqrt() * eps, t), eps))

    steps, fit_s = train_for(budget, step)
    start = time.perf_counter()
    with torch.no_grad():
        ts = torch.linspace(999, 0, 50).long()
        z = torch.randn(NUM_SAMPLES, 1, 28, 28)
        for i, t in enumerate(ts):
            a = alpha_bar[t]
            a_prev = alpha_bar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
            eps = torch.cat([net(chunk, t.expand(len(chunk))) for chunk in z.split(250)])
            x0 = ((z - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            z = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    sample_s = time.perf_counter() - start
    return ((z.clamp(-1, 1) + 1) * 127.5).numpy(), fit_s, sample_s, steps


def train_dcgan(x: torch.Tensor, budget: float) -> tuple[np.ndarray, float, float, int]:
    g = nn.Sequential(
        nn.ConvTranspose2d(100, 128, 7, 1, 0, bias=False),
        nn.BatchNorm2d(128),
        nn.ReLU(True),
        nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(True),
        nn.ConvTranspose2d(64, 1, 4, 2, 1, bias=False),
        nn.Tanh(),
    )
    d = nn.Sequential(
        nn.Conv2d(1, 64, 4, 2, 1, bias=False),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False),
        nn.BatchNorm2d(128),
        nn.LeakyReLU(0.2, True),
        nn.Conv2d(128, 1, 7, 1, 0, bias=False),
        nn.Flatten(),
    )
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones, zeros = torch.ones(BATCH, 1), torch.zeros(BATCH, 1)

    def step() -> None:
        real = x[torch.randint(len(x), (BATCH,))]
        fake = g(torch.randn(BATCH, 100, 1, 1))
        bce = F.binary_cross_entropy_with_logits
        descend(opt_d, bce(d(real), ones) + bce(d(fake.detach()), zeros))
        descend(opt_g, bce(d(fake), ones))

    steps, fit_s = train_for(budget, step)
    start = time.perf_counter()
    g.eval()
    with torch.no_grad():
        samples = g(torch.randn(NUM_SAMPLES, 100, 1, 1))
    sample_s = time.perf_counter() - start
    return ((samples + 1) * 127.5).numpy(), fit_s, sample_s, steps


PEERS = {"ddpm": ("tutorial DDPM, DDIM-50", train_ddpm), "dcgan": ("tutorial DCGAN", train_dcgan)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--budget", type=float, default=900.0, help="training seconds")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    (train, _, test, _), _ = load_mnist_split()
    # the 90% of the training digits that `probgen fit` trains on (it holds 10% out)
    keep = np.random.default_rng(0).permutation(len(train))[: int(0.9 * len(train))]
    x = torch.as_tensor(train[keep], dtype=torch.float32).reshape(-1, 1, 28, 28) / 127.5 - 1
    for name in args.peers.split(","):
        label, train_peer = PEERS[name]
        samples, fit_s, sample_s, steps = train_peer(x, args.budget)
        metrics = score(samples, train, test)
        print(row(f"{label} ({steps} steps)", metrics, fit_s, sample_s), flush=True)


if __name__ == "__main__":
    main()
