"""Diffusion benchmarks: sampler overhead, 2-D mode coverage, digits quality and likelihood.

Sections (``--only`` picks some; all by default):

- ``overhead``: per-step time on a (256, 2) batch of the network alone, of each probgen sampler
  with that network, of each sampler with a free network (the overhead itself), and of diffusers'
  DDPMScheduler/DDIMScheduler ``step`` (if diffusers is importable; it is never a probgen
  dependency, add its install folder with ``--diffusers-path``). All interleaved in one process.
- ``toys``: train the default model on 8gaussians and 25gaussians, then mode statistics
  (probgen.metrics.modes) of 2500 draws per sampler in data units.
- ``cli-toys``: what ``probgen fit diffusion -d NAME`` then ``probgen evaluate RUN`` measure:
  training through ``probgen.train.fit`` with the command line's defaults (batch 128, lr 1e-3,
  10,000 training points, data seed = training seed, the model's default steps unless
  ``--cli-steps``), then mode statistics of as many draws as held-out points (2,000) per
  sampler, for each ``--seeds``; DPM-Solver++ is also run on the former step list (evenly in
  t, ending at sigma = 0.09 for 20 steps) on the same network.
- ``digits``: train the default model (a small U-Net) and a plain PyTorch DDPM reference
  (eps-MLP, linear schedule, sigma^2 = beta, L_simple, EMA 0.999) on the 1500 training digits
  with the same steps, batch and learning rate; FID / precision / recall against the 297 test
  digits (digits-classifier features), bits/dim of the test digits (dequantised ELBO) and the
  time to draw the samples with each sampler.
- ``digits-dpm``: train the default model on the digits, then FID / precision / recall of
  DPM-Solver++ (20 and 10 steps) on its log-SNR step list and on the former one (evenly in t),
  with 50-step DDIM for reference: the same network throughout.

Usage:
    python benchmarks/bench_diffusion.py [--quick] [--only overhead,toys,digits]
        [--steps 20000] [--toy-steps 6000] [--diffusers-path DIR]
    python benchmarks/bench_diffusion.py --only cli-toys --toys 25gaussians --seeds 0 1 2
        [--cli-steps 10000]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time

import torch
from torch import nn

from probgen.data.datasets import load_dataset
from probgen.data.digits import load_digits_split
from probgen.data.preprocess import ImageScaling, Standardize
from probgen.data.toys import MIXTURES, sample_toy
from probgen.infer.diffusion_samplers import dpm_solver_2m, spaced_timesteps
from probgen.metrics.modes import mode_statistics
from probgen.metrics.suite import evaluate_samples
from probgen.models.base import Batch, DataInfo
from probgen.models.diffusion import Diffusion

VECTOR = DataInfo((2,))
DIGITS = DataInfo((1, 8, 8), kind="image", value_range=(-1.0, 1.0), levels=17)


def timed(fn, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


# -- overhead ------------------------------------------------------------------------------
class CachedOutput(nn.Module):
    """A 'network' that costs nothing: returns a fixed output of the right shape."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, x, t):
        return self.out


def bench_overhead(repeats: int, steps: int) -> None:
    torch.manual_seed(0)
    model = Diffusion(Diffusion.Config(), VECTOR)
    net = model.ema.module
    x = torch.randn(256, 2)
    timesteps = spaced_timesteps(1000, steps)
    t_tensors = [torch.full((256,), float(k)) for k in timesteps]
    free = copy.deepcopy(model)
    with torch.no_grad():
        free.ema.module = CachedOutput(net(x, t_tensors[0]))

    def network_only():
        with torch.no_grad():
            for t in t_tensors:
                net(x, t)

    runs = {"network only": network_only}
    for sampler in Diffusion.samplers:
        runs[f"{sampler} (full step)"] = lambda s=sampler: model.generate(
            256, sampler=s, steps=steps
        )
        runs[f"{sampler} (free network)"] = lambda s=sampler: free.generate(
            256, sampler=s, steps=steps
        )
    runs.update(_diffusers_runs(x, steps))
    per_step = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            per_step[name].append(timed(fn)[1] / steps * 1e3)
    # the minimum over repeats is the cost without preemption by other jobs on the machine
    best = {name: min(v) for name, v in per_step.items()}
    med = {name: statistics.median(v) for name, v in per_step.items()}
    print(f"\n### Sampler overhead: (256, 2) batch, {steps} steps, {repeats} interleaved repeats")
    print("\n| what | ms / step (min) | ms / step (median) | beyond the network (min) |")
    print("|---|---|---|---|")
    for name in per_step:
        extra = ""
        if name.endswith("(full step)"):
            extra = f"{best[name] - best['network only']:.4f}"
        elif "free network" in name or "diffusers" in name:
            extra = f"{best[name]:.4f}"
        print(f"| {name} | {best[name]:.4f} | {med[name]:.4f} | {extra} |")


def _diffusers_runs(x: torch.Tensor, steps: int) -> dict:
    try:
        from diffusers import DDIMScheduler, DDPMScheduler
    except ImportError:
        print("diffusers not importable: its scheduler step is not measured")
        return {}
    eps = torch.randn_like(x)
    ddim = DDIMScheduler(num_train_timesteps=1000, clip_sample=False)
    ddim.set_timesteps(steps)
    ddpm = DDPMScheduler(num_train_timesteps=1000, clip_sample=False)
    ddpm.set_timesteps(steps)

    def run(scheduler):
        sample = x
        for t in scheduler.timesteps:
            sample = scheduler.step(eps, t, sample).prev_sample
        return sample

    return {
        "diffusers DDIMScheduler.step only": lambda: run(ddim),
        "diffusers DDPMScheduler.step only": lambda: run(ddpm),
    }


# -- training ------------------------------------------------------------------------------
def train(model, draw_batch, steps: int, lr: float) -> float:
    optimizers = model.configure_optimizers(lr)
    start = time.perf_counter()
    for step in range(steps):
        model.train_step(Batch(draw_batch()), optimizers, step)
    return time.perf_counter() - start


class BatchDrawer:
    """Random minibatches of a fixed tensor, from its own seeded generator."""

    def __init__(self, x: torch.Tensor, size: int, seed: int = 1):
        self.x, self.size = x, size
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self) -> torch.Tensor:
        return self.x[torch.randint(len(self.x), (self.size,), generator=self.generator)]


# -- toys ----------------------------------------------------------------------------------
def bench_toys(names: list[str], steps: int, n_samples: int) -> None:
    print(f"\n### 2-D mode coverage: default config, {steps} steps, batch 512, lr 1e-3")
    print(f"{n_samples} draws per sampler, statistics in data units")
    print("\n| data | sampler | modes | high quality | reverse KL | sample time (s) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        torch.manual_seed(0)
        data = torch.from_numpy(sample_toy(name, 50_000, seed=0))
        pre = Standardize.fit(data)
        x = pre.forward(data)
        model = Diffusion(Diffusion.Config(), VECTOR)
        fit_time = train(model, BatchDrawer(x, 512), steps, 1e-3)
        centres, std = MIXTURES[name]
        for sampler, k in (("ancestral", None), ("ddim", 50), ("dpm++2m", 20), ("dpm++2m", 10)):
            samples, seconds = timed(model.generate, n_samples, sampler=sampler, steps=k)
            stats = mode_statistics(pre.inverse(samples).numpy(), centres, std)
            label = f"{sampler} ({k or 1000} steps)"
            print(
                f"| {name} | {label} | {stats['modes']}/{len(centres)} | "
                f"{stats['high_quality']:.3f} | {stats['reverse_kl']:.3f} | {seconds:.2f} |"
            )
        print(f"| {name} | (training time {fit_time:.0f} s) | | | | |")


def _former_dpm(model: Diffusion, n: int, steps: int) -> torch.Tensor:
    """DPM-Solver++ on the step list it used before ``max_log_snr`` (evenly in t)."""
    start = model.schedule.last_index_above(model.min_log_snr)
    x = torch.randn(n, *model.data_info.event_shape)
    timesteps = spaced_timesteps(model.schedule.num_steps, steps, start)
    return dpm_solver_2m(model._predictor(clip=True), x, model._alpha_bar, timesteps)


def bench_cli_toys(names: list[str], seeds: list[int], steps: int | None) -> None:
    from probgen.train import fit

    budget = f"{steps} steps" if steps else "the default steps"
    print(f"\n### probgen fit diffusion -d NAME ({budget}, batch 128, lr 1e-3), per seed")
    print("\n| data | seed | sampler | modes | high quality | reverse KL | fit s |")
    print("|---|---|---|---|---|---|---|")
    samplers = [("ancestral", None), ("ddim", 50), ("dpm++2m", 20), ("dpm++2m", 10)]
    for name in names:
        for seed in seeds:
            model, fit_time = timed(fit, "diffusion", name, steps=steps, seed=seed, quiet=True)
            dataset = load_dataset(name, seed=seed)
            centres, std = dataset.mixture
            n = len(dataset.test)
            runs = [(f"{s} ({k or 'all'} steps)", s, k) for s, k in samplers]
            runs += [(f"dpm++2m ({k} steps, former step list)", None, k) for k in (20, 10)]
            for label, sampler, k in runs:
                torch.manual_seed(0)
                with torch.no_grad():
                    if sampler is None:
                        draws = model.preprocessor.inverse(_former_dpm(model, n, k))
                    else:
                        draws = model.sample(n, sampler=sampler, steps=k)
                stats = mode_statistics(draws.numpy(), centres, std)
                print(
                    f"| {name} | {seed} | {label} | {stats['modes']}/{len(centres)} | "
                    f"{stats['high_quality']:.4f} | {stats['reverse_kl']:.4f} | {fit_time:.0f} |",
                    flush=True,
                )


# -- digits --------------------------------------------------------------------------------
class ReferenceDDPM(nn.Module):
    """Ho et al. 2020 in plain PyTorch: an eps-predicting MLP on flattened images.

    Linear betas 1e-4..0.02 over T = 1000, sigma_t^2 = beta_t, L_simple, Algorithm 2 sampling.
    """

    def __init__(self, dim: int, hidden: int = 512, emb: int = 128, steps: int = 1000):
        super().__init__()
        betas = torch.linspace(1e-4, 0.02, steps, dtype=torch.float64)
        self.register_buffer("betas", betas.float())
        self.register_buffer("alpha_bar", torch.cumprod(1 - betas, 0).float())
        half = emb // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / half))
        self.net = nn.Sequential(
            nn.Linear(dim + emb, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        args = t.reshape(-1, 1).float() * self.freqs
        flat = x.reshape(x.shape[0], -1)
        return self.net(torch.cat([flat, args.sin(), args.cos()], 1)).reshape(x.shape)

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        t = torch.randint(len(self.betas), (x0.shape[0],))
        ab = self.alpha_bar[t].reshape(-1, *([1] * (x0.dim() - 1)))
        noise = torch.randn_like(x0)
        return (self(ab.sqrt() * x0 + (1 - ab).sqrt() * noise, t) - noise).square().mean()


class ReferenceTrainer:
    """Adam on L_simple with an EMA copy (decay 0.999, same warm-up as probgen's)."""

    def __init__(self, model: ReferenceDDPM, lr: float):
        self.model = model
        self.ema = copy.deepcopy(model).requires_grad_(False)
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step(self, x: torch.Tensor, step: int) -> None:
        self.opt.zero_grad(set_to_none=True)
        self.model.loss(x).backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.model.parameters()):
                e.lerp_(p, 1 - decay)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Ho et al.'s Algorithm 2, output clipped to the image range."""
        m = self.ema
        x = torch.randn(n, 1, 8, 8)
        for k in range(len(m.betas) - 1, -1, -1):
            beta, ab = m.betas[k], m.alpha_bar[k]
            eps = m(x, torch.full((n,), k))
            x = (x - beta / (1 - ab).sqrt() * eps) / (1 - beta).sqrt()
            if k > 0:
                x = x + beta.sqrt() * torch.randn_like(x)
        return x.clamp(-1, 1)

    def as_probgen(self) -> Diffusion:
        """The same chain as a probgen model, to compute its ELBO with the same code."""
        config = Diffusion.Config(
            schedule="linear", parameterization="eps", variance="beta", objective="simple"
        )
        wrapped = Diffusion(config, DIGITS)
        wrapped.network = self.ema
        wrapped.ema.module = self.ema
        return wrapped


def bits_per_dim(
    model: Diffusion, test_v: torch.Tensor, pre: ImageScaling, t_samples: int | None
) -> float:
    g = torch.Generator().manual_seed(0)
    x = pre.forward(test_v, train=True, generator=g)  # uniform dequantisation: a bound on P(v)
    torch.manual_seed(0)
    dim = x[0].numel()
    log_p = model.elbo(x, t_samples=t_samples) + pre.log_abs_det_jacobian(dim)
    return float(-log_p.mean() / (dim * math.log(2)))


def image_metrics(samples_v: torch.Tensor, test_v: torch.Tensor) -> dict:
    return evaluate_samples(
        samples_v.numpy(),
        test_v.numpy(),
        kind="image",
        metrics=["fid", "precision", "recall"],
        value_range=(0.0, 16.0),
    )


def bench_digits_dpm(steps: int, n_samples: int, channels: int, lr: float) -> None:
    """DPM-Solver++ on its log-SNR step list against the former one (evenly in t), same net."""
    train_v, _, test_v, _ = (torch.from_numpy(a) for a in load_digits_split())
    pre = ImageScaling(-1.0, 1.0, levels=17, dequantize=True)
    g = torch.Generator().manual_seed(0)

    def draw():
        idx = torch.randint(len(train_v), (128,), generator=g)
        return pre.forward(train_v[idx], train=True, generator=g)

    torch.manual_seed(0)
    model = Diffusion(Diffusion.Config(channels=channels), DIGITS)
    fit_time = train(model, draw, steps, lr)
    print(f"\n### digits, U-Net {channels} channels, {steps} steps ({fit_time:.0f} s)")
    print(f"{n_samples} samples per row against the 297 test digits\n")
    print("| sampler | step list | last step (sigma) | FID | precision | recall |")
    print("|---|---|---|---|---|---|")
    ab = model._alpha_bar
    for sampler, k, former in (
        ("ddim", 50, False),
        ("dpm++2m", 20, False),
        ("dpm++2m", 20, True),
        ("dpm++2m", 10, False),
        ("dpm++2m", 10, True),
    ):
        torch.manual_seed(1)
        with torch.no_grad():
            x = (
                _former_dpm(model, n_samples, k)
                if former
                else model.generate(n_samples, sampler=sampler, steps=k)
            )
        last = (
            spaced_timesteps(1000, k, model.schedule.last_index_above(model.min_log_snr))[-1]
            if former
            else model._sampler_steps(sampler, k)[-1]
        )
        scores = image_metrics(pre.inverse(x), test_v)
        listing = (
            "evenly in t (former)"
            if former
            else ("evenly in t" if sampler == "ddim" else "evenly in log-SNR")
        )
        print(
            f"| {sampler} ({k} steps) | {listing} | k = {last} ({math.sqrt(1 - ab[last]):.3f}) "
            f"| {scores['fid']:.2f} | {scores['precision']:.3f} | {scores['recall']:.3f} |",
            flush=True,
        )


def bench_digits(
    steps: int,
    n_samples: int,
    channels: int,
    lr: float,
    ancestral_steps: int,
    elbo_t: int | None,
    save_model: str | None = None,
    dropout: float = Diffusion.Config().dropout,
) -> None:
    train_v, _, test_v, _ = (torch.from_numpy(a) for a in load_digits_split())
    pre = ImageScaling(-1.0, 1.0, levels=17, dequantize=True)
    g = torch.Generator().manual_seed(0)

    def draw():
        idx = torch.randint(len(train_v), (128,), generator=g)
        return pre.forward(train_v[idx], train=True, generator=g)

    torch.manual_seed(0)
    model = Diffusion(Diffusion.Config(channels=channels, dropout=dropout), DIGITS)
    fit_time = train(model, draw, steps, lr)
    if save_model:
        torch.save(model.state_dict(), save_model)
    reference = ReferenceTrainer(ReferenceDDPM(64), lr)
    start = time.perf_counter()
    for step in range(steps):
        reference.step(draw(), step)
    ref_time = time.perf_counter() - start

    floor = image_metrics(train_v[:n_samples], test_v)
    print(
        f"\n### Digits 8x8: {steps} steps, batch 128, lr {lr}, U-Net channels {channels}, "
        f"dropout {dropout}"
    )
    print(f"parameters: probgen {sum(p.numel() for p in model.network.parameters())}, ", end="")
    print(f"reference {sum(p.numel() for p in reference.model.parameters())}")
    print(f"{n_samples} samples vs the 297 test digits; digits-classifier features")
    print(f"training time: probgen {fit_time:.0f} s, reference {ref_time:.0f} s")
    print("\n| model | sampler | FID | precision | recall | sample time (s) |")
    print("|---|---|---|---|---|---|")
    print(
        f"| real (train digits) | - | {floor['fid']:.2f} | {floor['precision']:.3f} | "
        f"{floor['recall']:.3f} | - |"
    )
    runs = [
        (
            "probgen",
            "ancestral",
            ancestral_steps,
            lambda: model.generate(n_samples, sampler="ancestral", steps=ancestral_steps),
        ),
        ("probgen", "ddim", 50, lambda: model.generate(n_samples, sampler="ddim", steps=50)),
        ("probgen", "dpm++2m", 20, lambda: model.generate(n_samples, sampler="dpm++2m", steps=20)),
        ("probgen", "dpm++2m", 10, lambda: model.generate(n_samples, sampler="dpm++2m", steps=10)),
        ("reference DDPM", "ancestral", None, lambda: reference.sample(n_samples)),
    ]
    for name, sampler, k, fn in runs:
        torch.manual_seed(1)
        samples, seconds = timed(fn)
        scores = image_metrics(pre.inverse(samples), test_v)
        print(
            f"| {name} | {sampler} ({k or 1000} steps) | {scores['fid']:.2f} | "
            f"{scores['precision']:.3f} | {scores['recall']:.3f} | {seconds:.1f} |"
        )
    bpd, bpd_time = timed(bits_per_dim, model, test_v, pre, elbo_t)
    ref_bpd = bits_per_dim(reference.as_probgen(), test_v, pre, elbo_t)
    terms = "all 1000 terms" if elbo_t is None else f"{elbo_t} random t per digit, unbiased"
    print(f"\n| model | test bits/dim (ELBO, {terms}) |")
    print("|---|---|")
    print(f"| probgen (learned variance, hybrid) | {bpd:.3f} ({bpd_time:.0f} s) |")
    print(f"| reference DDPM (sigma^2 = beta, L_simple) | {ref_bpd:.3f} |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    parser.add_argument("--only", default="overhead,toys,digits")
    parser.add_argument("--steps", type=int, default=20000, help="digits training steps")
    parser.add_argument("--toy-steps", type=int, default=6000)
    parser.add_argument("--toys", default="8gaussians,25gaussians")
    parser.add_argument("--channels", type=int, default=32, help="digits U-Net width")
    parser.add_argument(
        "--dropout", type=float, default=Diffusion.Config().dropout, help="digits U-Net dropout"
    )
    parser.add_argument("--lr", type=float, default=1e-3, help="digits learning rate")
    parser.add_argument("--samples", type=int, default=1000, help="digits samples per sampler")
    parser.add_argument("--ancestral-steps", type=int, default=1000, help="probgen digits")
    parser.add_argument("--elbo-t", type=int, default=None, help="random t per digit (all)")
    parser.add_argument("--diffusers-path", default=None, help="folder holding diffusers")
    parser.add_argument("--save-model", default=None, help="save probgen's digits model here")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="cli-toys seeds")
    parser.add_argument("--cli-steps", type=int, default=None, help="cli-toys training steps")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.diffusers_path:
        sys.path.append(args.diffusers_path)
    sections = args.only.split(",")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {time.ctime()}")
    if "overhead" in sections:
        bench_overhead(repeats=3 if args.quick else 15, steps=50)
    if "toys" in sections:
        toy_steps = 200 if args.quick else args.toy_steps
        bench_toys(args.toys.split(","), toy_steps, 500 if args.quick else 2500)
    if "cli-toys" in sections:
        bench_cli_toys(args.toys.split(","), args.seeds, 200 if args.quick else args.cli_steps)
    if "digits-dpm" in sections:
        steps = 50 if args.quick else args.steps
        bench_digits_dpm(steps, 100 if args.quick else args.samples, args.channels, args.lr)
    if "digits" in sections:
        steps = 50 if args.quick else args.steps
        n_samples = 100 if args.quick else args.samples
        ancestral_steps = 20 if args.quick else args.ancestral_steps
        elbo_t = 5 if args.quick else args.elbo_t
        bench_digits(
            steps,
            n_samples,
            args.channels,
            args.lr,
            ancestral_steps,
            elbo_t,
            args.save_model,
            args.dropout,
        )


if __name__ == "__main__":
    main()
