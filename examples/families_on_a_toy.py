"""Every family on one 2-D toy, scored by the same metrics.

Fits each family to ``8gaussians`` (a ring of eight Gaussians) and prints the mode-coverage
statistics (modes captured, share of samples within 3 standard deviations of a centre, reverse
KL of the mode histogram) and the MMD to held-out data, all in the data's units.

    python examples/families_on_a_toy.py [--data 25gaussians] [--smoke]
"""

from __future__ import annotations

import argparse

import torch

from probgen.data import load_dataset
from probgen.metrics.suite import evaluate_samples
from probgen.train import fit

FAMILIES = ("vae", "flow", "diffusion", "score", "gan", "ebm")
SMOKE = {
    "vae": {"hidden": (16,), "latent_dim": 2},
    "flow": {"transforms": 2, "hidden": (16, 16)},
    "diffusion": {"timesteps": 50, "hidden": (32, 32)},
    "score": {"hidden": (32, 32), "num_scales": 5, "n_steps_each": 2},
    "gan": {"hidden": (16, 16), "disc_hidden": (16, 16)},
    "ebm": {"hidden": (16, 16), "langevin_steps": 5, "sample_steps": 20, "buffer_size": 256},
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="8gaussians")
    parser.add_argument("--steps", type=int, default=None, help="default: each family's own")
    parser.add_argument("--smoke", action="store_true", help="tiny models, a few steps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset(args.data)
    print("| family | modes | within 3 sd | reverse KL | MMD |")
    print("|---|---|---|---|---|")
    for family in FAMILIES:
        model = fit(
            family,
            data,
            steps=20 if args.smoke else args.steps,
            quiet=True,
            options=SMOKE[family] if args.smoke else None,
        )
        torch.manual_seed(0)
        options = {"steps": 10} if args.smoke and family in ("diffusion", "score") else {}
        samples = model.sample(500 if args.smoke else 2500, **options)
        m = evaluate_samples(
            samples,
            data.test,
            kind="vector",
            mixture=data.mixture,
            metrics=["modes", "high_quality", "reverse_kl", "mmd"],
        )
        print(
            f"| {family} | {m['modes']} | {m['high_quality']:.3f} | {m['reverse_kl']:.3f} | "
            f"{m['mmd']:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
