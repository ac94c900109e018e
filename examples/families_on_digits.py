"""Every family on the 8x8 digits: sample grids and FID / precision / recall in one table.

python examples/families_on_digits.py [--out figures/] [--smoke]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from probgen import plots
from probgen.data import load_dataset
from probgen.metrics.suite import evaluate_samples
from probgen.train import fit

FAMILIES = ("vae", "flow", "diffusion", "score", "gan", "ebm")
OPTIONS = {"vae": {"beta": 0.1}}  # the sharp recipe, docs/vae.md
SMOKE = {
    "vae": {"hidden": (16,)},
    "flow": {"transforms": 1, "hidden": (16,)},
    "diffusion": {"timesteps": 20, "channels": 8},
    "score": {"hidden": (32,), "num_scales": 3, "n_steps_each": 1},
    "gan": {"channels": 8},
    "ebm": {"channels": (8, 8), "langevin_steps": 2, "sample_steps": 5, "buffer_size": 128},
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None, help="folder for the sample grids")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true", help="tiny models, a few steps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out or tempfile.mkdtemp())
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset("digits")
    print("| family | FID | precision | recall |")
    print("|---|---|---|---|")
    for family in FAMILIES:
        options = SMOKE[family] if args.smoke else OPTIONS.get(family)
        model = fit(
            family, data, steps=3 if args.smoke else args.steps, quiet=True, options=options
        )
        torch.manual_seed(0)
        extra = {"steps": 5} if args.smoke and family in ("diffusion", "score") else {}
        samples = model.sample(64 if args.smoke else 300, **extra)
        plots.image_grid(samples[:64].numpy(), out / f"{family}.png", vmin=0, vmax=16)
        m = evaluate_samples(
            samples,
            data.test,
            kind="image",
            value_range=(0.0, 16.0),
            metrics=["fid", "precision", "recall"],
        )
        print(
            f"| {family} | {m['fid']:.1f} | {m['precision']:.3f} | {m['recall']:.3f} |", flush=True
        )
    print(f"sample grids in {out}")


if __name__ == "__main__":
    main()
