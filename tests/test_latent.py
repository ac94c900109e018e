import math

import pytest
import torch

from probgen.latent import linear_path, spherical_path


@pytest.mark.parametrize("path", [linear_path, spherical_path])
def test_paths_start_and_end_at_the_encoded_points(path):
    a, b = torch.randn(16), torch.randn(16)
    p = path(a, b, 7)
    assert p.shape == (7, 16)
    torch.testing.assert_close(p[0], a)
    torch.testing.assert_close(p[-1], b)


def test_slerp_keeps_the_norm_between_equal_norm_points():
    a = torch.tensor([1.0, 0.0])
    b = torch.tensor([0.0, 1.0])
    p = spherical_path(a, b, 5)
    torch.testing.assert_close(p.norm(dim=1), torch.ones(5))
    assert p[2].tolist() == pytest.approx([math.sqrt(0.5)] * 2)
    assert linear_path(a, b, 5)[2].norm() < 0.75


def test_slerp_of_parallel_points_is_the_straight_line():
    a = torch.tensor([1.0, 2.0])
    torch.testing.assert_close(spherical_path(a, 3 * a, 4), linear_path(a, 3 * a, 4))
