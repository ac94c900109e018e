"""A user's Pyro program fitted by probgen against the same program in a plain Pyro SVI script.

The program is Pyro's tutorial VAE written as plain functions (``programs/tutorial_vae.py``);
both sides see the same training rows (probgen's own 90% split of the digits training set,
written to an .npy for the plain script), the same steps, batch size and learning rate, and
Adam. Measured:

1. wall time of the whole process, from the shell: ``probgen fit FILE.py:model,guide ...``
   against ``python programs/plain_pyro_fit.py ...`` (imports, data, training, saving), both
   with ``OMP_NUM_THREADS=1``, each run ``--repeats`` times alternately, medians reported;
2. held-out ELBO (1 particle per image) and importance-sampled NLL (K = 1000) per image of
   both fits on the digits' held-out split, computed by the same estimator
   (``probgen.programs.scoring``).

Usage: python benchmarks/bench_programs.py [--steps 3000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyro
import torch

HERE = Path(__file__).resolve().parent
PROGRAM = HERE / "programs" / "tutorial_vae.py"
PLAIN = HERE / "programs" / "plain_pyro_fit.py"


def timed(command: list[str]) -> float:
    # one thread on both sides (OMP_NUM_THREADS), as a loaded 2-core machine needs
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def plain_scores(params_file: Path, x: torch.Tensor, particles: int):
    from probgen.programs.scoring import log_marginal, log_weights
    from probgen.programs.structure import trace_structure

    sys.path.insert(0, str(PROGRAM.parent))
    import tutorial_vae

    pyro.clear_param_store()
    pyro.get_param_store().load(str(params_file))
    pyro.module("decoder", tutorial_vae.decoder, update_module_params=True)
    pyro.module("encoder", tutorial_vae.encoder, update_module_params=True)
    with torch.no_grad():
        model, guide = tutorial_vae.model, tutorial_vae.guide
        s = trace_structure(model, guide, (x,))
        elbo = log_weights(model, guide, s, (x,), 1)[0].mean().item()
        nll = -log_marginal(model, guide, s, (x,), particles).mean().item()
    return elbo, nll


def probgen_scores(run: Path, x: torch.Tensor, particles: int):
    from probgen.runs import load_model

    model = load_model(run, trust_code=True)
    return (
        model.elbo(x).mean().item(),
        -model.log_marginal(x, num_particles=particles).mean().item(),
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--particles", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from probgen.data import load_dataset

    work = Path(tempfile.mkdtemp(prefix="bench_programs_"))
    digits = load_dataset("digits")
    train_file = work / "train.npy"
    np.save(train_file, digits.train.reshape(len(digits.train), -1))
    rows = load_dataset(str(train_file)).train  # the rows probgen trains on (its 90% split)
    np.save(work / "rows.npy", rows)
    x_test = torch.as_tensor(digits.test.reshape(len(digits.test), -1))
    common = [str(args.steps), str(args.batch_size), str(args.lr)]
    times = {"plain": [], "probgen": []}
    for i in range(args.repeats):
        sides = ["plain", "probgen"] if i % 2 == 0 else ["probgen", "plain"]
        for side in sides:
            if side == "plain":
                command = [sys.executable, str(PLAIN), str(work / "rows.npy"), *common,
                           str(work / "plain.pt")]  # fmt: skip
            else:
                command = [sys.executable, "-m", "probgen", "fit", f"{PROGRAM}:model,guide",
                           "-d", str(train_file), "-o", str(work / "run"), "--overwrite", "-q",
                           "--steps", common[0], "--batch-size", common[1], "--lr", common[2],
                           "--device", "cpu"]  # fmt: skip
            times[side].append(timed(command))
    print(f"all times (s): plain {times['plain']}, probgen {times['probgen']}", flush=True)
    plain_elbo, plain_nll = plain_scores(work / "plain.pt", x_test, args.particles)
    ours_elbo, ours_nll = probgen_scores(work / "run", x_test, args.particles)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(
        f"# tutorial VAE program on digits, {args.steps} steps, batch {args.batch_size}, "
        f"Adam {args.lr}; machine: {platform.machine()}, torch {torch.__version__}, "
        f"pyro {pyro.__version__}; {args.repeats} runs each, alternating"
    )
    print("| | plain Pyro SVI script | `probgen fit FILE.py:model,guide` |")
    print("|---|---|---|")
    print(f"| held-out ELBO (nats/image) | {plain_elbo:.2f} | {ours_elbo:.2f} |")
    print(f"| IS NLL, K={args.particles} (nats/image) | {plain_nll:.2f} | {ours_nll:.2f} |")
    print(
        f"| process wall time, median (s) | {med['plain']:.1f} | {med['probgen']:.1f} "
        f"({med['probgen'] / med['plain']:.2f}x) |"
    )


if __name__ == "__main__":
    main()
