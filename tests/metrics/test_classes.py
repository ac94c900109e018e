import numpy as np
import pytest
import torch
import torch.nn.functional as F

from probgen.errors import DataError
from probgen.metrics.classes import class_statistics
from probgen.metrics.features import load_feature_extractor


def test_confidence_histogram_and_fair_share_rule():
    p = np.array(
        [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.5, 0.25, 0.25], [0.2, 0.2, 0.6]]
    )
    stats = class_statistics(p)
    assert stats.confidence == pytest.approx((0.7 + 0.6 + 0.8 + 0.5 + 0.6) / 5)
    assert stats.histogram == (3, 1, 1)
    assert stats.classes == 3  # threshold 0.2 * 5 / 3 = 1/3 prediction
    assert class_statistics(p, min_count=2).classes == 1


def test_collapse_is_one_class_and_uniform_is_least_confident():
    onehot = torch.eye(10)[torch.zeros(100, dtype=torch.long)]
    assert class_statistics(onehot).classes == 1
    assert class_statistics(onehot).confidence == 1.0
    assert class_statistics(torch.full((20, 10), 0.1)).confidence == pytest.approx(0.1)


def test_real_digits_cover_all_classes_blurred_ones_are_less_confident(digits):
    test_x = torch.as_tensor(digits[2])
    extractor = load_feature_extractor("digits")
    real = class_statistics(extractor.probabilities(test_x))
    blurred = F.avg_pool2d(F.pad(test_x, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    blurry = class_statistics(extractor.probabilities(blurred))
    assert real.classes == 10 and real.confidence > 0.95
    assert blurry.confidence < real.confidence - 0.1


def test_rows_must_be_probabilities():
    with pytest.raises(DataError, match="sum to 1"):
        class_statistics(np.ones((3, 2)))
    with pytest.raises(DataError):
        class_statistics(np.ones(4))
