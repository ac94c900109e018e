import sys

import numpy as np
import pytest
import torch

from probgen.errors import ConfigError
from probgen.metrics.features import default_feature_for, load_feature_extractor


def test_pixels_are_the_flattened_images():
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    feats = load_feature_extractor("pixels").features(x)
    np.testing.assert_array_equal(feats.numpy(), x.reshape(2, -1))


def test_digits_features_and_probabilities(digits):
    x = digits[2][:30]
    extractor = load_feature_extractor("digits")
    assert extractor.features(x).shape == (30, 64)
    probs = extractor.probabilities(x)
    torch.testing.assert_close(probs.sum(1), torch.ones(30, dtype=torch.float64))
    assert (probs.argmax(1).numpy() == digits[3][:30]).mean() > 0.9


def test_mnist_features_and_probabilities(mnist):
    x = mnist.test[:40]
    extractor = load_feature_extractor("mnist")
    assert extractor.features(x).shape == (40, 64)
    probs = extractor.probabilities(x)
    torch.testing.assert_close(probs.sum(1), torch.ones(40, dtype=torch.float64))
    assert (probs.argmax(1).numpy() == mnist.test_labels[:40]).mean() > 0.9


def test_default_feature_is_the_shipped_network_for_its_shape_else_pixels():
    assert default_feature_for((1, 8, 8)) == "digits"
    assert default_feature_for(torch.Size([1, 28, 28])) == "mnist"
    assert default_feature_for((3, 28, 28)) == default_feature_for((1, 16, 16)) == "pixels"
    assert load_feature_extractor(default_feature_for((3, 32, 32))).has_probabilities is False


def test_missing_inception_weights_give_a_clear_error(tmp_path):
    missing = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(ConfigError, match="never downloads"):
        load_feature_extractor(f"inception:{missing}", value_range=(0.0, 255.0))


def test_users_module_callable(tmp_path, monkeypatch):
    (tmp_path / "my_features.py").write_text(
        "def mean_per_channel(images):\n    return images.mean(dim=(2, 3))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_features", raising=False)
    x = torch.rand(5, 3, 4, 4)
    feats = load_feature_extractor("my_features:mean_per_channel").features(x)
    torch.testing.assert_close(feats, x.mean(dim=(2, 3)))


@pytest.mark.parametrize("spec", ["nonexistent_module_xyz:f", "math:no_such_name", "bogus"])
def test_bad_specs_raise_config_errors(spec):
    with pytest.raises(ConfigError):
        load_feature_extractor(spec)


def test_pixels_have_no_class_probabilities():
    with pytest.raises(ConfigError, match="probabilities"):
        load_feature_extractor("pixels").probabilities(torch.zeros(2, 1, 8, 8))
