import torch
from torch import nn

from probgen.nn.ema import EMA


def test_update_moves_each_weight_by_one_minus_decay_towards_the_network():
    net = nn.Linear(3, 2)
    ema = EMA(net, decay=0.9)
    before = ema.module.weight.clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    assert torch.allclose(ema.module.weight, 0.9 * before + 0.1 * net.weight)
    assert not ema.module.weight.requires_grad


def test_the_average_stays_in_eval_mode_so_dropout_is_off_when_sampling():
    net = nn.Sequential(nn.Linear(4, 64), nn.Dropout(0.5))
    holder = nn.ModuleDict({"net": net, "ema": EMA(net)})
    holder.train()
    assert net.training and not holder["ema"].module.training
    x = torch.ones(2, 4)
    assert torch.equal(holder["ema"](x), holder["ema"](x))


def test_warmed_up_decay_follows_one_plus_step_over_ten_plus_step_up_to_the_decay():
    ema = EMA(nn.Linear(1, 1), decay=0.999)
    assert ema.decay_at(0) == 0.1
    assert ema.decay_at(90) == 91 / 100
    assert ema.decay_at(10**6) == 0.999
    assert ema.decay_at(None) == 0.999


def test_after_a_short_warmed_up_run_the_average_forgets_the_initial_weights():
    net = nn.Linear(1, 1, bias=False)
    plain, warmed = EMA(net, decay=0.999), EMA(net, decay=0.999)
    with torch.no_grad():
        net.weight.fill_(0.0)
        plain.module.weight.fill_(1.0)
        warmed.module.weight.fill_(1.0)
    for step in range(3000):
        plain.update(net)
        warmed.update(net, step)
    # the plain average keeps 0.999^3000 = 5% of the initial weight; the warmed-up one keeps
    # the product of (1 + s) / (10 + s) over s < 3000 (the ramp is still below 0.999), ~1e-26
    assert abs(plain.module.weight.item() - 0.999**3000) < 1e-4
    assert warmed.module.weight.item() < 1e-6
