import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.mixture import GaussianMixture

from probgen.data.toys import MIXTURES, sample_toy
from probgen.errors import ConfigError, DataError
from probgen.metrics.fid import fid
from probgen.metrics.suite import CLASS_METRICS, IMAGE_METRICS, SAMPLE_METRICS, evaluate_samples


def blur(x):
    x = torch.as_tensor(x)
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1).numpy()


def test_vector_defaults_with_and_without_mixture():
    ref = sample_toy("8gaussians", 1000, seed=1)
    x = sample_toy("8gaussians", 1000, seed=2)
    plain = evaluate_samples(x, ref, kind="vector")
    assert set(plain) == {"mmd", "swd", "precision", "recall", "density", "coverage"}
    full = evaluate_samples(torch.as_tensor(x), ref, kind="vector", mixture=MIXTURES["8gaussians"])
    assert set(full) == set(plain) | {"modes", "high_quality", "reverse_kl"}
    assert full["modes"] == 8


def test_fid_misses_dropped_modes_that_mode_metrics_catch():
    # Every other mode of the ring keeps the mean and covariance of the full ring.
    ref = sample_toy("8gaussians", 2000, seed=1)
    centres, std = MIXTURES["8gaussians"]
    rng = np.random.default_rng(0)
    half = centres[rng.integers(0, 4, 2000) * 2] + std * rng.standard_normal((2000, 2))
    assert fid(half, ref).value < 0.05
    out = evaluate_samples(
        half, ref, kind="vector", metrics=["modes", "recall"], mixture=(centres, std)
    )
    assert out["modes"] == 4
    assert out["recall"] < 0.6


def test_image_defaults_on_digits_rank_real_gmm_blurred_collapsed(digits):
    train_x, train_y, test_x, _ = digits
    n = len(test_x)
    gmm = GaussianMixture(10, covariance_type="diag", reg_covar=1e-2, random_state=0)
    gmm.fit(train_x.reshape(len(train_x), -1).astype(np.float64))
    gmm_x = np.clip(gmm.sample(n)[0], 0, 16).reshape(-1, 1, 8, 8)
    sets = {
        "real": test_x,
        "gmm": gmm_x,
        "blurred": blur(test_x),
        "collapsed": train_x[np.isin(train_y, [0, 1])][:n],
    }
    chosen = ["fid", "is", "precision", "recall", "sharpness", "sharpness_real"]
    ref = train_x[:800]
    out = {k: evaluate_samples(v, ref, kind="image", metrics=chosen) for k, v in sets.items()}
    assert (
        out["real"]["fid"] < out["gmm"]["fid"] < min(out["blurred"]["fid"], out["collapsed"]["fid"])
    )
    assert out["collapsed"]["precision"] > 0.9 > 0.3 > out["collapsed"]["recall"]
    assert out["blurred"]["precision"] < 0.3
    assert out["blurred"]["sharpness"] < 0.2 * out["blurred"]["sharpness_real"]
    assert out["real"]["is"] > 3 * out["collapsed"]["is"]


def test_unknown_metric_lists_the_valid_ones():
    x = np.zeros((10, 2))
    with pytest.raises(ConfigError, match="valid: mmd, swd"):
        evaluate_samples(x, x, kind="vector", metrics=["fud"])
    assert "fid" in SAMPLE_METRICS and "modes" in SAMPLE_METRICS


def test_metrics_of_the_other_kind_and_mode_metrics_without_mixture_are_refused():
    x = np.random.default_rng(0).standard_normal((20, 2))
    with pytest.raises(ConfigError, match="do not apply"):
        evaluate_samples(x, x, kind="vector", metrics=["fid"])
    with pytest.raises(ConfigError, match="mixture"):
        evaluate_samples(x, x, kind="vector", metrics=["modes"])


def test_image_defaults_and_pixel_features_skip_class_metrics(digits):
    x, ref = digits[2][:150], digits[0][:300]
    out = evaluate_samples(x, ref, kind="image")
    assert set(out) == set(IMAGE_METRICS) - {"memorisation"} | {"kid_std", "is_std"}
    out = evaluate_samples(x, ref, kind="image", feature="pixels", seed=3, train=digits[0][300:])
    assert set(out) == set(IMAGE_METRICS) - set(CLASS_METRICS) | {"kid_std", "memorisation_copied"}


def test_memorisation_and_class_metrics_flag_copies_and_collapse(digits):
    train_x, train_y, test_x, _ = digits
    chosen = ["memorisation", "confidence", "classes"]
    real = evaluate_samples(test_x[:150], test_x[150:], kind="image", metrics=chosen, train=train_x)
    copied = train_x[np.isin(train_y, [3, 7])][:150]
    copies = evaluate_samples(copied, test_x, kind="image", metrics=chosen, train=train_x)
    assert set(real) == {*chosen, "memorisation_copied"}
    assert 0.8 < real["memorisation"] < 1.25 and copies["memorisation"] == 0.0
    assert real["classes"] == 10 and copies["classes"] == 2
    assert copies["confidence"] > 0.95


def test_memorisation_needs_the_training_images():
    x = np.zeros((12, 1, 8, 8))
    with pytest.raises(ConfigError, match="train"):
        evaluate_samples(x, x, kind="image", metrics=["memorisation"])
    with pytest.raises(DataError, match="same example shape"):
        evaluate_samples(x, x, kind="image", metrics=["sharpness"], train=np.zeros((3, 1, 4, 4)))


def test_shape_mismatch_is_a_data_error():
    with pytest.raises(DataError):
        evaluate_samples(np.zeros((5, 2)), np.zeros((5, 3)), kind="vector")
    with pytest.raises(DataError):
        evaluate_samples(np.zeros((5, 64)), np.zeros((5, 64)), kind="image")


def test_mnist_features_rank_real_above_blurred_digits(mnist):
    chosen = ["fid", "confidence", "classes", "memorisation"]
    real, ref, train = mnist.test[:500], mnist.test[500:], mnist.train[:2000]
    kw = dict(kind="image", metrics=chosen, feature="mnist", train=train, value_range=(0, 255))
    out = evaluate_samples(real, ref, **kw)
    smeared = evaluate_samples(blur(blur(real)), ref, **kw)
    assert out["fid"] < 0.2 * smeared["fid"]
    assert out["classes"] == 10 and out["confidence"] > 0.95 > smeared["confidence"]
    assert 0.8 < out["memorisation"] < 1.25
