"""DataInfo: what models read about their data."""

import pytest

from probgen.models.base import DataInfo


@pytest.mark.parametrize(
    ("info", "large"),
    [
        (DataInfo((1, 28, 28), kind="image"), True),
        (DataInfo((3, 32, 16), kind="image"), True),
        (DataInfo((1, 8, 8), kind="image"), False),
        (DataInfo((1, 28, 15), kind="image"), False),
        (DataInfo((784,)), False),
    ],
)
def test_large_images_have_both_sides_of_at_least_sixteen(info, large):
    assert info.large_image is large
    assert DataInfo.from_dict(info.to_dict()).large_image is large
