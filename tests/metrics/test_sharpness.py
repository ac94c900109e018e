import numpy as np
import pytest
import torch
import torch.nn.functional as F

from probgen.metrics.sharpness import laplacian_variance, sharpness


def test_checkerboard_constant_and_ramp_have_known_values():
    i, j = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    checker = np.where((i + j) % 2 == 0, 1.0, -1.0)
    ramp = 3.0 * i + 2.0 * j
    images = np.stack([checker, np.full((8, 8), 5.0), ramp])[:, None]
    # The Laplacian of a +-1 checkerboard is -+8 everywhere (variance 64); of affine images, 0.
    np.testing.assert_allclose(laplacian_variance(images), [64.0, 0.0, 0.0], atol=1e-12)


def test_blurred_digits_are_less_sharp_than_real(digits):
    x = torch.as_tensor(digits[2])
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert sharpness(blurred) < 0.2 * sharpness(x)


def test_channels_are_pooled_per_image():
    x = np.random.default_rng(0).standard_normal((4, 1, 6, 6))
    assert laplacian_variance(np.repeat(x, 3, axis=1)) == pytest.approx(laplacian_variance(x))
