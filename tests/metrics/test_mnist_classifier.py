from importlib import resources

import pytest
import torch

from probgen.errors import DataError
from probgen.metrics.mnist_classifier import (
    FEATURE_DIM,
    WEIGHTS_FILE,
    load_mnist_classifier,
    training_record,
)


def test_recorded_training_reaches_97_percent_held_out_and_used_the_training_split():
    record = training_record()
    assert float(record["test_accuracy"]) >= 0.97
    assert int(record["train_size"]) >= 4000 and int(record["test_size"]) >= 1000


def test_shipped_weights_reach_97_percent_on_held_out_digits(mnist):
    model = load_mnist_classifier()
    with torch.no_grad():
        predicted = model(torch.as_tensor(mnist.test)).argmax(1)
    accuracy = float((predicted == torch.as_tensor(mnist.test_labels)).float().mean())
    assert accuracy >= 0.97
    record = training_record()
    if mnist.spec.get("origin") == record["data"]:  # the split the script trained on
        assert accuracy == pytest.approx(float(record["test_accuracy"]), abs=2e-3)


def test_flat_and_image_inputs_agree_and_features_have_documented_size():
    x = torch.rand(6, 1, 28, 28) * 255
    model = load_mnist_classifier()
    with torch.no_grad():
        feats = model.features(x)
        torch.testing.assert_close(model.features(x.reshape(6, 784)), feats)
    assert feats.shape == (6, FEATURE_DIM)


def test_rejects_images_of_another_size():
    with pytest.raises(DataError, match="28, 28"):
        load_mnist_classifier().features(torch.zeros(2, 1, 8, 8))


def test_weights_file_is_small():
    path = resources.files("probgen.metrics") / "weights" / WEIGHTS_FILE
    assert path.stat().st_size < 500_000
