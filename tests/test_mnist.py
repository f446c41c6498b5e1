import gzip
import os
import shutil

import numpy as np
import pytest

from datasets import mnist


def test_shipped_files_load_with_official_counts():
    x, y = mnist.load("train")
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8 and y.shape == (60000,)
    np.testing.assert_array_equal(np.bincount(y), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949])
    xt, yt = mnist.load("test")
    assert xt.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(yt), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert not x.flags.writeable  # cached arrays are shared: nobody may modify them


def test_license_and_credit_are_shipped():
    text = open(os.path.join(mnist.DEFAULT_DIR, "README.md")).read()
    for needle in ("LeCun", "Cortes", "Burges", "CC BY-SA 3.0"):
        assert needle in text


def _copy(tmp_path):
    d = tmp_path / "mnist"
    shutil.copytree(mnist.DEFAULT_DIR, d)
    for f in d.iterdir():
        f.chmod(0o644)
    return d


def test_other_directory_and_uncompressed_files(tmp_path):
    d = _copy(tmp_path)
    gz = d / "t10k-labels-idx1-ubyte.gz"
    (d / "t10k-labels-idx1-ubyte").write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    x, y = mnist.load("test", data_dir=str(d))
    np.testing.assert_array_equal(y, mnist.load("test")[1])


def test_missing_file_is_named(tmp_path):
    d = _copy(tmp_path)
    (d / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(mnist.MNISTError, match="train-labels-idx1-ubyte.gz.*missing"):
        mnist.load("train", data_dir=str(d))


def test_corrupt_content_is_detected(tmp_path):
    d = _copy(tmp_path)
    path = d / "t10k-images-idx3-ubyte.gz"
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[5000] ^= 0xFF  # one flipped pixel byte: still a valid idx file, wrong content
    path.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(mnist.MNISTError, match="t10k-images-idx3-ubyte.*corrupt.*sha256"):
        mnist.load("test", data_dir=str(d))
    x, _ = mnist.load("test", data_dir=str(d), verify=False)  # the user may opt out
    assert x.shape == (10000, 28, 28)


def test_truncated_gzip_is_named(tmp_path):
    d = _copy(tmp_path)
    path = d / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(mnist.MNISTError, match="t10k-labels-idx1-ubyte.gz.*truncated"):
        mnist.load("test", data_dir=str(d))


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        mnist.load("validation")
