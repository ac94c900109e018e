"""Scaling: 1 versus N training processes (torch.distributed), and GPU throughput.

CPU mode (default): ``probgen fit MODEL -d digits --nproc N`` against ``--nproc 1`` with the same
global batch; throughput is examples per second of training, read from each run's history
(wall time between the first and the last logged step, so process start-up is excluded).
Scaling efficiency = throughput(N) / (N * throughput(1)).

GPU mode (``--device cuda``): training and sampling throughput of diffusion on 28x28 images
(digits upsampled to 28x28, written to an .npy file and read back like a user's data).

Usage: python benchmarks/bench_scale.py [--models vae,diffusion] [--nproc 2] [--steps 300]
       python benchmarks/bench_scale.py --device cuda --image-size 28
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from probgen.runs import Run


def throughput(run: Path, batch_size: int) -> float:
    history = Run(run).read_history()
    first, last = history[len(history) // 10], history[-1]
    return (last["step"] - first["step"]) * batch_size / (last["wall_time"] - first["wall_time"])


def fit(model, data, out, steps, batch, nproc, device="cpu", extra=()):
    command = [
        sys.executable,
        "-m",
        "probgen",
        "fit",
        model,
        "-d",
        str(data),
        "-o",
        str(out),
        "--steps",
        str(steps),
        "--batch-size",
        str(batch),
        "--device",
        device,
        "-q",
        "--nproc",
        str(nproc),
        *extra,
    ]
    # one thread per process on both sides (torchrun sets this itself for its workers)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=env)


def cpu_scaling(args, tmp: Path):
    print(
        f"# data-parallel scaling on the CPU: {args.steps} steps, global batch {args.batch}, "
        f"gloo, {args.nproc} processes vs 1 (torch threads per process: 1)"
    )
    print(f"| model | 1 process (examples/s) | {args.nproc} processes (examples/s) | efficiency |")
    print("|---|---|---|---|")
    for model in args.models.split(","):
        rates = {}
        for n in (1, args.nproc):
            out = tmp / f"{model}-{n}"
            fit(model, "digits", out, args.steps, args.batch, n)
            rates[n] = throughput(out, args.batch)
        eff = rates[args.nproc] / (args.nproc * rates[1])
        print(f"| {model} | {rates[1]:.0f} | {rates[args.nproc]:.0f} | {eff:.2f} |", flush=True)


def gpu_throughput(args, tmp: Path):
    from probgen.data.digits import load_digits_split
    from probgen.runs import load_model

    train_x = load_digits_split()[0]
    big = torch.nn.functional.interpolate(
        torch.as_tensor(train_x), size=args.image_size, mode="bilinear"
    ).numpy()
    data = tmp / "digits28.npy"
    np.save(data, np.round(big * 255.0 / 16.0).astype(np.uint8)[:, 0])
    out = tmp / "diffusion28"
    fit("diffusion", data, out, args.steps, args.batch, 1, device=args.device)
    train_rate = throughput(out, args.batch)
    model = load_model(out, device=args.device)
    rates = {}
    for sampler, steps in (("ddim", 50), (model.samplers[-1], 20)):
        model.sample(8, sampler=sampler, steps=steps)
        torch.cuda.synchronize()
        start = time.perf_counter()
        model.sample(args.sample_batch, sampler=sampler, steps=steps)
        torch.cuda.synchronize()
        rates[f"{sampler} ({steps} steps)"] = args.sample_batch / (time.perf_counter() - start)
    size = f"{args.image_size}x{args.image_size}"
    print(f"# diffusion on {size} images, {torch.cuda.get_device_name()}")
    print(f"training: {train_rate:.0f} examples/s (batch {args.batch})")
    for name, rate in rates.items():
        print(f"sampling, {name}: {rate:.0f} samples/s (batch {args.sample_batch})")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="vae,diffusion")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--sample-batch", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.device == "cuda":
            gpu_throughput(args, Path(tmp))
        else:
            cpu_scaling(args, Path(tmp))


if __name__ == "__main__":
    main()
