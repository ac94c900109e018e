"""Normalizing flows: probgen's NSF against zuko's NSF on 2-D data, and digits bits/dim.

2-D part (the issue's quality bar): both flows have 4 transforms, hidden [64, 64], 8 bins, and
train 2000 Adam steps (lr 1e-3, batch 512) on the same minibatches of standardised data (train
10k points, seed 0; test 2k, seed 1). Steps of the two flows are interleaved (the order flips
every step) so both see the same machine load; held-out NLL is reported in the data's own units
(model-space NLL plus sum_i log std_i of the standardisation).

Digits part: flows on scikit-learn's 8x8 digits (17 levels), uniformly dequantised and
rescaled to [0, 1); bits/dim in data units (level units) on the fixed 297-image test split, and
sample metrics from probgen.metrics.suite when it is available.

    python benchmarks/bench_flows.py            # full: 4 datasets x 2000 steps, digits
    python benchmarks/bench_flows.py --quick    # 300 steps, moons + far, short digits run
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from probgen.data.digits import DIGITS_LEVELS, load_digits_split
from probgen.data.preprocess import ImageScaling, Standardize
from probgen.data.toys import sample_toy
from probgen.models.base import Batch, DataInfo
from probgen.models.flows import Flow


def far_moons(n: int, seed: int) -> np.ndarray:
    """Moons moved far from the origin with very unequal scales (a stand-in for a CSV file)."""
    return sample_toy("moons", n, seed) * np.array([1000.0, 0.01]) + np.array([5e4, -300.0])


def two_d_data(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "far-moons":
        return far_moons(10_000, 0), far_moons(2_000, 1)
    return sample_toy(name, 10_000, 0), sample_toy(name, 2_000, 1)


class ZukoNSF:
    """zuko's NSF with the same budget (its defaults: autoregressive, 8 bins)."""

    name = "zuko NSF"

    def __init__(self, transforms: int, hidden: tuple[int, ...]):
        import zuko

        self.net = zuko.flows.NSF(2, transforms=transforms, hidden_features=list(hidden))

    def parameters(self):
        return self.net.parameters()

    def log_prob(self, x):
        return self.net().log_prob(x)


class ProbgenFlow:
    """probgen's Flow driven through its contract (loss -> backward -> step)."""

    def __init__(self, flow: str, transforms: int, hidden: tuple[int, ...]):
        self.name = f"probgen {flow}"
        self.net = Flow(
            Flow.Config(flow=flow, transforms=transforms, hidden=hidden), DataInfo((2,))
        )

    def parameters(self):
        return self.net.parameters()

    def log_prob(self, x):
        return self.net.log_prob(x)


def run_two_d(name: str, steps: int, batch: int, seed: int) -> list[dict]:
    train_v, test_v = two_d_data(name)
    pre = Standardize.fit(torch.as_tensor(train_v, dtype=torch.float64))
    train = pre.forward(torch.as_tensor(train_v, dtype=torch.float64))
    test = pre.forward(torch.as_tensor(test_v, dtype=torch.float64))
    torch.manual_seed(seed)
    flows = [ProbgenFlow("nsf", 4, (64, 64)), ZukoNSF(4, (64, 64))]
    optimizers = [torch.optim.Adam(f.parameters(), lr=1e-3) for f in flows]
    seconds = [0.0, 0.0]
    generator = torch.Generator().manual_seed(seed)
    for step in range(steps):
        x = train[torch.randint(len(train), (batch,), generator=generator)]
        order = (0, 1) if step % 2 == 0 else (1, 0)
        for i in order:
            start = time.perf_counter()
            optimizers[i].zero_grad(set_to_none=True)
            loss = -flows[i].log_prob(x).mean()
            loss.backward()
            optimizers[i].step()
            seconds[i] += time.perf_counter() - start
    rows = []
    for f, s in zip(flows, seconds):
        with torch.no_grad():
            nll = -(f.log_prob(test).mean().item() + pre.log_abs_det_jacobian(2))
        rows.append({"data": name, "flow": f.name, "nll": nll, "s_per_step": s / steps})
    return rows


def bits_per_dim(model: Flow, pre: ImageScaling, images: torch.Tensor, draws: int) -> float:
    """-E_u log2 p(v + u) / D in level units: the dequantisation bound on -log2 P(v) / D."""
    dim = images[0].numel()
    generator = torch.Generator().manual_seed(123)
    total = 0.0
    with torch.no_grad():
        for _ in range(draws):
            x = pre.forward(images, train=True, generator=generator)
            log_p = model.log_prob(x) + pre.log_abs_det_jacobian(dim)
            total += log_p.mean().item()
    return -total / draws / (dim * math.log(2))


def sample_metrics(samples: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    try:
        from probgen.metrics.suite import evaluate_samples
    except ImportError:
        return {}
    scores = evaluate_samples(samples, reference, kind="image")
    return {k: scores[k] for k in ("fid", "kid", "is", "precision", "recall") if k in scores}


def run_digits(
    flow: str, steps: int, batch: int, hidden: tuple[int, ...], seed: int, every: int
) -> dict:
    """Train on the 1500 training digits; test bits/dim every ``every`` steps (1 noise draw)."""
    train_v, _, test_v, _ = (torch.as_tensor(a) for a in load_digits_split())
    pre = ImageScaling(0.0, 1.0, levels=DIGITS_LEVELS, dequantize=True)
    info = DataInfo((1, 8, 8), kind="image", value_range=(0.0, 1.0), levels=DIGITS_LEVELS)
    torch.manual_seed(seed)
    model = Flow(Flow.Config(flow=flow, transforms=4, hidden=hidden), info)
    model.preprocessor = pre
    (optimizer,) = model.configure_optimizers(1e-3)
    generator = torch.Generator().manual_seed(seed)
    curve, seconds = [], 0.0
    for step in range(1, steps + 1):
        start = time.perf_counter()
        v = train_v[torch.randint(len(train_v), (batch,), generator=generator)]
        model.train_step(Batch(pre.forward(v, train=True, generator=generator)), [optimizer], step)
        seconds += time.perf_counter() - start
        if step % every == 0:
            model.eval()
            curve.append(f"{step}: {bits_per_dim(model, pre, test_v, 1):.2f}")
            model.train()
    model.eval()
    row = {
        "flow": flow,
        "hidden": hidden,
        "train_bpd": bits_per_dim(model, pre, train_v, 4),
        "test_bpd": bits_per_dim(model, pre, test_v, 4),
        "s_per_step": seconds / steps,
        "curve": ", ".join(curve),
    }
    with torch.no_grad():
        samples = model.sample(1000)
    row.update(sample_metrics(samples, test_v))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run for a smoke test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["2d", "digits"], help="run one part only")
    args = parser.parse_args()
    torch.set_num_threads(1)

    steps = 300 if args.quick else 2000
    datasets = (
        ["moons", "far-moons"]
        if args.quick
        else ["moons", "8gaussians", "checkerboard", "far-moons"]
    )
    if args.only != "digits":
        print("| data | flow | held-out NLL (nats, data units) | s/step |")
        print("|---|---|---|---|")
        for name in datasets:
            for row in run_two_d(name, steps, 512, args.seed):
                print(
                    f"| {row['data']} | {row['flow']} | {row['nll']:.3f} | "
                    f"{row['s_per_step']:.4f} |",
                    flush=True,
                )
    if args.only == "2d":
        return
    digit_steps = 200 if args.quick else 1000
    print()
    print(
        "| flow | hidden | train bits/dim | test bits/dim | test bits/dim by step | s/step "
        "| samples |"
    )
    print("|---|---|---|---|---|---|---|")
    for flow, hidden in [("realnvp", (256, 256)), ("nsf", (128, 128)), ("glow", (64,))]:
        row = run_digits(flow, digit_steps, 128, hidden, args.seed, digit_steps // 4)
        extra = ", ".join(
            f"{k} {v:.3g}"
            for k, v in row.items()
            if k not in ("flow", "hidden", "train_bpd", "test_bpd", "s_per_step", "curve")
        )
        print(
            f"| {row['flow']} | {list(row['hidden'])} | {row['train_bpd']:.3f} | "
            f"{row['test_bpd']:.3f} | {row['curve']} | {row['s_per_step']:.4f} | {extra} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
