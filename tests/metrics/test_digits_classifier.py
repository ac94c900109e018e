from importlib import resources

import pytest
import torch

from probgen.errors import DataError
from probgen.metrics.digits_classifier import FEATURE_DIM, WEIGHTS_FILE, load_digits_classifier


def test_shipped_weights_reach_98_percent_on_held_out_digits(digits):
    _, _, test_x, test_y = digits
    model = load_digits_classifier()
    with torch.no_grad():
        predicted = model(torch.as_tensor(test_x)).argmax(1)
    assert float((predicted == torch.as_tensor(test_y)).float().mean()) >= 0.98


def test_flat_and_image_inputs_agree_and_features_have_documented_size(digits):
    x = torch.as_tensor(digits[2][:20])
    model = load_digits_classifier()
    with torch.no_grad():
        feats = model.features(x)
        torch.testing.assert_close(model.features(x.reshape(20, 64)), feats)
    assert feats.shape == (20, FEATURE_DIM)


def test_rejects_images_of_another_size():
    with pytest.raises(DataError, match="8, 8"):
        load_digits_classifier().features(torch.zeros(2, 1, 28, 28))


def test_weights_file_is_small():
    path = resources.files("probgen.metrics") / "weights" / WEIGHTS_FILE
    assert path.stat().st_size < 500_000
