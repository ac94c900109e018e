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
