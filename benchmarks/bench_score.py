"""Score models and Langevin kernels: the quality bars of issue 6.

1. MALA (``probgen.infer.langevin.MALA``) under ``pyro.infer.MCMC`` on a correlated 2-D
   Gaussian, read through ArviZ: r_hat, ESS, mean and covariance against the truth.
2. NCSN's classic test with a learned score: 0.8 N((5,5), I) + 0.2 N((-5,-5), I); the weight of
   the first mode under annealed Langevin and under plain Langevin.
3. 8gaussians and 25gaussians: modes covered and high-quality fraction (NCSN, annealed), plus a
   VP score SDE on 8gaussians (predictor-corrector, probability-flow ODE, ODE test NLL).
4. Digits: FID / precision / recall of NCSN and VP-SDE samples against the held-out set, sample
   time, and the VP ODE bits/dim.

Run: ``python benchmarks/bench_score.py [--quick] [--only mala,mixture,toys,digits]``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from probgen.data.digits import DIGITS_LEVELS, load_digits_split
from probgen.data.preprocess import ImageScaling, Standardize
from probgen.data.toys import MIXTURES, sample_toy
from probgen.infer.langevin import annealed_langevin_dynamics, langevin_dynamics
from probgen.models.base import Batch, DataInfo
from probgen.models.score import ScoreModel

SECTIONS = ("mala", "mixture", "toys", "digits")


def train(model: ScoreModel, draw_batch, steps: int, lr: float = 1e-3) -> float:
    """Fit ``model`` for ``steps`` steps on batches from ``draw_batch(step)``; wall seconds."""
    optimizers = model.configure_optimizers(lr)
    start = time.perf_counter()
    for step in range(steps):
        model.train_step(Batch(draw_batch(step)), optimizers, step)
    return time.perf_counter() - start


def bench_mala(quick: bool) -> list[str]:
    import arviz as az
    import pyro
    from pyro.infer import MCMC

    from probgen.infer.langevin import MALA

    mu = torch.tensor([1.0, -1.0])
    cov = torch.tensor([[1.0, 0.9], [0.9, 1.0]])
    precision = torch.linalg.inv(cov)

    def potential(params):
        diff = params["z"] - mu
        return 0.5 * diff @ precision @ diff

    pyro.set_rng_seed(0)
    chains, samples, warmup = 4, (2000 if quick else 20000), (500 if quick else 1000)
    starts = {"z": torch.tensor([[3.0, 3.0], [-3.0, -3.0], [3.0, -3.0], [-3.0, 3.0]])}
    mcmc = MCMC(
        MALA(potential_fn=potential, step_size=0.5),
        num_samples=samples,
        warmup_steps=warmup,
        num_chains=chains,
        initial_params=starts,
        disable_progbar=True,
    )
    start = time.perf_counter()
    mcmc.run()
    seconds = time.perf_counter() - start
    idata = az.from_pyro(mcmc)
    # unrounded diagnostics (az.summary rounds to two decimals)
    mean = idata.posterior["z"].mean(("chain", "draw")).values
    sd = idata.posterior["z"].std(("chain", "draw")).values
    mcse = az.mcse(idata)["z"].values
    ess_bulk = az.ess(idata, method="bulk")["z"].values
    ess_tail = az.ess(idata, method="tail")["z"].values
    r_hat = az.rhat(idata)["z"].values
    z = mcmc.get_samples()["z"]
    emp_cov = torch.cov(z.T)
    diag = mcmc.diagnostics()
    rates = [diag["acceptance rate"][f"chain {i}"] for i in range(chains)]
    steps = [diag["step size"][f"chain {i}"] for i in range(chains)]
    divergences = sum(len(diag["divergences"][f"chain {i}"]) for i in range(chains))
    lines = [
        f"MALA, potential of z ~ N(mu, [[1, .9], [.9, 1]]), {chains} chains x {samples} draws "
        f"(+{warmup} warm-up, chains started at (+-3, +-3)), {seconds:.1f} s",
        "",
        "| | mean | mcse_mean | true mean | sd | ess_bulk | ess_tail | r_hat |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i in range(2):
        lines.append(
            f"| z[{i}] | {mean[i]:.3f} | {mcse[i]:.3f} | {float(mu[i]):.1f} | {sd[i]:.3f} | "
            f"{ess_bulk[i]:.0f} | {ess_tail[i]:.0f} | {r_hat[i]:.4f} |"
        )
    lines += [
        "",
        f"covariance: {emp_cov[0, 0]:.3f}, {emp_cov[0, 1]:.3f}, {emp_cov[1, 1]:.3f} "
        "(true 1, 0.9, 1)",
        f"acceptance rates {', '.join(f'{r:.3f}' for r in rates)} (target 0.574); "
        f"adapted step sizes {', '.join(f'{s:.3f}' for s in steps)}; divergences {divergences}",
    ]
    return lines


def bench_mixture(quick: bool) -> list[str]:
    rng = np.random.default_rng(0)
    n = 20000
    first = rng.random(n) < 0.8
    data = np.where(first[:, None], 5.0, -5.0) + rng.standard_normal((n, 2))
    v = torch.tensor(data, dtype=torch.float32)
    pre = Standardize.fit(v)
    x = pre.forward(v)
    torch.manual_seed(0)
    model = ScoreModel(ScoreModel.Config(ema_decay=0.995), DataInfo((2,)))
    steps = 1000 if quick else 3000
    seconds = train(model, lambda s: x[torch.randint(0, n, (256,))], steps)

    def weight(samples: torch.Tensor) -> float:
        return float((pre.inverse(samples).sum(1) > 0).float().mean())

    net = model.sampling_net

    def score(x, sigma):
        return model.score(x, sigma=x.new_full((len(x),), sigma), net=net)

    sigmas = model.sigmas()
    sigma_min = float(sigmas[-1])
    # two starts in data units: Song & Ermon's uniform box [-8, 8]^2 (symmetric about the
    # modes) and every particle in the small mode. Plain Langevin runs at sigma_min with as
    # many steps as the annealed run and a step sized for the modes' width (0.24 in model space)
    torch.manual_seed(1)
    starts = {
        "uniform on [-8, 8]^2": torch.rand(2000, 2) * 16 - 8,
        "N((-5, -5), I)": torch.randn(2000, 2) - 5,
    }
    lines = [
        f"NCSN on 0.8 N((5,5), I) + 0.2 N((-5,-5), I): {steps} training steps ({seconds:.0f} s), "
        "2000 samples per row, learned score (EMA)",
        "",
        "| start | sampler | weight of (5, 5) | error | sample time |",
        "|---|---|---|---|---|",
    ]
    for start_name, start_points in starts.items():
        start_points = pre.forward(start_points)
        samplers = {
            "annealed Langevin (50 levels x 10 steps)": lambda x: annealed_langevin_dynamics(
                x, score, sigmas, 10, eps=5e-5
            ),
            "plain Langevin (500 steps of 2.5e-3 at sigma_min)": lambda x: langevin_dynamics(
                x, lambda y: score(y, sigma_min), 500, 2.5e-3
            ),
        }
        for sampler_name, run in samplers.items():
            start = time.perf_counter()
            with torch.no_grad():
                w = weight(run(start_points))
            lines.append(
                f"| {start_name} | {sampler_name} | {w:.3f} | {abs(w - 0.8):.3f} | "
                f"{time.perf_counter() - start:.1f} s |"
            )
    return lines


def bench_toys(quick: bool) -> list[str]:
    from probgen.metrics.modes import mode_statistics

    lines = [
        "| data | model | sampler | modes (of K) | high quality | reverse KL | train | sample |",
        "|---|---|---|---|---|---|---|---|",
    ]
    # (data, sde, samplers, training steps): the sharp 25gaussians modes (std 0.018 in model
    # space) need the longest training
    runs = [
        ("8gaussians", "ncsn", ("annealed",), 5000),
        ("25gaussians", "ncsn", ("annealed",), 10000),
        ("8gaussians", "vp", ("pc", "ode"), 6000),
    ]
    nll = []
    for name, sde, samplers, steps in runs:
        v = torch.tensor(sample_toy(name, 20000, seed=0))
        pre = Standardize.fit(v)
        x = pre.forward(v)
        torch.manual_seed(0)
        model = ScoreModel(ScoreModel.Config(sde=sde, ema_decay=0.995), DataInfo((2,)))
        steps = steps // 4 if quick else steps
        seconds = train(model, lambda s, x=x: x[torch.randint(0, len(x), (256,))], steps)
        centres, std = MIXTURES[name]
        for sampler in samplers:
            torch.manual_seed(1)
            start = time.perf_counter()
            samples = pre.inverse(model.generate(2000, sampler=sampler))
            t = time.perf_counter() - start
            stats = mode_statistics(samples.numpy(), centres, std)
            lines.append(
                f"| {name} | {sde} | {sampler} | {stats['modes']} of {len(centres)} | "
                f"{stats['high_quality']:.3f} | {stats['reverse_kl']:.3f} | "
                f"{steps} steps, {seconds:.0f} s | {t:.1f} s |"
            )
        if sde == "vp":
            test = torch.tensor(sample_toy(name, 500, seed=1))
            torch.manual_seed(2)
            log_prob = model.log_prob(pre.forward(test)) + pre.log_abs_det_jacobian(2)
            # the true mixture's density at the same points, for reference
            comps = torch.distributions.Normal(torch.tensor(centres).float(), std)
            true_log_prob = torch.logsumexp(
                comps.log_prob(test[:, None, :]).sum(-1) - math.log(len(centres)), dim=1
            )
            nll.append(
                f"{name}, VP SDE: test NLL by the ODE (Hutchinson, 100 RK4 steps) "
                f"{-float(log_prob.mean()):.3f} nats in data units (true density: "
                f"{-float(true_log_prob.mean()):.3f})"
            )
    return lines + [""] + nll


def bench_digits(quick: bool) -> list[str]:
    from probgen.metrics.suite import evaluate_samples

    train_v, _, test_v, _ = load_digits_split()
    train_v, test_v = torch.tensor(train_v), torch.tensor(test_v)
    pre = ImageScaling(*ScoreModel.image_range, levels=DIGITS_LEVELS, dequantize=True)
    info = DataInfo(
        (1, 8, 8), kind="image", value_range=ScoreModel.image_range, levels=DIGITS_LEVELS
    )
    metrics = ("fid", "precision", "recall", "density", "coverage")
    fmt = " | ".join
    steps = 1500 if quick else 6000
    lines = [
        f"MLP 512x3 over the flattened 8x8, {steps} steps of batch 128; 1000 samples per row; "
        "reference: the 297 held-out digits",
        "",
        f"| model | sampler | {fmt(metrics)} | train | sample |",
        "|---|---|" + "---|" * len(metrics) + "---|---|",
    ]
    # NCSN: a smaller step than the toys' default (eps / sigma_L^2 = 0.05 instead of 0.5) with
    # more steps per level, as the larger step leaves speckled images in 64 dimensions
    runs = {
        "ncsn": [("annealed", dict(n_steps_each=20, step_lr=5e-6))],
        "vp": [("pc", {}), ("ode", {})],
    }
    bits_per_dim = ""
    for sde, samplers in runs.items():
        torch.manual_seed(0)
        model = ScoreModel(ScoreModel.Config(sde=sde, hidden=(512, 512, 512)), info)
        g = torch.Generator().manual_seed(0)

        def batch(step, g=g):
            idx = torch.randint(0, len(train_v), (128,), generator=g)
            return pre.forward(train_v[idx], train=True, generator=g)

        seconds = train(model, batch, steps)
        for sampler, options in samplers:
            torch.manual_seed(1)
            start = time.perf_counter()
            samples = pre.inverse(model.generate(1000, sampler=sampler, **options))
            t = time.perf_counter() - start
            scores = evaluate_samples(samples, test_v, kind="image", metrics=metrics)
            lines.append(
                f"| {sde} | {sampler} | {fmt(f'{scores[m]:.3f}' for m in metrics)} | "
                f"{seconds:.0f} s | {t:.1f} s |"
            )
        if sde == "vp":
            torch.manual_seed(2)
            log_prob = model.log_prob(pre.forward(test_v)) + pre.log_abs_det_jacobian(64)
            bits = -float(log_prob.mean()) / (64 * math.log(2))
            bits_per_dim = (
                f"VP SDE test likelihood by the ODE (Hutchinson, 100 RK4 steps), dequantised: "
                f"{bits:.3f} bits/dim on the 297 held-out digits (uniform over 17 levels: "
                f"{math.log2(DIGITS_LEVELS):.3f})"
            )
    floor = evaluate_samples(train_v[:1000], test_v, kind="image", metrics=metrics)
    lines.append(
        f"| 1000 training digits (floor) | | {fmt(f'{floor[m]:.3f}' for m in metrics)} | | |"
    )
    return lines + ["", bits_per_dim]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and draws")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sections = {
        "mala": bench_mala,
        "mixture": bench_mixture,
        "toys": bench_toys,
        "digits": bench_digits,
    }
    for name in args.only.split(","):
        start = time.perf_counter()
        lines = sections[name](args.quick)
        print(f"## {name} ({time.perf_counter() - start:.0f} s)\n")
        print("\n".join(lines) + "\n", flush=True)


if __name__ == "__main__":
    main()
