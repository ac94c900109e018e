import pyro.distributions as dist
import torch

from probgen.flows.core import Compose, Flatten, FlowDistribution
from probgen.flows.linear import LULinear, Permutation


def _standard_normal(dim):
    return dist.Normal(torch.zeros(dim, dtype=torch.float64), 1.0).to_event(1)


def test_compose_adds_log_dets_and_inverts_in_reverse(perturb, assert_bijection):
    flow = perturb(Compose(LULinear(3), Permutation.reverse(3), LULinear(3)))
    x = torch.randn(4, 3)
    z, ladj = flow(x)
    first, ladj_1 = flow.steps[0](x)
    _, ladj_3 = flow.steps[2](flow.steps[1](first)[0])
    torch.testing.assert_close(ladj, ladj_1 + ladj_3)
    assert_bijection(flow, x)


def test_flatten_round_trips_the_event_shape():
    flatten = Flatten((2, 3))
    x = torch.randn(4, 2, 3)
    z, ladj = flatten(x)
    assert z.shape == (4, 6) and torch.equal(ladj, torch.zeros(4))
    assert torch.equal(flatten.inverse(z), x)


def test_affine_flow_is_the_gaussian_it_implies(perturb):
    # z = W x + b with z ~ N(0, I)  <=>  x ~ N(-W^{-1} b, (W^T W)^{-1})
    layer = perturb(LULinear(3)).double()
    w, b = layer.weight().detach(), layer.bias.detach()
    flow = FlowDistribution(_standard_normal(3), layer, (3,))
    mean = -torch.linalg.solve(w, b)
    exact = dist.MultivariateNormal(mean, precision_matrix=w.T @ w)
    x = torch.randn(50, 3, dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(x), exact.log_prob(x))


def test_fused_log_prob_matches_the_generic_transformed_distribution(perturb):
    layer = perturb(Compose(LULinear(2), Flatten((2,)))).double()
    flow = FlowDistribution(_standard_normal(2), layer, (2,))
    x = torch.randn(5, 2, dtype=torch.float64)
    generic = dist.TransformedDistribution.log_prob(flow, x)
    torch.testing.assert_close(flow.log_prob(x), generic)


def test_rsample_inverts_base_draws_with_data_event_shape(perturb):
    layer = perturb(Compose(Flatten((2, 2)), LULinear(4))).double()
    flow = FlowDistribution(_standard_normal(4), layer, (2, 2))
    assert flow.event_shape == (2, 2)
    expanded = flow.expand((3,))
    x = expanded.rsample((5,))
    assert x.shape == (5, 3, 2, 2) and expanded.log_prob(x).shape == (5, 3)
    torch.manual_seed(0)
    z = flow.base_dist.sample((6,))
    torch.manual_seed(0)
    torch.testing.assert_close(flow.sample((6,)), layer.inverse(z))
