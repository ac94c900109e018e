"""The small U-Net: shapes at 8x8, 28x28 and odd sizes, time conditioning, independence."""

import pytest
import torch

from probgen.nn.unet import UNet


def randomise_head(net: UNet) -> UNet:
    torch.nn.init.normal_(net.head[-1].weight, std=0.1)
    return net


@pytest.mark.parametrize(
    ("size", "mults"), [(8, (1, 2)), (28, (1, 2, 2)), (7, (1, 2)), (8, (1, 2, 2, 2))]
)
def test_output_has_the_input_resolution(size, mults):
    net = UNet(1, 2, channels=8, channel_mults=mults, num_res_blocks=2)
    out = net(torch.randn(3, 1, size, size), torch.tensor([0.0, 10.0, 999.0]))
    assert out.shape == (3, 2, size, size)


def test_starts_as_the_zero_function():
    net = UNet(1, 1, channels=8)
    assert net(torch.randn(2, 1, 8, 8), torch.tensor([3.0, 4.0])).abs().max().item() == 0.0


def test_output_depends_on_time_and_examples_are_independent():
    torch.manual_seed(0)
    net = randomise_head(UNet(1, 1, channels=8)).eval()
    x = torch.randn(4, 1, 8, 8)
    t = torch.tensor([5.0, 5.0, 5.0, 5.0])
    out = net(x, t)
    assert not torch.allclose(out, net(x, t + 300.0))
    # group norm works per example, so one example's output ignores the rest of the batch
    torch.testing.assert_close(net(x[:1], t[:1]), out[:1])


def test_gradient_reaches_every_parameter():
    torch.manual_seed(1)
    net = randomise_head(UNet(2, 2, channels=8, channel_mults=(1, 2, 2)))
    net(torch.randn(2, 2, 28, 28), torch.tensor([1.0, 500.0])).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (2, 6)])
def test_patched_network_keeps_the_image_shape_and_pixel_locality(channels, size):
    torch.manual_seed(2)
    net = randomise_head(UNet(channels, 2 * channels, channels=8, patch_size=2)).eval()
    x = torch.randn(2, channels, size, size)
    t = torch.tensor([3.0, 700.0])
    out = net(x, t)
    assert out.shape == (2, 2 * channels, size, size)
    # pixel_shuffle puts each patch's outputs back on that patch's own pixels: the head's
    # output for the top-left 2x2 patch is exactly the first p^2 C head channels at (0, 0)
    net.patch_size = 1
    folded = net(torch.nn.functional.pixel_unshuffle(x, 2), t)
    net.patch_size = 2
    torch.testing.assert_close(torch.nn.functional.pixel_unshuffle(out, 2), folded)


def test_patch_size_must_divide_the_image():
    net = UNet(1, 1, channels=8, patch_size=2)
    with pytest.raises(ValueError, match="divide by patch_size 2"):
        net(torch.randn(1, 1, 7, 7), torch.tensor([1.0]))
