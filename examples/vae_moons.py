"""A VAE on the two moons, with an ArviZ look at its guide's posterior.

python examples/vae_moons.py [--smoke]
"""

from __future__ import annotations

import argparse

import arviz as az
import torch

from probgen.data import load_dataset
from probgen.metrics.suite import evaluate_samples
from probgen.programs.inference_data import program_inference_data
from probgen.train import fit


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="a few steps, for the tests")
    args = parser.parse_args()
    data = load_dataset("moons")
    vae = fit(
        "vae",
        data,
        steps=30 if args.smoke else 4000,
        quiet=args.smoke,
        options={"latent_dim": 2, "hidden": (64, 64)},
    )
    samples = vae.sample(2000)
    print(evaluate_samples(samples, data.test, kind="vector", metrics=["mmd", "swd"]))
    x = vae.preprocessor.forward(torch.as_tensor(data.test[:4]))
    idata = program_inference_data(vae, x, draws=200)
    print(az.summary(idata, kind="stats"))
    print("Pareto k-hat:", idata.guide_diagnostics["pareto_k"].values.round(2))


if __name__ == "__main__":
    main()
