"""Normalizing-flow posteriors for the VAE: held-out ELBO of each guide at the same budget.

Trains ``probgen fit vae`` on digits with guide = gaussian, iaf, planar and radial (same seed,
steps, batch and learning rate) and reports the held-out ELBO (100 particles) and the IWAE
NLL estimate. References: Rezende & Mohamed 2015 (planar/radial); Kingma et al. 2016 (IAF).

Usage: python benchmarks/bench_vae_guides.py [--steps 3000] [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch

from probgen.data import load_dataset
from probgen.train import fit


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--num-flows", type=int, default=4)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="300 steps")
    args = parser.parse_args()
    if args.quick:
        args.steps = 300
    torch.set_num_threads(1)
    data = load_dataset("digits")
    print(
        f"## VAE guides on digits: {args.steps} steps, batch 128, Adam 1e-3, "
        f"z = {args.latent_dim}, {args.num_flows} flows, seed 0, 1 thread"
    )
    print("| guide | held-out ELBO (nats) | IWAE NLL K=1000 (nats) | s/step |")
    print("|---|---|---|---|")
    for guide in ("gaussian", "iaf", "planar", "radial"):
        start = time.perf_counter()
        vae = fit(
            "vae",
            data,
            None,
            steps=args.steps,
            quiet=True,
            seed=0,
            options={"guide": guide, "num_flows": args.num_flows, "latent_dim": args.latent_dim},
        )
        seconds = (time.perf_counter() - start) / args.steps
        x = vae.preprocessor.forward(torch.as_tensor(data.test))
        torch.manual_seed(0)
        with torch.no_grad():
            elbo = vae.elbo(x, num_particles=100).mean().item()
            nll = -vae.log_marginal(x, num_particles=1000).mean().item()
        print(f"| {guide} | {elbo:.2f} | {nll:.2f} | {seconds:.4f} |", flush=True)


if __name__ == "__main__":
    main()
