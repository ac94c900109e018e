"""VAE blur: how sharp and how recognisable each sampler's digits are, for beta = 1 and 0.1.

For each KL weight beta (``--set beta``), trains ``probgen fit vae`` on digits, draws 1000
samples with each sampler (``aggregate``: z from the mixture fitted to the training codes;
``prior``: z ~ N(0, I); both decode the mean; ``noisy``: a draw from p(x | z)) and reports the
shipped digits classifier's mean confidence and the number of classes it sees, FID, precision
and recall against the 297 held-out digits (digits-classifier features), and sharpness
(variance of the Laplacian; the held-out digits score about 265).

Usage: python benchmarks/bench_vae_blur.py [--steps 3000] [--betas 1,0.1]
"""

from __future__ import annotations

import argparse

import torch

from probgen.data import load_dataset
from probgen.metrics.digits_classifier import load_digits_classifier
from probgen.metrics.suite import evaluate_samples
from probgen.train import fit


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--betas", default="1,0.1")
    parser.add_argument("--quick", action="store_true", help="300 steps")
    args = parser.parse_args()
    if args.quick:
        args.steps = 300
    torch.set_num_threads(1)
    data = load_dataset("digits")
    classifier = load_digits_classifier()
    print(
        f"## VAE samplers on digits: {args.steps} steps, defaults otherwise, 1000 samples, "
        "metrics against the 297 held-out digits"
    )
    print(
        "| beta | sampler | classifier confidence | classes | FID | precision | recall | "
        "sharpness |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for beta in args.betas.split(","):
        vae = fit("vae", data, None, steps=args.steps, quiet=True, options={"beta": beta})
        for sampler in vae.samplers:
            torch.manual_seed(0)
            samples = vae.sample(1000, sampler=sampler)
            with torch.no_grad():
                probs = torch.softmax(classifier(samples), -1)
            classes = int((torch.bincount(probs.argmax(-1), minlength=10) > 0).sum())
            m = evaluate_samples(
                samples,
                data.test,
                kind="image",
                value_range=(0.0, 16.0),
                metrics=["fid", "precision", "recall", "sharpness"],
            )
            print(
                f"| {beta} | {sampler} | {probs.max(-1).values.mean():.3f} | {classes} | "
                f"{m['fid']:.1f} | {m['precision']:.3f} | {m['recall']:.3f} | "
                f"{m['sharpness']:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
