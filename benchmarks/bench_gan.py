"""Mode collapse of the GAN family: the minimax game, the non-saturating loss and the remedies.

Every configuration is trained through the one fit loop (:func:`probgen.train.fit`, the same
path as ``probgen fit gan``) on the 25-Gaussian grid and the 8-Gaussian ring, then 2,500 samples
in data units are scored with :func:`probgen.metrics.modes.mode_statistics` (VEEGAN / PacGAN
protocol: high quality = within 3 std of a centre; a mode counts with >= 20% of its fair share
of high-quality samples; reverse KL of the mode histogram against uniform). With ``--digits``
the chosen configurations are also fitted to the 8x8 digits and scored with FID, precision and
recall in the shipped digits classifier's features (297 samples against the 297 held-out
digits), and the class histogram of their samples.

    python benchmarks/bench_gan.py                   # the recorded run (see results/gan.md)
    python benchmarks/bench_gan.py --quick           # one seed, few steps: a smoke test
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone

import numpy as np
import torch

from probgen.data.datasets import load_dataset
from probgen.metrics.modes import mode_statistics
from probgen.train import fit

# name -> overrides of GAN.Config; "default" is GAN.Config() itself.
PLAIN = {"pack": 1, "minibatch_std": False, "lr_g_scale": 1.0, "lr_d_scale": 1.0}
PLAIN.update(ema_decay=None, r1_weight=0.0, data_scale=1.0, jacobian_truncation=None)
REMEDIES = {**PLAIN, "loss": "nonsaturating", "minibatch_std": True, "lr_g_scale": 0.2}
REMEDIES.update(ema_decay=0.999)
# Models with an EMA are also scored through the raw generator: the EMA's effect, same run;
# models with Jacobian truncation also without it (every draw of the EMA generator).
RAW = " (raw G, no EMA)"
UNTRUNCATED = " (no truncation)"
CONFIGS: dict[str, dict] = {
    "minimax": {**PLAIN, "loss": "minimax"},
    "nonsaturating": {**PLAIN, "loss": "nonsaturating"},
    "default": {},
    # the former default on images: the toys' 2-D latent (the default now picks 64 for images)
    "default, 2-d latent": {"latent_dim": 2},
    "remedies": REMEDIES,
    "remedies + pack 4": {**REMEDIES, "pack": 4},
    "remedies without TTUR": {**REMEDIES, "lr_g_scale": 1.0},
    "remedies without minibatch std": {**REMEDIES, "minibatch_std": False},
}
TOYS = ("25gaussians", "8gaussians")
N_SAMPLES = 2500


def score_toy(model, data: str, seed: int, variant: str = "generate") -> dict:
    """Mode statistics of ``N_SAMPLES`` draws in data units.

    ``variant``: ``generate`` (what ``probgen sample`` draws), ``untruncated`` (every draw of
    the generator ``generate`` reads, no Jacobian truncation) or ``raw`` (the raw generator).
    """
    centres, std = load_dataset(data, seed=seed).mixture
    torch.manual_seed(10_000 + seed)
    with torch.no_grad():
        if variant == "generate":
            draws = model.generate(N_SAMPLES)
        else:
            averaged = variant == "untruncated" and model.generator_ema is not None
            draws = model.model(num_samples=N_SAMPLES, averaged=averaged)
    samples = model.preprocessor.inverse(draws).numpy()
    return mode_statistics(samples, centres, std)


def run_toys(args) -> list[dict]:
    rows = []
    for data in args.datasets:
        for name in args.configs:
            for seed in args.seeds:
                start = time.perf_counter()
                model = fit(
                    "gan",
                    data,
                    steps=args.steps,
                    batch_size=args.batch_size,
                    lr=args.lr,
                    seed=seed,
                    quiet=True,
                    options=CONFIGS[name],
                )
                seconds = time.perf_counter() - start
                row = {"data": data, "config": name, "seed": seed, "s": seconds}
                variants = [("", "generate")]
                if model.config.jacobian_truncation is not None:
                    variants.append((UNTRUNCATED, "untruncated"))
                if model.generator_ema is not None:
                    variants.append((RAW, "raw"))
                for suffix, variant in variants:
                    label = {**row, "config": name + suffix}
                    rows.append({**label, **score_toy(model, data, seed, variant)})
                    print(rows[-1], flush=True)
    return rows


def mean_sd(values) -> str:
    values = list(values)
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.mean(values):.3g} ± {statistics.stdev(values):.2g}"


def toy_table(rows: list[dict]) -> str:
    lines = [
        "| data | configuration | modes | high quality % | reverse KL | fit s (per seed) |",
        "|---|---|---|---|---|---|",
    ]
    keys = dict.fromkeys((r["data"], r["config"]) for r in rows)
    for data, name in keys:
        group = [r for r in rows if r["data"] == data and r["config"] == name]
        lines.append(
            f"| {data} | {name} | {mean_sd(r['modes'] for r in group)} "
            f"| {mean_sd(100 * r['high_quality'] for r in group)} "
            f"| {mean_sd(r['reverse_kl'] for r in group)} | {mean_sd(r['s'] for r in group)} |"
        )
    return "\n".join(lines)


DIGIT_METRICS = ["fid", "precision", "recall"]


def score_digits(samples, test) -> dict:
    """FID / precision / recall against the held-out digits, and the class histogram."""
    from probgen.metrics.features import digits_features
    from probgen.metrics.suite import evaluate_samples

    scores = evaluate_samples(samples, test, kind="image", metrics=DIGIT_METRICS)
    labels = digits_features().probabilities(samples).argmax(1).numpy()
    scores["histogram"] = np.bincount(labels, minlength=10)
    return scores


def run_digits(args) -> list[dict]:
    dataset = load_dataset("digits")
    n = len(dataset.test)
    rows = [
        {"config": "training digits (reference)", **score_digits(dataset.train[:n], dataset.test)}
    ]
    for name in args.digits_configs:
        start = time.perf_counter()
        model = fit(
            "gan",
            dataset,
            steps=args.digits_steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=0,
            quiet=True,
            options=CONFIGS[name],
        )
        seconds = time.perf_counter() - start
        torch.manual_seed(10_000)
        rows.append({"config": name, "s": seconds, **score_digits(model.sample(n), dataset.test)})
        print(rows[-1], flush=True)
    return rows


def digits_table(rows: list[dict]) -> str:
    lines = [
        "| configuration | FID | precision | recall | classes 0-9 (argmax) | KL to uniform "
        "| fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = r["histogram"] / r["histogram"].sum()
        kl = float(np.sum(p[p > 0] * np.log(len(p) * p[p > 0])))
        seconds = f"{r['s']:.0f}" if "s" in r else "-"
        lines.append(
            f"| {r['config']} | {r['fid']:.1f} | {r['precision']:.3f} | {r['recall']:.3f} "
            f"| {r['histogram'].tolist()} | {kl:.3f} | {seconds} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, 300 steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="default: GAN.default_steps")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--datasets", nargs="*", default=list(TOYS), choices=TOYS)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--digits", action="store_true", help="also fit and score the digits")
    parser.add_argument("--digits-steps", type=int, default=None)
    parser.add_argument("--digits-configs", nargs="+", default=["default"], choices=list(CONFIGS))
    parser.add_argument("--out", default=None, help="write the markdown report here")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps, args.digits_steps = args.seeds[:1], 300, 300
    torch.set_num_threads(1)

    sections = [toy_table(run_toys(args))] if args.datasets else []
    if args.digits:
        sections.append(digits_table(run_digits(args)))
    report = "\n\n".join(sections)
    print(report)
    if args.out:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(args.out, "w") as f:
            f.write(f"<!-- written by benchmarks/bench_gan.py at {stamp} -->\n\n{report}\n")


if __name__ == "__main__":
    main()
