"""Train the digits classifier shipped in probgen/metrics/weights/ and record its test accuracy.

Trains only on the training part of ``load_digits_split()`` (1,500 images), with augmentation by
random one-pixel shifts and intensity scaling, then reports accuracy on the 297 held-out images
and stores it in the safetensors metadata.

    python scripts/train_digits_classifier.py [--epochs 150] [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from probgen.data.digits import load_digits_split
from probgen.metrics.digits_classifier import (
    MAX_INTENSITY,
    WEIGHTS_FILE,
    DigitsClassifier,
)

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "probgen" / "metrics" / "weights" / WEIGHTS_FILE


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by up to one pixel (zero fill) and scale its intensity by 0.8..1.2."""
    n = x.shape[0]
    padded = F.pad(x[:, 0], (1, 1, 1, 1))
    dy = torch.randint(0, 3, (n,), generator=gen)
    dx = torch.randint(0, 3, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(8))[:, :, None]
    cols = (dx[:, None] + torch.arange(8))[:, None, :]
    shifted = padded[torch.arange(n)[:, None, None], rows, cols][:, None]
    scale = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=gen)
    return (shifted * scale).clamp(0.0, MAX_INTENSITY)


def accuracy(model: DigitsClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    train_x, train_y, test_x, test_y = (torch.as_tensor(a) for a in load_digits_split())
    model = DigitsClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * (len(train_x) // args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(train_x), generator=gen).split(args.batch_size):
            loss = F.cross_entropy(model(augment(train_x[idx], gen)), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % 25 == 0:
            model.eval()
            print(
                f"epoch {epoch + 1}: loss {loss.item():.4f}, "
                f"train acc {accuracy(model, train_x, train_y):.4f}"
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
            "epochs": str(args.epochs),
            "seed": str(args.seed),
        },
    )
    print(f"held-out accuracy {test_acc:.4f} on {len(test_x)} images; wrote {args.out}")


if __name__ == "__main__":
    main()
