import numpy as np
import pytest
import torch

from probgen.data import DATASETS, fit_preprocessor, load_dataset
from probgen.data.preprocess import ImageScaling, Standardize
from probgen.errors import DataError


@pytest.mark.parametrize("name", [n for n in DATASETS if n not in ("digits", "mnist")])
def test_toys_are_seeded_2d(name):
    a, b = load_dataset(name, seed=3), load_dataset(name, seed=3)
    np.testing.assert_array_equal(a.train, b.train)
    assert a.train.shape == (10_000, 2) and a.test.shape == (2_000, 2)
    assert not np.array_equal(a.train[:100], load_dataset(name, seed=4).train[:100])


def test_mixture_toys_carry_their_modes():
    ring = load_dataset("8gaussians")
    centres, std = ring.mixture
    assert centres.shape == (8, 2) and std == pytest.approx(0.02**0.5)
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 2.0)
    grid = load_dataset("25gaussians")
    assert grid.mixture[0].shape == (25, 2)
    d = np.linalg.norm(grid.train[:, None] - grid.mixture[0][None], axis=-1).min(1)
    assert np.mean(d < 3 * grid.mixture[1] * 1.5) > 0.98


def test_digits_fixed_split_and_labels():
    d = load_dataset("digits")
    assert d.train.shape == (1500, 1, 8, 8) and d.test.shape == (297, 1, 8, 8)
    assert d.kind == "image" and d.levels == 17 and d.num_classes == 10
    assert d.train.max() == 16 and d.train.min() == 0
    assert set(np.unique(d.train_labels)) == set(range(10))


def test_csv_file_is_split_and_standardised(blobs_csv):
    d = load_dataset(str(blobs_csv))
    assert d.kind == "vector" and len(d.train) == 270 and len(d.test) == 30
    p = fit_preprocessor(d)
    x = p.forward(torch.as_tensor(d.train))
    assert isinstance(p, Standardize)
    torch.testing.assert_close(x.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(0), torch.ones(2), atol=1e-4, rtol=0)
    back = p.inverse(x).numpy()
    np.testing.assert_allclose(back, d.train, rtol=1e-6)


def test_npz_labels_are_encoded(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.random.rand(20, 3), y=np.array(["a", "b"] * 10))
    d = load_dataset(str(tmp_path / "d.npz"), data_key="x", labels="y")
    assert d.classes == ["a", "b"] and d.train_labels.dtype == np.int64


def test_uint8_images_get_256_levels(tmp_path):
    np.save(tmp_path / "im.npy", np.random.randint(0, 256, (10, 6, 6)).astype(np.uint8))
    d = load_dataset(str(tmp_path / "im.npy"))
    assert d.kind == "image" and d.levels == 256 and d.event_shape == (1, 6, 6)
    p = fit_preprocessor(d, (-1.0, 1.0))
    assert isinstance(p, ImageScaling)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda p: np.save(p / "n.npy", np.array([[1.0, np.nan], [np.inf, 2.0]])),
            "2 NaN/inf values \\(first at example 0, index \\(1,\\)\\)",
        ),
        (lambda p: np.save(p / "n.npy", np.zeros((0, 3))), "no rows"),
        (lambda p: np.save(p / "n.npy", np.zeros((3, 5, 5, 7, 2))), "cannot interpret shape"),
    ],
)
def test_bad_arrays(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DataError, match=message):
        load_dataset(str(tmp_path / "n.npy"))


def test_missing_and_unknown(tmp_path):
    with pytest.raises(DataError, match="no dataset or file named 'nope'"):
        load_dataset("nope")
    (tmp_path / "x.txt").write_text("1 2")
    with pytest.raises(DataError, match="cannot read 'x.txt'"):
        load_dataset(str(tmp_path / "x.txt"))
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    with pytest.raises(DataError, match="--data-key applies to .npz"):
        load_dataset(str(tmp_path / "x.npy"), data_key="x")
