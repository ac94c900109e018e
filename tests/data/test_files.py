import gzip
import struct

import numpy as np
import pytest
from PIL import Image

from probgen.data import files
from probgen.errors import DataError


def write_idx(path, array, compress=False):
    codes = {np.uint8: 0x08, np.float32: 0x0D}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)


def test_npy_round_trip(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.save(tmp_path / "x.npy", x)
    np.testing.assert_array_equal(files.read_npy(tmp_path / "x.npy"), x)


def test_npy_object_array_is_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not a numeric"):
        files.read_npy(tmp_path / "o.npy")


def test_npz_keys(tmp_path):
    np.savez(tmp_path / "d.npz", a=np.zeros((3, 2)), b=np.ones((3, 2)), y=np.arange(3))
    x, y = files.read_npz(tmp_path / "d.npz", "b", "y")
    assert x.sum() == 6 and list(y) == [0, 1, 2]
    with pytest.raises(DataError, match="several arrays"):
        files.read_npz(tmp_path / "d.npz", None, None)
    with pytest.raises(DataError, match="no array 'c'; it holds: a, b, y"):
        files.read_npz(tmp_path / "d.npz", "c", None)


def test_npz_single_array_needs_no_key(tmp_path):
    np.savez(tmp_path / "d.npz", data=np.zeros((4, 3)))
    x, y = files.read_npz(tmp_path / "d.npz", None, None)
    assert x.shape == (4, 3) and y is None


def test_csv_with_and_without_header(tmp_path):
    (tmp_path / "h.csv").write_text("a,b,label\n1,2,x\n3,4,y\n")
    x, y = files.read_csv(tmp_path / "h.csv", "label")
    np.testing.assert_array_equal(x, [[1, 2], [3, 4]])
    assert list(y) == ["x", "y"]
    (tmp_path / "n.csv").write_text("1,2\n3,4\n5,6\n")
    x, y = files.read_csv(tmp_path / "n.csv", None)
    assert x.shape == (3, 2) and y is None


def test_csv_ragged_rows_name_the_line(tmp_path):
    (tmp_path / "r.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataError, match="line 3 has 1 values, expected 2"):
        files.read_csv(tmp_path / "r.csv", None)


def test_csv_non_number_names_the_cell(tmp_path):
    (tmp_path / "r.csv").write_text("1,2\n3,oops\n")
    with pytest.raises(DataError, match="line 2, column 2: 'oops'"):
        files.read_csv(tmp_path / "r.csv", None)


def test_csv_empty(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="no rows"):
        files.read_csv(tmp_path / "e.csv", None)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_plain_and_gz(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    name = "train-images-idx3-ubyte" + (".gz" if compress else "")
    write_idx(tmp_path / name, images, compress)
    assert files.is_idx(tmp_path / name)
    np.testing.assert_array_equal(files.read_idx(tmp_path / name), images)


def test_idx_bad_magic_and_truncation(tmp_path):
    (tmp_path / "x-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="bad magic"):
        files.read_idx(tmp_path / "x-idx3-ubyte")
    write_idx(tmp_path / "t-idx1-ubyte", np.arange(10, dtype=np.uint8))
    data = (tmp_path / "t-idx1-ubyte").read_bytes()[:-3]
    (tmp_path / "t-idx1-ubyte").write_bytes(data)
    with pytest.raises(DataError, match="promises shape"):
        files.read_idx(tmp_path / "t-idx1-ubyte")


def test_image_folder_with_class_subfolders(tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(2):
            Image.fromarray(np.full((5, 4), 10 * i, np.uint8), "L").save(
                tmp_path / label / f"{i}.png"
            )
    x, y = files.read_image_folder(tmp_path)
    assert x.shape == (4, 1, 5, 4)
    assert list(y) == ["cat", "cat", "dog", "dog"]


def test_image_folder_rgb_and_mixed_sizes(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8), "RGB").save(tmp_path / "a.jpg")
    x, y = files.read_image_folder(tmp_path)
    assert x.shape == (1, 3, 4, 4) and y is None
    Image.fromarray(np.zeros((6, 6), np.uint8), "L").save(tmp_path / "b.png")
    with pytest.raises(DataError, match="mixed image sizes: a.jpg is 4x4 but b.png is 6x6"):
        files.read_image_folder(tmp_path)


def test_image_folder_empty(tmp_path):
    with pytest.raises(DataError, match="no .png"):
        files.read_image_folder(tmp_path)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_header_promising_more_than_the_file_is_refused_before_reading(tmp_path, compress):
    header = struct.pack(">BBBB3I", 0, 0, 0x08, 3, 2**31, 2**31, 2**31)
    path = tmp_path / ("huge-idx3-ubyte" + (".gz" if compress else ""))
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + bytes(100))
    with pytest.raises(DataError, match=r"promises shape \(2147483648, 2147483648, 2147483648\)"):
        files.read_idx(path)


def test_npy_header_promising_more_than_the_file_is_refused(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((4, 2), np.float32))
    raw = path.read_bytes().replace(b"(4, 2)", b"(4000000000000, 2)".ljust(6))
    path.write_bytes(raw[:200])
    with pytest.raises(DataError, match=r"promises shape \(4000000000000, 2\)"):
        files.read_npy(path)


def test_fifos_and_devices_are_refused_links_are_followed(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.npy")
    with pytest.raises(DataError, match="is a FIFO, not a regular file"):
        files.read_npy(tmp_path / "pipe.npy")
    with pytest.raises(DataError, match="is a character device"):
        files.read_csv(files.Path("/dev/zero"), None)
    np.save(tmp_path / "real.npy", np.ones((3, 2)))
    (tmp_path / "link.npy").symlink_to(tmp_path / "real.npy")
    assert files.read_npy(tmp_path / "link.npy").shape == (3, 2)
    (tmp_path / "to-pipe.npy").symlink_to(tmp_path / "pipe.npy")
    with pytest.raises(DataError, match="is a FIFO"):
        files.read_npy(tmp_path / "to-pipe.npy")
