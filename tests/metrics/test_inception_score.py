import numpy as np
import pytest
import torch

from probgen.errors import DataError
from probgen.metrics.inception_score import inception_score


def test_uniform_predictions_score_one():
    result = inception_score(torch.full((100, 10), 0.1))
    assert result.mean == pytest.approx(1.0, abs=1e-12)
    assert result.std == pytest.approx(0.0, abs=1e-12)


def test_balanced_one_hot_predictions_score_number_of_classes():
    result = inception_score(torch.eye(10).repeat(10, 1), splits=10)
    assert result.mean == pytest.approx(10.0, rel=1e-12)


def test_closed_form_for_two_symmetric_soft_classes():
    # Rows (a, 1-a) and (1-a, a) in equal number: p(y) uniform, IS = 2 exp(-H(a)).
    a = 0.8
    p = np.array([[a, 1 - a], [1 - a, a]] * 50)
    entropy = -(a * np.log(a) + (1 - a) * np.log(1 - a))
    assert inception_score(p, splits=5).mean == pytest.approx(2 * np.exp(-entropy), rel=1e-12)


def test_collapsed_confident_predictions_score_one():
    p = np.zeros((100, 10))
    p[:, 3] = 1.0
    assert inception_score(p).mean == pytest.approx(1.0, abs=1e-12)


def test_rejects_rows_that_are_not_distributions():
    with pytest.raises(DataError):
        inception_score(np.full((20, 4), 0.3), splits=2)
