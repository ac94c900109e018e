import torch

from probgen.flows.linear import ActNorm, BatchNorm, LULinear, Permutation


def test_permutation_reorders_and_inverts(assert_bijection):
    perm = Permutation.random(5, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 5)
    torch.testing.assert_close(perm(x)[0], x[:, perm.perm])
    assert_bijection(Permutation.reverse(4), torch.randn(3, 4))


def test_lu_linear_vector_log_det_is_slogdet_of_weight(perturb, assert_bijection):
    layer = perturb(LULinear(4, perm=torch.tensor([2, 0, 3, 1])))
    x = torch.randn(5, 4)
    z, ladj = layer(x)
    torch.testing.assert_close(z, x @ layer.weight().T + layer.bias)
    torch.testing.assert_close(ladj, torch.linalg.slogdet(layer.weight())[1].expand(5))
    assert_bijection(layer, x)


def test_lu_linear_identity_init_is_the_permutation():
    layer = LULinear(3, perm=torch.tensor([2, 1, 0]))
    x = torch.randn(4, 3)
    torch.testing.assert_close(layer(x)[0], x.flip(-1))


def test_lu_linear_on_images_is_a_1x1_convolution(perturb, assert_bijection):
    layer = perturb(LULinear(3, init="orthogonal", generator=torch.Generator().manual_seed(1)))
    x = torch.randn(2, 3, 2, 2)
    z, ladj = layer(x)
    expected = torch.einsum("ij,njhw->nihw", layer.weight(), x) + layer.bias[:, None, None]
    torch.testing.assert_close(z, expected)
    torch.testing.assert_close(ladj, 4 * torch.linalg.slogdet(layer.weight())[1].expand(2))
    assert_bijection(layer, x)


def test_actnorm_initialises_from_first_training_batch(assert_bijection):
    layer = ActNorm(3)
    x = 5 + 2 * torch.randn(500, 3, 2, 2)
    z, _ = layer(x)
    per_channel = z.movedim(1, -1).reshape(-1, 3)
    torch.testing.assert_close(per_channel.mean(0), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(per_channel.std(0), torch.ones(3), atol=1e-4, rtol=0)
    shift = layer.shift.detach().clone()
    layer(torch.randn(10, 3, 2, 2))
    assert layer.initialized and torch.equal(layer.shift, shift)
    assert_bijection(layer, x[:4])


def test_batchnorm_uses_batch_statistics_in_training_and_running_ones_in_eval(
    perturb, assert_bijection
):
    layer = perturb(BatchNorm(3, momentum=1.0))
    x = 3 + 2 * torch.randn(400, 3)
    z, ladj = layer(x)
    mean, var = x.mean(0), x.var(0, unbiased=False)
    log_scale = layer.log_gamma - 0.5 * torch.log(var + layer.eps)
    torch.testing.assert_close(z, (x - mean) * log_scale.exp() + layer.beta)
    torch.testing.assert_close(ladj, log_scale.sum().expand(400))
    layer.eval()
    torch.testing.assert_close(layer(x)[0], z)  # momentum 1: running stats = this batch's
    assert_bijection(layer, x[:4])
