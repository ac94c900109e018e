"""Energy-based models: the quality bars of issue 7.

1. ``8gaussians`` and ``moons``: held-out NLL (data units, nats) of the EBM trained by
   contrastive divergence with persistent Langevin chains, exact through ``log Z`` by quadrature,
   against a zuko NSF fitted to the same data in the same run; for ``8gaussians`` also the modes
   covered and the share of samples within 3 std of a centre (Langevin and NUTS samples). As a
   diagnostic, the same energy network fitted by exact maximum likelihood (``log Z`` by the same
   quadrature, differentiated) separates the cost of CD from that of the network. Heat maps of
   ``exp(-E)`` go to ``benchmarks/results/ebm_<toy>.png``.
2. Digits: classes of Langevin samples under probgen's digits classifier, and FID of the
   classifier's features against the held-out set.

Run: ``python benchmarks/bench_ebm.py [--quick] [--only toys,digits] [--toys 8gaussians,moons]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from probgen.config import build_config, parse_set_options
from probgen.data.digits import DIGITS_LEVELS, load_digits_split
from probgen.data.preprocess import ImageScaling, Standardize
from probgen.data.toys import MIXTURES, sample_toy
from probgen.infer.quadrature import density_on_grid, log_partition
from probgen.models.base import Batch, DataInfo
from probgen.models.ebm import EBM

RESULTS = Path(__file__).parent / "results"


def train_ebm(model: EBM, data: torch.Tensor, steps: int, lr: float, batch: int) -> float:
    """Contrastive divergence for ``steps`` steps on random batches; wall seconds."""
    optimizers = model.configure_optimizers(lr)
    start = time.perf_counter()
    for step in range(steps):
        index = torch.randint(len(data), (batch,))
        model.train_step(Batch(data[index]), optimizers, step)
    model.on_fit_end(data)
    return time.perf_counter() - start


def train_exact(model: EBM, data: torch.Tensor, steps: int, lr: float, batch: int) -> float:
    """The diagnostic: minimise ``mean E(x) + log Z`` with ``log Z`` by quadrature."""
    model.fit_box(data)
    low, high = model.box_low, model.box_high
    optimizer = torch.optim.Adam(model.energy_net.parameters(), lr=lr)
    start = time.perf_counter()
    for _ in range(steps):
        x = data[torch.randint(len(data), (batch,))]
        nll = model.energy(x).mean() + log_partition(model.energy, low, high, 128)
        optimizer.zero_grad()
        nll.backward()
        optimizer.step()
    model.on_fit_end(data)
    return time.perf_counter() - start


def train_nsf(data: torch.Tensor, steps: int, lr: float, batch: int):
    import zuko

    flow = zuko.flows.NSF(2, transforms=4, hidden_features=(64, 64))
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    start = time.perf_counter()
    for _ in range(steps):
        x = data[torch.randint(len(data), (batch,))]
        loss = -flow().log_prob(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return flow, time.perf_counter() - start


def heat_map(model: EBM, pre: Standardize, path: Path, samples: torch.Tensor) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes, density = density_on_grid(model.energy, model.box_low, model.box_high, 200)
    low, high = pre.inverse(model.box_low[None])[0], pre.inverse(model.box_high[None])[0]
    extent = [low[0].item(), high[0].item(), low[1].item(), high[1].item()]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4))
    left.imshow(density.T.numpy(), origin="lower", extent=extent, cmap="magma")
    left.set_title("exp(-E) / Z")
    right.scatter(*samples.T.numpy(), s=1, alpha=0.5)
    right.set_xlim(extent[:2])
    right.set_ylim(extent[2:])
    right.set_aspect("equal")
    right.set_title("Langevin samples")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def bench_toy(name: str, args) -> list[str]:
    from probgen.metrics.modes import mode_statistics

    torch.manual_seed(0)
    train_v = torch.from_numpy(sample_toy(name, 20000, seed=1))
    test_v = torch.from_numpy(sample_toy(name, 5000, seed=2))
    pre = Standardize.fit(train_v)
    train, test = pre.forward(train_v), pre.forward(test_v)
    to_data_units = pre.log_abs_det_jacobian(2)
    info = DataInfo((2,))
    overrides = parse_set_options(args.ebm_set)

    @torch.no_grad()
    def held_out_nll(log_prob) -> float:
        """Nats per held-out point in data units."""
        return -(log_prob(test).mean().item() + to_data_units)

    ebm = EBM(build_config(EBM.Config, overrides), info)
    ebm_time = train_ebm(ebm, train, args.steps, args.lr, args.batch)
    ebm_nll = held_out_nll(ebm.log_prob)

    # the ablation: the same training with Langevin chains only, no data jumps
    torch.manual_seed(0)
    plain = EBM(build_config(EBM.Config, {**overrides, "data_jumps": False}), info)
    plain_time = train_ebm(plain, train, args.steps, args.lr, args.batch)
    plain_nll = held_out_nll(plain.log_prob)

    flow, nsf_time = train_nsf(train, args.nsf_steps, 1e-3, args.batch)
    nsf_nll = held_out_nll(lambda x: flow().log_prob(x))

    exact = EBM(build_config(EBM.Config, overrides), info)
    exact_time = train_exact(exact, train, args.exact_steps, args.lr, args.batch)
    exact_nll = held_out_nll(exact.log_prob)

    torch.manual_seed(1)
    start = time.perf_counter()
    langevin = pre.inverse(ebm.generate(args.samples, sampler="langevin"))
    langevin_time = time.perf_counter() - start
    start = time.perf_counter()
    nuts = pre.inverse(ebm.generate(args.nuts_samples, sampler="nuts"))
    nuts_time = time.perf_counter() - start
    heat_map(ebm, pre, RESULTS / f"ebm_{name}.png", langevin)

    cfg = ebm.config
    lines = [
        f"### {name}",
        "",
        f"EBM: `{overrides or 'defaults'}`, hidden {cfg.hidden}, {args.steps} steps, batch "
        f"{args.batch}, lr {args.lr}, chains `{cfg.chains}`, k = {cfg.langevin_steps}, step "
        f"{cfg.step_size}, noise {cfg.noise_std or 'sqrt(2 step)'}, buffer {cfg.buffer_size}, "
        f"re-init {cfg.reinit_fraction}, data jumps {ebm.negatives.data_jumps}, L2 "
        f"{cfg.energy_l2}; log Z on a "
        f"{cfg.quadrature_points}^2 grid over the box "
        f"{[round(v, 3) for v in ebm.box_low.tolist()]} - "
        f"{[round(v, 3) for v in ebm.box_high.tolist()]} (model space); exact-ML diagnostic: "
        f"{args.exact_steps} steps, a 128^2 grid. NSF: zuko NSF(2, transforms=4, "
        f"hidden_features=(64, 64)), {args.nsf_steps} steps, lr 1e-3. 20,000 training and "
        "5,000 held-out points (seeds 1 and 2).",
        "",
        "| model | held-out NLL (nats, data units) | train time (s) |",
        "|---|---|---|",
        f"| EBM, CD with persistent chains | {ebm_nll:.3f} | {ebm_time:.0f} |",
        f"| EBM, CD with persistent chains, Langevin only (data_jumps=false) | "
        f"{plain_nll:.3f} | {plain_time:.0f} |",
        f"| zuko NSF | {nsf_nll:.3f} | {nsf_time:.0f} |",
        f"| same energy net, exact ML by quadrature (diagnostic) | {exact_nll:.3f} | "
        f"{exact_time:.0f} |",
        "",
        f"EBM - NSF = {ebm_nll - nsf_nll:+.3f} nats (bar: <= 0.3).",
        "",
    ]
    if name in MIXTURES:
        centres, std = MIXTURES[name]
        lines += ["| sampler | samples | time (s) | modes | within 3 std | reverse KL |"]
        lines += ["|---|---|---|---|---|---|"]
        for label, x, seconds in [
            (f"langevin, {cfg.sample_steps} steps from noise", langevin, langevin_time),
            (f"nuts, {cfg.mcmc_chains} particles, {cfg.mcmc_warmup} warm-up", nuts, nuts_time),
        ]:
            stats = mode_statistics(x.numpy(), centres, std)
            lines.append(
                f"| {label} | {len(x)} | {seconds:.0f} | {stats['modes']}/{len(centres)} | "
                f"{stats['high_quality']:.3f} | {stats['reverse_kl']:.3f} |"
            )
        lines.append("")
    print("\n".join(lines), flush=True)
    return lines


def bench_digits(args) -> list[str]:
    from probgen.metrics.digits_classifier import load_digits_classifier
    from probgen.metrics.fid import fid
    from probgen.plots import image_grid

    torch.manual_seed(0)
    train_v, _, test_v, _ = load_digits_split()
    train_v, test_v = torch.from_numpy(train_v), torch.from_numpy(test_v)
    pre = ImageScaling(*EBM.image_range, levels=DIGITS_LEVELS, dequantize=EBM.dequantize)
    info = DataInfo((1, 8, 8), "image", 10, EBM.image_range, DIGITS_LEVELS)
    overrides = parse_set_options(args.digits_set)
    model = EBM(build_config(EBM.Config, overrides), info)
    optimizers = model.configure_optimizers(args.lr)
    start = time.perf_counter()
    for step in range(args.digits_steps):
        v = train_v[torch.randint(len(train_v), (args.digits_batch,))]
        model.train_step(Batch(pre.forward(v, train=True)), optimizers, step)
    train_time = time.perf_counter() - start
    start = time.perf_counter()
    samples = pre.inverse(model.generate(args.samples, sampler="langevin"))
    sample_time = time.perf_counter() - start
    sets = {f"langevin, {model.config.sample_steps} steps from noise": samples}
    if model.negatives.buffer is not None:
        buffer = model.generate(args.samples, sampler="langevin", init="buffer", steps=0)
        sets["the replay buffer's chains"] = pre.inverse(buffer)
    tag = f"_{args.tag}" if args.tag else ""
    for label, x in zip(("noise", "buffer"), sets.values()):
        image_grid(x[:64].numpy(), RESULTS / f"ebm_digits{tag}_{label}.png", vmax=16.0)
    classifier = load_digits_classifier()
    with torch.no_grad():
        reference = classifier.features(test_v)
        rows = []
        for label, x in sets.items():
            classes = classifier(x).argmax(1).bincount(minlength=10)
            score = fid(classifier.features(x), reference)
            rows.append(
                f"| {label} | {len(x)} | {int((classes > 0).sum())}/10 | "
                f"{classes.tolist()} | {float(score):.2f} |"
            )
        train_fid = fid(classifier.features(train_v[: len(test_v)]), reference)
    cfg = model.config
    lines = [
        "### digits",
        "",
        f"EBM: `{overrides or 'defaults'}`, channels {cfg.channels}, {args.digits_steps} steps "
        f"({train_time:.0f} s), batch {args.digits_batch}, lr {args.lr}, chains "
        f"`{cfg.chains}`, k = {cfg.langevin_steps}, step {cfg.step_size}, noise "
        f"{cfg.noise_std}, L2 {cfg.energy_l2}; samples: {cfg.sample_steps} Langevin steps "
        f"from uniform noise ({sample_time:.0f} s). FID on the digits classifier's 64-d "
        f"features against the 297 held-out digits (training digits score "
        f"{float(train_fid):.2f}).",
        "",
        "| samples | n | classes present | class histogram | FID |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    print("\n".join(lines), flush=True)
    return lines


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few steps")
    parser.add_argument("--only", default="toys,digits")
    parser.add_argument("--toys", default="8gaussians,moons")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--exact-steps", type=int, default=1500)
    parser.add_argument("--nsf-steps", type=int, default=2000)
    parser.add_argument("--digits-steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--digits-batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--nuts-samples", type=int, default=400)
    parser.add_argument("--ebm-set", action="append", default=[], help="key=value (toys' EBM)")
    parser.add_argument("--digits-set", action="append", default=[], help="key=value (digits)")
    parser.add_argument("--tag", default="", help="suffix of the digits sample grids")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown here")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.exact_steps, args.nsf_steps, args.digits_steps = 200, 100, 200, 50
        args.samples, args.nuts_samples = 200, 40
    lines = []
    if "toys" in args.only:
        for name in args.toys.split(","):
            lines += bench_toy(name, args)
    if "digits" in args.only:
        lines += bench_digits(args)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
