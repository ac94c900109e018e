"""CUDA checks: skipped without a GPU; `scripts/gpu_check.sh` runs them on a machine with one."""

import pytest
import torch

from probgen.models.registry import MODELS
from probgen.runs import load_model
from probgen.train import fit

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

SMALL = {
    "vae": {"hidden": "32", "latent_dim": "4", "aggregate_components": "2"},
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_family_trains_and_samples_on_cuda(name, tmp_path):
    model = fit(
        name,
        "moons",
        tmp_path / name,
        steps=20,
        batch_size=64,
        device="cuda",
        quiet=True,
        options=SMALL.get(name),
    )
    assert all(p.is_cuda for p in model.parameters())
    draws = model.generate(16)
    assert draws.is_cuda and torch.isfinite(draws).all()
    cpu = load_model(tmp_path / name, device="cpu")  # a GPU run loads on the CPU
    assert all(not p.is_cuda for p in cpu.parameters())


def test_vae_on_digits_images_on_cuda(tmp_path):
    model = fit(
        "vae",
        "digits",
        tmp_path / "v",
        steps=20,
        device="cuda",
        quiet=True,
        options={"net": "conv"},
    )
    assert model.sample(8).shape == (8, 1, 8, 8)
