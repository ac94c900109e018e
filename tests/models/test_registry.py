import sys
import textwrap

import pytest

from probgen.errors import ConfigError
from probgen.models.registry import MODELS, resolve_model
from probgen.models.vae import VAE

USER_MODEL = textwrap.dedent(
    '''
    from dataclasses import dataclass

    import pyro
    import pyro.distributions as dist
    import torch

    from probgen.models.base import GenerativeModel


    @dataclass
    class Config:
        init_scale: float = 1.0


    class Gaussian(GenerativeModel):
        """A diagonal Gaussian fitted by maximum likelihood."""

        Config = Config
        default_steps = 50

        def __init__(self, config, data_info):
            super().__init__(config, data_info)
            self.loc = torch.nn.Parameter(torch.zeros(data_info.event_shape))
            self.log_scale = torch.nn.Parameter(
                torch.full(data_info.event_shape, float(config.init_scale)).log())

        def _dist(self):
            return dist.Normal(self.loc, self.log_scale.exp()).to_event(1)

        def model(self, x=None, y=None):
            with pyro.plate("data", 1 if x is None else x.shape[0]):
                return pyro.sample("x", self._dist(), obs=x)

        def loss(self, batch):
            return -self.log_prob(batch.x).mean()

        def log_prob(self, x, y=None):
            return self._dist().log_prob(x)

        def generate(self, n, y=None, sampler=None, **options):
            return self._dist().sample((n,))
    '''
)


@pytest.fixture
def user_model_file(tmp_path):
    path = tmp_path / "my_model.py"
    path.write_text(USER_MODEL)
    return path


def test_builtin_name():
    assert resolve_model("vae") is VAE
    assert set(MODELS) >= {"vae", "flow", "diffusion", "score", "gan", "ebm"}


def test_user_model_from_file(user_model_file):
    cls = resolve_model(f"{user_model_file}:Gaussian")
    assert cls.__name__ == "Gaussian" and cls.default_steps == 50


def test_user_model_from_module(user_model_file, monkeypatch):
    monkeypatch.syspath_prepend(str(user_model_file.parent))
    cls = resolve_model("my_model:Gaussian")
    assert cls.default_steps == 50
    sys.modules.pop("my_model", None)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nope", "unknown model 'nope'; choose from"),
        ("missing_module_xyz:Thing", "cannot import module"),
        ("probgen.models.vae:Nothing", "has no name 'Nothing'"),
        ("probgen.models.vae:VAEConfig", "class VAEConfig has no model method"),
        ("probgen.models.vae:VAE.nope", "VAE has no name 'nope'"),
        ("probgen.models.vae:VAE,guide", "brings its own guide"),
        ("probgen.models.vae:annotations", "not callable"),
        ("/no/such/file.py:Model", "does not exist"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        resolve_model(spec)


def test_user_file_with_error_is_reported(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match=r"bad.py:1: importing bad.py: RuntimeError: boom"):
        resolve_model(f"{bad}:X")
