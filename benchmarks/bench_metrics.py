"""Speed and behaviour of probgen.metrics against reference implementations.

Sections (all printed as markdown):
  - precision/recall/density/coverage in blocks on N x 2048 features: time, peak memory,
    and agreement with the ``prdc`` package on a smaller set;
  - FID on N x 2048 features: probgen vs torchmetrics (identity feature module), interleaved;
  - FID's upward bias at small N: two samples of one distribution (Gaussian; real digits);
  - digits: FID/KID/IS/precision/recall/sharpness for real, GMM, blurred and collapsed sets;
  - 2-D: FID cannot see dropped modes; mode metrics and recall can.

    python benchmarks/bench_metrics.py [--quick] [--out benchmarks/results/metrics.md]
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import time
import warnings
from datetime import datetime, timezone

import numpy as np
import torch
import torch.nn.functional as F

from probgen.data.digits import load_digits_split
from probgen.data.toys import MIXTURES, sample_toy
from probgen.metrics.fid import fid
from probgen.metrics.prdc import precision_recall_density_coverage
from probgen.metrics.suite import evaluate_samples


def table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def correlated_features(n: int, d: int, rng: np.random.Generator, shift: float = 0.0):
    """Non-negative features with a low-rank correlation, like pooled CNN activations."""
    z = rng.standard_normal((n, d), dtype=np.float32)
    # One fixed mixing for every call, so shift = 0 gives two samples of one distribution.
    mixing = np.random.default_rng(12345).standard_normal((64, d), dtype=np.float32) / 8
    latent = rng.standard_normal((n, 64), dtype=np.float32) + shift
    return np.maximum(z + latent @ mixing, 0.0)


def bench_fid_speed(n: int, d: int, repeats: int) -> str:
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Identity(torch.nn.Module):
        num_features = d

        def forward(self, x):
            return x

    rng = np.random.default_rng(0)
    a = torch.from_numpy(correlated_features(n, d, rng))
    b = torch.from_numpy(correlated_features(n, d, rng, shift=0.1))
    ours, theirs = [], []
    for _ in range(repeats):  # interleaved: the machine's load changes
        start = time.perf_counter()
        value = fid(a, b).value
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        metric = FrechetInceptionDistance(feature=Identity())
        metric.update(a, real=True)
        metric.update(b, real=False)
        tm_value = float(metric.compute())
        theirs.append(time.perf_counter() - start)
    rows = [
        ["probgen `fid`", statistics.median(ours), min(ours), value],
        ["torchmetrics FID (update + compute)", statistics.median(theirs), min(theirs), tm_value],
    ]
    rel = abs(value - tm_value) / abs(tm_value)
    return (
        f"### FID on {n} x {d} float32 features ({repeats} interleaved repeats)\n\n"
        + table(["implementation", "median s", "min s", "FID"], rows)
        + f"\n\nRelative difference of the values: {rel:.2e}.\n"
    )


def bench_prdc(n: int, d: int, n_check: int) -> str:
    import prdc

    rng = np.random.default_rng(1)
    real = correlated_features(n, d, rng)
    fake = correlated_features(n, d, rng, shift=0.02)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    start = time.perf_counter()
    ours = precision_recall_density_coverage(real, fake, k=3, block_size=1024)
    elapsed = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    full_matrix_gb = n * n * 8 / 1e9
    text = (
        f"### Precision/recall/density/coverage on {n} x {d} features\n\n"
        "k = 3, blocks of 1,024 rows.\n\n"
        + table(
            ["N", "seconds", "peak RSS before (GB)", "peak RSS after (GB)", *ours],
            [[n, elapsed, rss_before, rss_after, *ours.values()]],
        )
        + f"\n\nOne N x N float64 matrix would be {full_matrix_gb:.2f} GB; a block is "
        f"{1024 * n * 8 / 1e9:.3f} GB.\n\n"
    )
    real_s, fake_s = real[:n_check], fake[:n_check]
    start = time.perf_counter()
    ours = precision_recall_density_coverage(real_s, fake_s, k=3)
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    ref = prdc.compute_prdc(real_features=real_s, fake_features=fake_s, nearest_k=3)
    t_ref = time.perf_counter() - start
    rows = [
        ["probgen (float64, blocks)", t_ours, *ours.values()],
        ["prdc 0.2 (sklearn, float32, full matrices)", t_ref, *(float(v) for v in ref.values())],
    ]
    return text + (
        f"Agreement with `prdc` on {n_check} x {d}:\n\n"
        + table(["implementation", "seconds", *ours], rows)
        + "\n"
    )


def bench_fid_bias(sizes: list[int], repeats: int) -> str:
    rng = np.random.default_rng(2)
    d = 64
    rows = []
    all_digits = np.concatenate(load_digits_split()[::2])
    from probgen.metrics.features import load_feature_extractor

    digit_features = load_feature_extractor("digits").features(all_digits).double().numpy()
    warnings.filterwarnings("ignore", message="FID with N")  # small N is the point here
    for n in sizes:
        gauss = [
            fid(rng.standard_normal((n, d)), rng.standard_normal((n, d))).value
            for _ in range(repeats)
        ]
        digits = []
        if 2 * n <= len(digit_features):
            for _ in range(repeats):
                perm = rng.permutation(len(digit_features))
                digits.append(fid(digit_features[perm[:n]], digit_features[perm[n : 2 * n]]).value)
        rows.append(
            [
                n,
                float(np.mean(gauss)),
                float(np.std(gauss)),
                float(np.mean(digits)) if digits else "-",
                float(np.std(digits)) if digits else "-",
            ]
        )
    return (
        f"### FID between two samples of one distribution (true value 0), mean of {repeats}\n\n"
        "Gaussian: N(0, I) in 64 dimensions. Digits: two disjoint random halves of all 1,797 "
        "digits, in the digits classifier's 64 features.\n\n"
        + table(["N per set", "Gaussian FID", "std", "digits FID", "std"], rows)
        + "\n"
    )


def blur(x: np.ndarray) -> np.ndarray:
    t = torch.as_tensor(x)
    return F.avg_pool2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), 3, stride=1).numpy()


def bench_digits_ranking() -> str:
    from sklearn.mixture import GaussianMixture

    train_x, train_y, test_x, _ = load_digits_split()
    n = len(test_x)
    gmm = GaussianMixture(20, covariance_type="full", reg_covar=1e-2, random_state=0)
    gmm.fit(train_x.reshape(len(train_x), -1).astype(np.float64))
    sets = {
        "real (held-out test digits)": test_x,
        "GMM (20 full-covariance components on pixels)": np.clip(gmm.sample(n)[0], 0, 16).reshape(
            -1, 1, 8, 8
        ),
        "blurred test digits (3x3 box filter)": blur(test_x),
        "collapsed (training digits of classes 0 and 1)": train_x[np.isin(train_y, [0, 1])][:n],
    }
    names = ["fid", "kid", "is", "precision", "recall", "density", "coverage", "sharpness"]
    rows = []
    for label, x in sets.items():
        out = evaluate_samples(x, train_x, kind="image")
        rows.append([label, len(x), *(out[m] for m in names)])
    return (
        "### Digits: reference = the 1,500 training digits, features = shipped classifier\n\n"
        + table(["set", "N", *names], rows)
        + f"\n\nSharpness of the reference: {out['sharpness_real']:.4g}.\n"
    )


def bench_dropped_modes() -> str:
    centres, std = MIXTURES["8gaussians"]
    ref = sample_toy("8gaussians", 5000, seed=1)
    rng = np.random.default_rng(3)
    sets = {
        "all 8 modes": sample_toy("8gaussians", 5000, seed=2),
        "every other mode (4)": centres[rng.integers(0, 4, 5000) * 2]
        + std * rng.standard_normal((5000, 2)),
        "one mode": centres[np.zeros(5000, dtype=int)] + std * rng.standard_normal((5000, 2)),
    }
    rows = []
    for label, x in sets.items():
        out = evaluate_samples(x, ref, kind="vector", mixture=(centres, std))
        rows.append(
            [
                label,
                fid(x, ref).value,
                out["mmd"],
                out["swd"],
                out["modes"],
                out["high_quality"],
                out["reverse_kl"],
                out["precision"],
                out["recall"],
            ]
        )
    return (
        "### 8gaussians, 5,000 samples vs 5,000 reference points (FID on the raw 2-D points)\n\n"
        + table(
            [
                "samples",
                "FID",
                "MMD",
                "SWD",
                "modes",
                "high quality",
                "reverse KL",
                "precision",
                "recall",
            ],
            rows,
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a minute or so")
    parser.add_argument("--out", help="also write the markdown here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        n_fid, d_fid, n_prdc, n_check, sizes, repeats = 2000, 512, 2000, 500, [50, 200, 800], 3
    else:
        n_fid, d_fid, n_prdc, n_check, sizes, repeats = (
            10_000,
            2048,
            10_000,
            2000,
            [50, 100, 200, 400, 800, 3200, 12800],
            5,
        )
    sections = [
        f"Machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
        f"1 thread; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n",
        bench_prdc(n_prdc, d_fid, n_check),
        bench_fid_speed(n_fid, d_fid, repeats=3),
        bench_fid_bias(sizes, repeats),
        bench_digits_ranking(),
        bench_dropped_modes(),
    ]
    text = "\n".join(sections)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
