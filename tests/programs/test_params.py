"""Every parameter style of a Pyro program is trained, saved and restored exactly."""

from __future__ import annotations

import textwrap

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch import nn
from torch.distributions import constraints

from probgen.programs.params import (
    ProgramParameters,
    modules_named_by,
    param_key,
    param_name,
)
from probgen.runs import load_model
from probgen.train import fit


def _serve(params, constraint_of, fn, *args):
    with ProgramParameters(params, constraint_of, lambda: set(), lambda: torch.device("cpu")):
        return fn(*args)


def test_pyro_param_lives_in_the_module_unconstrained():
    params, constraint_of = nn.ParameterDict(), {}
    calls = []

    def program():
        calls.append(1)
        return pyro.param("scale", lambda: torch.full((3,), 2.0), constraint=constraints.positive)

    value = _serve(params, constraint_of, program)
    assert torch.allclose(value, torch.full((3,), 2.0))
    assert torch.allclose(params["scale"], torch.full((3,), 2.0).log())  # softplus-free: exp
    assert value.unconstrained() is params["scale"]
    assert "scale" not in pyro.get_param_store()  # nothing leaked into Pyro's global store
    with torch.no_grad():
        params["scale"].fill_(0.0)
    assert torch.allclose(_serve(params, constraint_of, program), torch.ones(3))


def test_gradients_reach_the_unconstrained_parameter():
    params, constraint_of = nn.ParameterDict(), {}

    def program():
        return pyro.param("p", torch.tensor([0.2, 0.8]), constraint=constraints.simplex)

    _serve(params, constraint_of, program)
    _serve(params, constraint_of, program).log().sum().backward()
    assert params["p"].grad is not None and torch.isfinite(params["p"].grad).all()


def test_module_names_are_escaped_reversibly():
    for name in ("decoder$$$net.0.weight", "a.b", "plain"):
        assert "." not in param_key(name) and param_name(param_key(name)) == name


def test_modules_named_by_finds_globals_closures_and_bound_instances():
    decoder = nn.Linear(2, 2)
    encoder = nn.Linear(2, 2)

    def model(x):
        return decoder(x) + encoder(x)

    found = modules_named_by(model)
    assert found["decoder"] is decoder and found["encoder"] is encoder
    layer = nn.Linear(1, 1)
    assert modules_named_by(layer.forward)["Linear"] is layer


MODULE_PROGRAM = """
    import pyro, torch
    import pyro.distributions as dist
    from pyro.nn import AutoRegressiveNN

    net = AutoRegressiveNN(2, [8], param_dims=[1, 1])  # random masks and permutation: buffers

    def model(x):
        pyro.module("net", net)
        with pyro.plate("data", x.shape[0]):
            loc, log_scale = net(torch.zeros_like(x))
            pyro.sample("x", dist.Normal(loc + x.mean(0), log_scale.exp()).to_event(1), obs=x)
"""


def test_pyro_module_networks_keep_their_buffers_after_reload(tmp_path):
    path = tmp_path / "arnet.py"
    path.write_text(textwrap.dedent(MODULE_PROGRAM))
    trained = fit(f"{path}:model", "moons", tmp_path / "run", steps=30, quiet=True)
    permutation = trained.networks["net"].permutation.clone()
    reloaded = load_model(tmp_path / "run", trust_code=True)
    assert torch.equal(reloaded.networks["net"].permutation, permutation)
    torch.manual_seed(3)
    a = trained.sample(5)
    torch.manual_seed(3)
    assert torch.equal(reloaded.sample(5), a)


def test_constraints_hold_after_reload(program_file, points_csv, tmp_path):
    path = program_file("ppca")
    trained = fit(f"{path}:model,guide", str(points_csv), tmp_path / "run", steps=40, quiet=True)
    reloaded = load_model(tmp_path / "run", trust_code=True)
    for name in ("sigma", "s"):
        assert reloaded.constraint_of[name] is constraints.positive
        assert torch.equal(reloaded.param(name), trained.param(name))
        assert (reloaded.param(name) > 0).all()
    # trained: the scale moved from its data-derived start
    assert not torch.allclose(trained.param("W"), reloaded.param("W") * 0)


class ScaledNormal(pyro.nn.PyroModule):
    """A PyroModule program: a PyroParam with a constraint and a PyroSample prior."""

    def __init__(self, dim: int = 2):
        super().__init__()
        self.scale = pyro.nn.PyroParam(torch.ones(dim), constraint=constraints.positive)
        self.loc = pyro.nn.PyroSample(dist.Normal(torch.zeros(dim), 10.0).to_event(1))

    def forward(self, x):
        loc = self.loc
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("x", dist.Normal(loc, self.scale).to_event(1), obs=x)


def test_pyro_module_program_trains_its_pyro_param():
    from probgen.api import fit as api_fit

    fitted = api_fit(ScaledNormal, data="moons", steps=150, lr=0.05, quiet=True)
    program = fitted.model
    assert program.structure.global_latents == ("loc",)
    scale = program.program.scale.detach()
    assert (scale > 0).all() and not torch.allclose(scale, torch.ones(2))


def test_two_programs_do_not_share_autoguide_parameters(program_file, points_csv):
    path = program_file("gaussian_mean")
    first = fit(f"{path}:model", str(points_csv), steps=100, lr=0.1, quiet=True)
    second = fit(f"{path}:model", "moons", steps=1, lr=0.1, quiet=True)
    loc_first = first.autoguide.locs.loc.detach()
    loc_second = second.autoguide.locs.loc.detach()
    assert not torch.allclose(loc_first, loc_second)
    assert loc_first[0] > 5  # the points sit near (100, -20): its guide moved towards them


def test_program_parameters_see_no_global_store_state():
    pyro.param("mu", torch.tensor(123.0))  # a user's stale global parameter
    params, constraint_of = nn.ParameterDict(), {}

    def program():
        return pyro.param("mu", torch.tensor(0.0))

    assert float(_serve(params, constraint_of, program).detach()) == 0.0
    trace = _serve(params, constraint_of, lambda: poutine.trace(program).get_trace())
    assert float(trace.nodes["mu"]["value"].detach()) == 0.0


@pytest.mark.parametrize("init", [torch.zeros(2), lambda: torch.zeros(2)])
def test_initial_values_may_be_tensors_or_callables(init):
    params, constraint_of = nn.ParameterDict(), {}
    value = _serve(params, constraint_of, lambda: pyro.param("v", init))
    assert value.shape == (2,) and isinstance(params["v"], nn.Parameter)
