"""The plain Pyro script probgen is measured against: SVI on a program, shuffled mini-batches.

    python benchmarks/programs/plain_pyro_fit.py TRAIN.npy STEPS BATCH LR OUT_PARAMS

Loads the (N, 64) training array, runs ``STEPS`` SVI steps of ``tutorial_vae`` with Adam(LR) on
batches drawn without replacement epoch by epoch, and saves Pyro's param store.
"""

import sys

import numpy as np
import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import tutorial_vae  # noqa: E402


def main():
    train_path, steps, batch, lr, out = sys.argv[1:6]
    steps, batch, lr = int(steps), int(batch), float(lr)
    pyro.set_rng_seed(0)
    x = torch.as_tensor(np.load(train_path), dtype=torch.float32)
    svi = SVI(tutorial_vae.model, tutorial_vae.guide, Adam({"lr": lr}), Trace_ELBO())
    step, order = 0, torch.randperm(len(x))
    position = 0
    while step < steps:
        if position >= len(x):
            order, position = torch.randperm(len(x)), 0
        svi.step(x[order[position : position + batch]])
        position += batch
        step += 1
    pyro.get_param_store().save(out)


if __name__ == "__main__":
    main()
