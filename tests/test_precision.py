"""Training precision: auto picks bf16 only for models with a bf16 budget on AMX CPUs."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

import probgen.precision
from probgen.errors import ConfigError
from probgen.models.base import GenerativeModel
from probgen.precision import resolve_precision
from probgen.train import fit

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


class Mean(GenerativeModel):
    """x ~ N(loc, I) fitted by squared error; trains in bf16 under auto, for 3 steps."""

    @dataclass
    class Config:
        pass

    default_steps = 5
    bf16_default_steps = 3

    def __init__(self, config, data_info):
        super().__init__(config, data_info)
        self.loc = nn.Parameter(torch.zeros(data_info.dim))

    def model(self, x=None, y=None):
        return self.loc

    def loss(self, batch):
        return (batch.x - self.loc).square().mean()

    def generate(self, n, y=None, sampler=None, **options):
        return self.loc.detach().expand(n, -1)


class Fp32Mean(Mean):
    bf16_default_steps = None


@pytest.fixture
def amx(monkeypatch):
    monkeypatch.setattr(probgen.precision, "has_native_bf16", lambda device: device.type == "cpu")


def test_explicit_precisions_pass_through_and_unknown_ones_are_config_errors():
    for precision in ("fp32", "bf16"):
        assert resolve_precision(precision, Fp32Mean, CPU) == precision
    with pytest.raises(ConfigError, match="auto, fp32 or bf16"):
        resolve_precision("fp16", Mean, CPU)


def test_auto_is_bf16_only_for_a_model_with_a_bf16_budget_on_native_bf16_hardware(amx, monkeypatch):
    assert resolve_precision("auto", Mean, CPU) == "bf16"
    assert resolve_precision("auto", Fp32Mean, CPU) == "fp32"
    assert resolve_precision("auto", Mean, CUDA) == "fp32"  # GPUs: the user's choice
    monkeypatch.setattr(probgen.precision, "has_native_bf16", lambda device: False)
    assert resolve_precision("auto", Mean, CPU) == "fp32"


def test_the_default_budget_follows_the_resolved_precision(amx, tmp_path):
    fit(Mean, "moons", tmp_path / "auto", quiet=True)
    fit(Mean, "moons", tmp_path / "fp32", quiet=True, precision="fp32")
    fit(Fp32Mean, "moons", tmp_path / "plain", quiet=True)
    steps = {
        name: len((tmp_path / name / "history.csv").read_text().splitlines()) - 1
        for name in ("auto", "fp32", "plain")
    }
    assert steps == {"auto": 3, "fp32": 5, "plain": 5}


def test_native_bf16_is_a_cpu_property():
    assert probgen.precision.has_native_bf16(CUDA) is False
    assert isinstance(probgen.precision.has_native_bf16(CPU), bool)
