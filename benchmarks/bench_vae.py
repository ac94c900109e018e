"""VAE on digits: probgen against a plain Pyro VAE written like Pyro's examples/vae.

Measures, in one process with the two trainings interleaved epoch by epoch (so load from other
processes hits both alike):

1. held-out ELBO (nats per image) and seconds per epoch of a plain Pyro SVI loop and of
   ``probgen fit vae`` with the same settings (MLP 400 softplus, Bernoulli, z = 16, Adam 1e-3,
   batch 128, digits intensities / 16, the fixed 1500/297 split);
2. the IWAE (K = 1000) NLL estimate of both;
3. the fit loop's overhead: ``probgen.train.train`` against a bare loop calling the same
   ``model.loss`` and optimiser;
4. how recognisable samples are: the shipped digits classifier's confidence and class histogram
   for the ``aggregate`` (sharp) and ``prior`` samplers, with FID/precision/recall.

Usage: python benchmarks/bench_vae.py [--epochs 200] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch import nn

from probgen.data import load_dataset
from probgen.metrics.digits_classifier import load_digits_classifier
from probgen.metrics.suite import evaluate_samples
from probgen.programs.scoring import log_marginal
from probgen.programs.structure import trace_structure
from probgen.runs import TrainState
from probgen.train import BatchStream, LoopOptions, build_model, seed_everything, train


class Encoder(nn.Module):
    def __init__(self, z_dim=16, hidden=400):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = (
            nn.Linear(64, hidden),
            nn.Linear(hidden, z_dim),
            nn.Linear(hidden, z_dim),
        )
        self.softplus = nn.Softplus()

    def forward(self, x):
        h = self.softplus(self.fc1(x.reshape(-1, 64)))
        return self.fc21(h), torch.exp(self.fc22(h))


class Decoder(nn.Module):
    def __init__(self, z_dim=16, hidden=400):
        super().__init__()
        self.fc1, self.fc21 = nn.Linear(z_dim, hidden), nn.Linear(hidden, 64)
        self.softplus = nn.Softplus()

    def forward(self, z):
        return torch.sigmoid(self.fc21(self.softplus(self.fc1(z))))


class PlainVAE(nn.Module):
    """Pyro's examples/vae, on 8x8 digits."""

    def __init__(self, z_dim=16):
        super().__init__()
        self.encoder, self.decoder, self.z_dim = Encoder(z_dim), Decoder(z_dim), z_dim

    def model(self, x, y=None):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            loc = x.new_zeros(x.shape[0], self.z_dim)
            z = pyro.sample("latent", dist.Normal(loc, 1.0).to_event(1))
            probs = self.decoder(z)
            pyro.sample(
                "obs", dist.Bernoulli(probs, validate_args=False).to_event(1), obs=x.reshape(-1, 64)
            )

    def guide(self, x, y=None):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(loc, scale).to_event(1))


def plain_epoch(svi, x, batch_size, generator):
    perm = torch.randperm(len(x), generator=generator)
    for i in range(0, len(x), batch_size):
        svi.step(x[perm[i : i + batch_size]])


def bare_epoch(model, optimizer, stream):
    for _ in range(stream.steps_per_epoch):
        batch = stream.next()
        optimizer.zero_grad(set_to_none=True)
        loss = model.loss(batch)
        loss.backward()
        optimizer.step()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="10 epochs, K = 100")
    parser.add_argument("--particles", type=int, default=1000)
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.particles = 10, 100
    torch.set_num_threads(1)
    data = load_dataset("digits")
    x_train = torch.as_tensor(data.train) / 16.0
    x_test = torch.as_tensor(data.test) / 16.0
    n_test = len(x_test)

    seed_everything(0)
    plain = PlainVAE()
    svi = SVI(plain.model, plain.guide, Adam({"lr": 1e-3}), Trace_ELBO())
    gen = torch.Generator().manual_seed(0)

    probgen_vae = build_model("vae", data, seed=0)
    stream = BatchStream(data.train, None, probgen_vae.preprocessor, 128, torch.device("cpu"), 0)
    probgen_vae.setup(stream.setup_batch(), stream.n)
    optimizers = probgen_vae.configure_optimizers(1e-3)
    state, history = TrainState(), []

    bare_vae = build_model("vae", data, seed=1)
    bare_stream = BatchStream(data.train, None, bare_vae.preprocessor, 128, torch.device("cpu"), 1)
    bare_vae.setup(bare_stream.setup_batch(), bare_stream.n)
    bare_opt = bare_vae.configure_optimizers(1e-3)[0]
    loop_vae = build_model("vae", data, seed=1)
    loop_stream = BatchStream(data.train, None, loop_vae.preprocessor, 128, torch.device("cpu"), 1)
    loop_vae.setup(loop_stream.setup_batch(), loop_stream.n)
    loop_opts = loop_vae.configure_optimizers(1e-3)
    loop_state, loop_history = TrainState(), []

    times = {"plain": [], "probgen": [], "bare": [], "loop": []}

    def plain_run(epoch):
        plain_epoch(svi, x_train, 128, gen)

    def probgen_run(epoch):
        steps = (epoch + 1) * stream.steps_per_epoch
        train(probgen_vae, stream, optimizers, LoopOptions(steps, 0, quiet=True), state, history)

    def bare_run(epoch):
        bare_epoch(bare_vae, bare_opt, bare_stream)

    def loop_run(epoch):
        steps = (epoch + 1) * loop_stream.steps_per_epoch
        train(
            loop_vae,
            loop_stream,
            loop_opts,
            LoopOptions(steps, 0, quiet=True),
            loop_state,
            loop_history,
        )

    runs = {"plain": plain_run, "probgen": probgen_run, "bare": bare_run, "loop": loop_run}
    for epoch in range(args.epochs):
        # alternate the order each epoch so neither side always runs second
        order = list(runs) if epoch % 2 == 0 else list(reversed(runs))
        for name in order:
            t = time.perf_counter()
            runs[name](epoch)
            times[name].append(time.perf_counter() - t)

    probgen_vae.eval()
    with torch.no_grad():
        plain_elbo = -svi.evaluate_loss(x_test) / n_test
        xt = probgen_vae.preprocessor.forward(torch.as_tensor(data.test))
        ours_elbo = probgen_vae.elbo(xt, num_particles=10).mean().item()
        torch.manual_seed(0)
        plain_nll = (
            -log_marginal(
                plain.model,
                plain.guide,
                trace_structure(plain.model, plain.guide, (x_test,)),
                (x_test,),
                num_particles=args.particles,
            )
            .mean()
            .item()
        )
        ours_nll = -probgen_vae.log_marginal(xt, num_particles=args.particles).mean().item()
        probgen_vae.on_fit_end(stream.all_model_space())

    med = {k: float(np.median(v)) for k, v in times.items()}
    print(
        f"# VAE on digits, {args.epochs} epochs, machine: {platform.machine()} "
        f"{platform.processor() or ''}, torch {torch.__version__}, pyro {pyro.__version__}, "
        "1 thread"
    )
    print("| | plain Pyro (examples/vae) | probgen `fit vae` |")
    print("|---|---|---|")
    print(f"| held-out ELBO (nats/image) | {plain_elbo:.2f} | {ours_elbo:.2f} |")
    print(f"| IWAE NLL, K={args.particles} (nats/image) | {plain_nll:.2f} | {ours_nll:.2f} |")
    print(
        f"| median s/epoch | {med['plain']:.4f} | {med['probgen']:.4f} "
        f"({med['probgen'] / med['plain']:.2f}x) |"
    )
    print()
    print(
        f"fit-loop overhead: bare loop {med['bare']:.4f} s/epoch, probgen.train "
        f"{med['loop']:.4f} s/epoch: {100 * (med['loop'] / med['bare'] - 1):+.1f}%"
    )

    classifier = load_digits_classifier()
    print()
    print(
        "| sampler | mean confidence | share > 0.9 | classes seen (min count) | FID | "
        "precision | recall |"
    )
    print("|---|---|---|---|---|---|---|")
    for sampler in ("aggregate", "prior"):
        torch.manual_seed(0)
        samples = probgen_vae.sample(1000, sampler=sampler)
        with torch.no_grad():
            probs = torch.softmax(classifier(samples), -1)
        conf = probs.max(-1).values
        counts = torch.bincount(probs.argmax(-1), minlength=10)
        m = evaluate_samples(
            samples,
            data.test,
            kind="image",
            metrics=["fid", "precision", "recall"],
            value_range=(0.0, 16.0),
        )
        print(
            f"| {sampler} | {conf.mean():.3f} | {(conf > 0.9).float().mean():.3f} | "
            f"{int((counts > 0).sum())} ({int(counts.min())}) | {m['fid']:.1f} | "
            f"{m['precision']:.3f} | {m['recall']:.3f} |"
        )


if __name__ == "__main__":
    main()
