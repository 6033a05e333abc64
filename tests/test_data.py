"""xpnet.data: loaders against small files in the real formats (no network), and the helpers."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from xpnet import data
from xpnet.errors import CorruptFileError, LabelError, ShapeError

# ---------------------------------------------------------------------------
# Fixture files in the real formats
# ---------------------------------------------------------------------------

MNIST_SIZES = {"train": 5, "t10k": 3}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = 0x0800 + array.ndim if magic is None else magic
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def _mnist_arrays(prefix: str) -> tuple[np.ndarray, np.ndarray]:
    n = MNIST_SIZES[prefix]
    offset = 0 if prefix == "train" else 100
    images = ((np.arange(n * 28 * 28) + offset) % 256).astype(np.uint8).reshape(n, 28, 28)
    labels = (np.arange(n) * 3 + (prefix == "t10k")) % 10
    return images, labels.astype(np.uint8)


def _write_gz(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload))


def _write_mnist(folder: Path, overrides: dict[str, bytes] | None = None) -> dict[str, str]:
    """Write the four MNIST files into ``folder``; return their SHA-256 digests."""
    payloads = {}
    for prefix in MNIST_SIZES:
        images, labels = _mnist_arrays(prefix)
        payloads[f"{prefix}-images-idx3-ubyte.gz"] = _idx_bytes(images)
        payloads[f"{prefix}-labels-idx1-ubyte.gz"] = _idx_bytes(labels)
    payloads.update(overrides or {})
    for name, payload in payloads.items():
        _write_gz(folder / name, payload)
    return {name: _sha256(folder / name) for name in payloads}


CIFAR_SIZES = {**{f"data_batch_{i}": 2 for i in range(1, 6)}, "test_batch": 3}


def _cifar_batch(name: str) -> dict:
    n = CIFAR_SIZES[name]
    seed = int(name[-1]) if name[-1].isdigit() else 9
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": name.encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img{i}.png".encode() for i in range(n)],
    }


def _write_cifar(folder: Path, overrides: dict[str, bytes] | None = None) -> dict[str, str]:
    """Write a small cifar-10-python.tar.gz into ``folder``; return its SHA-256 digest."""
    members = {name: pickle.dumps(_cifar_batch(name), protocol=3) for name in CIFAR_SIZES}
    members.update(overrides or {})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return {path.name: _sha256(path)}


@pytest.fixture
def checksums(monkeypatch):
    """Replace the official digests with those of the files a test writes."""
    table = {"mnist": {}, "cifar10": {}}
    monkeypatch.setattr(data, "CHECKSUMS", table)
    return table


@pytest.fixture(autouse=True)
def no_data_dir(monkeypatch, tmp_path):
    """Keep every test away from the real cache, even one that forgets to pass root."""
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path / "unset-cache"))


# ---------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------


def test_load_mnist_from_present_files(tmp_path, checksums, monkeypatch):
    checksums["mnist"] = _write_mnist(tmp_path / "mnist")

    def no_network(*args, **kwargs):
        raise AssertionError("load_mnist touched the network although every file was present")

    monkeypatch.setattr(data.urllib.request, "urlopen", no_network)
    (X_train, y_train), (X_test, y_test) = data.load_mnist(tmp_path)

    assert X_train.shape == (5, 28, 28) and X_train.dtype == np.uint8
    assert X_test.shape == (3, 28, 28) and X_test.dtype == np.uint8
    assert y_train.shape == (5,) and y_train.dtype == np.int64
    assert y_test.shape == (3,) and y_test.dtype == np.int64
    np.testing.assert_array_equal(X_train, _mnist_arrays("train")[0])
    np.testing.assert_array_equal(X_test, _mnist_arrays("t10k")[0])
    np.testing.assert_array_equal(y_train, [0, 3, 6, 9, 2])
    np.testing.assert_array_equal(y_test, [1, 4, 7])


def test_load_mnist_downloads_through_file_url(tmp_path, checksums):
    source = tmp_path / "mirror"
    checksums["mnist"] = _write_mnist(source)
    root = tmp_path / "root"

    (X_train, y_train), (X_test, _) = data.load_mnist(root, base_url=source.as_uri())

    names = sorted(p.name for p in (root / "mnist").iterdir())
    assert names == sorted(checksums["mnist"])  # no leftover temporary files
    for name in names:
        assert (root / "mnist" / name).read_bytes() == (source / name).read_bytes()
    np.testing.assert_array_equal(X_train, _mnist_arrays("train")[0])
    assert X_test.shape == (3, 28, 28)


def test_download_tries_the_next_mirror(tmp_path, checksums):
    source = tmp_path / "mirror"
    checksums["mnist"] = _write_mnist(source)
    empty = tmp_path / "empty-mirror"
    empty.mkdir()

    (_, y_train), _ = data.load_mnist(tmp_path / "root", base_url=[empty.as_uri(), source.as_uri()])

    np.testing.assert_array_equal(y_train, [0, 3, 6, 9, 2])


def test_load_mnist_offline_error_names_the_path(tmp_path, checksums):
    checksums["mnist"] = _write_mnist(tmp_path / "mirror")
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    root = tmp_path / "root"

    with pytest.raises(ConnectionError, match="offline") as info:
        data.load_mnist(root, base_url=empty.as_uri())

    assert str(root / "mnist" / "train-images-idx3-ubyte.gz") in str(info.value)
    assert list((root / "mnist").iterdir()) == []


def test_offline_message_lists_every_file_checksum_and_place(tmp_path, checksums):
    checksums["mnist"] = _write_mnist(tmp_path / "mirror")
    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    root = tmp_path / "root"
    present = "t10k-labels-idx1-ubyte.gz"
    (root / "mnist").mkdir(parents=True)
    (root / "mnist" / present).write_bytes((tmp_path / "mirror" / present).read_bytes())

    with pytest.raises(ConnectionError) as info:
        data.load_mnist(root, base_url=empty.as_uri())

    message = str(info.value)
    assert f"Put these files in {root / 'mnist'}" in message
    lines = message.splitlines()
    for name, digest in checksums["mnist"].items():
        at = lines.index(f"  {root / 'mnist' / name}")
        source = "already there" if name == present else f"from {empty.as_uri()}/{name}"
        assert lines[at + 1] == f"      sha256 {digest}, {source}"
    assert "XPNET_DATA_DIR" in message and "--data-dir" in message


def test_missing_files_without_download_are_listed_together(tmp_path, checksums):
    checksums["mnist"] = _write_mnist(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError) as info:
        data.load_mnist(tmp_path / "root", download=False)
    message = str(info.value)
    assert "4 mnist files are missing" in message
    assert all(f"{name}\n      sha256 {digest}" in message for name, digest in checksums["mnist"].items())


def test_respects_xpnet_data_dir(tmp_path, checksums, monkeypatch):
    checksums["mnist"] = _write_mnist(tmp_path / "from-env" / "mnist")
    monkeypatch.setenv("XPNET_DATA_DIR", str(tmp_path / "from-env"))

    (_, y_train), _ = data.load_mnist(download=False)

    np.testing.assert_array_equal(y_train, [0, 3, 6, 9, 2])


def test_default_root_is_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("XPNET_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))

    with pytest.raises(FileNotFoundError) as info:
        data.load_cifar10(download=False)

    assert str(tmp_path / ".cache" / "xpnet" / "cifar10" / "cifar-10-python.tar.gz") in str(info.value)
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in str(info.value)


def test_missing_file_without_download(tmp_path, checksums):
    checksums["mnist"] = _write_mnist(tmp_path / "elsewhere")
    root = tmp_path / "root"

    with pytest.raises(FileNotFoundError) as info:
        data.load_mnist(root, download=False)

    message = str(info.value)
    assert str(root / "mnist" / "train-images-idx3-ubyte.gz") in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in message
    assert not (root / "mnist").exists()


def test_checksum_mismatch_of_present_file(tmp_path, checksums):
    checksums["mnist"] = _write_mnist(tmp_path / "mnist")
    good = checksums["mnist"]["train-labels-idx1-ubyte.gz"]
    checksums["mnist"]["train-labels-idx1-ubyte.gz"] = "0" * 64

    with pytest.raises(CorruptFileError) as info:
        data.load_mnist(tmp_path)

    message = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in message and "0" * 64 in message and good in message
    assert "Delete" in message
    assert (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").exists()  # the user's own file is left alone


def test_checksum_mismatch_of_downloaded_file_deletes_it(tmp_path, checksums):
    source = tmp_path / "mirror"
    checksums["mnist"] = _write_mnist(source)
    checksums["mnist"]["train-images-idx3-ubyte.gz"] = "f" * 64
    root = tmp_path / "root"

    with pytest.raises(CorruptFileError, match="f{64}") as info:
        data.load_mnist(root, base_url=source.as_uri())

    assert _sha256(source / "train-images-idx3-ubyte.gz") in str(info.value)
    assert list((root / "mnist").iterdir()) == []


def test_corrupt_file_error_is_a_value_error():
    assert issubclass(CorruptFileError, ValueError)


def _bad_mnist(tmp_path, checksums, name: str, payload: bytes) -> None:
    checksums["mnist"] = _write_mnist(tmp_path / "mnist", {name: payload})


def test_truncated_idx_file(tmp_path, checksums):
    images, _ = _mnist_arrays("t10k")
    _bad_mnist(tmp_path, checksums, "t10k-images-idx3-ubyte.gz", _idx_bytes(images)[:-100])

    with pytest.raises(CorruptFileError, match="truncated") as info:
        data.load_mnist(tmp_path)

    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message
    assert str(3 * 28 * 28) in message and str(3 * 28 * 28 - 100) in message


def test_truncated_gzip_stream(tmp_path, checksums):
    checksums["mnist"] = _write_mnist(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    checksums["mnist"][path.name] = _sha256(path)

    with pytest.raises(CorruptFileError, match="gzip"):
        data.load_mnist(tmp_path)


def test_header_shorter_than_idx_header(tmp_path, checksums):
    _bad_mnist(tmp_path, checksums, "train-labels-idx1-ubyte.gz", b"\x00\x00\x08")

    with pytest.raises(CorruptFileError, match="header"):
        data.load_mnist(tmp_path)


def test_wrong_magic_number(tmp_path, checksums):
    _, labels = _mnist_arrays("train")
    # A labels file that claims to hold 3-D data (an images magic) with otherwise valid layout.
    _bad_mnist(tmp_path, checksums, "train-labels-idx1-ubyte.gz", _idx_bytes(labels, magic=0x0803))

    with pytest.raises(CorruptFileError, match="magic") as info:
        data.load_mnist(tmp_path)

    message = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in message and "0x00000803" in message and "0x00000801" in message


def test_label_and_image_count_mismatch(tmp_path, checksums):
    _bad_mnist(tmp_path, checksums, "train-labels-idx1-ubyte.gz", _idx_bytes(np.arange(4, dtype=np.uint8)))

    with pytest.raises(CorruptFileError, match="5 images but .* 4 labels"):
        data.load_mnist(tmp_path)


def test_mnist_checksums_are_full_sha256_digests():
    assert set(data.CHECKSUMS["mnist"]) == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    for table in data.CHECKSUMS.values():
        for digest in table.values():
            assert len(digest) == 64 and int(digest, 16) >= 0


# ---------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------


def _hwc(batch: dict) -> np.ndarray:
    """The expected HWC image, built pixel by pixel from the CHW-flattened row."""
    rows = batch[b"data"]
    out = np.empty((len(rows), 32, 32, 3), dtype=np.uint8)
    for n, row in enumerate(rows):
        for c in range(3):
            for h in range(32):
                out[n, h, :, c] = row[c * 1024 + h * 32 : c * 1024 + h * 32 + 32]
    return out


def test_load_cifar10_shapes_values_and_hwc(tmp_path, checksums):
    checksums["cifar10"] = _write_cifar(tmp_path / "cifar10")

    (X_train, y_train), (X_test, y_test) = data.load_cifar10(tmp_path, download=False)

    assert X_train.shape == (10, 32, 32, 3) and X_train.dtype == np.uint8
    assert X_test.shape == (3, 32, 32, 3) and X_test.dtype == np.uint8
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    train = [_cifar_batch(f"data_batch_{i}") for i in range(1, 6)]
    np.testing.assert_array_equal(X_train, np.concatenate([_hwc(b) for b in train]))
    np.testing.assert_array_equal(y_train, np.concatenate([b[b"labels"] for b in train]))
    test = _cifar_batch("test_batch")
    np.testing.assert_array_equal(X_test, _hwc(test))
    np.testing.assert_array_equal(y_test, test[b"labels"])
    # Spot check one pixel against the documented layout: red plane first, row-major within it.
    row = test[b"data"][1]
    assert tuple(X_test[1, 2, 5]) == (row[2 * 32 + 5], row[1024 + 2 * 32 + 5], row[2048 + 2 * 32 + 5])


def test_load_cifar10_downloads_through_file_url(tmp_path, checksums):
    source = tmp_path / "mirror"
    checksums["cifar10"] = _write_cifar(source)
    root = tmp_path / "root"

    _, (X_test, y_test) = data.load_cifar10(root, base_url=source.as_uri() + "/")

    assert [p.name for p in (root / "cifar10").iterdir()] == ["cifar-10-python.tar.gz"]
    np.testing.assert_array_equal(y_test, _cifar_batch("test_batch")[b"labels"])
    assert X_test.shape == (3, 32, 32, 3)


def test_load_cifar10_does_not_extract(tmp_path, checksums):
    checksums["cifar10"] = _write_cifar(tmp_path / "cifar10")

    data.load_cifar10(tmp_path)

    assert [p.name for p in (tmp_path / "cifar10").iterdir()] == ["cifar-10-python.tar.gz"]


def test_cifar10_checksum_mismatch_never_unpickles(tmp_path, checksums, monkeypatch):
    _write_cifar(tmp_path / "cifar10")
    checksums["cifar10"] = {"cifar-10-python.tar.gz": "a" * 64}

    def refuse(*args, **kwargs):
        raise AssertionError("unpickled a file whose checksum did not match")

    monkeypatch.setattr(data, "_restricted_loads", refuse)
    with pytest.raises(CorruptFileError, match="a{64}"):
        data.load_cifar10(tmp_path)


def test_cifar10_missing_batch(tmp_path, checksums):
    checksums["cifar10"] = _write_cifar(tmp_path / "cifar10")
    path = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        payload = pickle.dumps(_cifar_batch("test_batch"), protocol=3)
        info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    checksums["cifar10"][path.name] = _sha256(path)

    with pytest.raises(CorruptFileError, match="data_batch_1"):
        data.load_cifar10(tmp_path)


class _Exploit:
    """Pickles to a call of os.system that would create ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Exploit(marker), b"labels": [0]}, protocol=3)
    assert b"system" in payload  # the pickle really references the global

    with pytest.raises(pickle.UnpicklingError, match="system"):
        data._restricted_loads(payload)

    assert not marker.exists()


def test_malicious_batch_in_verified_archive_is_refused(tmp_path, checksums):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Exploit(marker), b"labels": [0, 1]}, protocol=3)
    checksums["cifar10"] = _write_cifar(tmp_path / "cifar10", {"data_batch_3": evil})

    with pytest.raises(CorruptFileError, match=r"cifar-10-python.tar.gz:cifar-10-batches-py/data_batch_3.*posix\.system"):
        data.load_cifar10(tmp_path)

    assert not marker.exists()


@pytest.mark.parametrize("module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_restricted_unpickler_loads_arrays_from_numpy_1_and_2(module):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    payload = pickle.dumps({b"data": array}, protocol=3)
    # Protocol 3 names globals as text, so the module can be rewritten to what NumPy 1 wrote.
    payload = payload.replace(b"numpy._core.multiarray\n", module.encode() + b"\n")
    assert module.encode() in payload

    loaded = data._restricted_loads(payload)

    np.testing.assert_array_equal(loaded[b"data"], array)


def test_restricted_unpickler_refuses_other_numpy_globals():
    payload = pickle.dumps(np.save, protocol=3)

    with pytest.raises(pickle.UnpicklingError, match="numpy.save"):
        data._restricted_loads(payload)


# ---------------------------------------------------------------------------
# scikit-learn's digits
# ---------------------------------------------------------------------------


def test_load_digits_flat_and_scaled():
    pytest.importorskip("sklearn")
    X, y = data.load_digits()

    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert set(np.unique(y)) == set(range(10))


def test_load_digits_images_and_raw():
    pytest.importorskip("sklearn")
    X, y = data.load_digits(flatten=False, scale=False)
    X_flat, _, images = data.load_digits(return_images=True)

    assert X.shape == (1797, 8, 8) and X.max() == 16.0
    assert images.shape == (1797, 8, 8)
    np.testing.assert_array_equal(images.reshape(1797, 64), X_flat)
    np.testing.assert_allclose(X / 16, images)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def test_one_hot_and_unhot_roundtrip():
    labels = np.array([2, 0, 1, 2, 4])

    encoded = data.one_hot(labels)

    assert encoded.shape == (5, 5) and encoded.dtype == np.float64
    np.testing.assert_array_equal(encoded.sum(axis=1), np.ones(5))
    np.testing.assert_array_equal(encoded[0], [0, 0, 1, 0, 0])
    decoded = data.unhot(encoded)
    assert decoded.dtype == np.int64
    np.testing.assert_array_equal(decoded, labels)


def test_one_hot_num_classes_and_dtype():
    encoded = data.one_hot([1, 0], num_classes=4, dtype="float32")

    assert encoded.shape == (2, 4) and encoded.dtype == np.float32
    np.testing.assert_array_equal(encoded, [[0, 1, 0, 0], [1, 0, 0, 0]])


def test_one_hot_rejects_bad_labels():
    with pytest.raises(LabelError, match=r"\[0, 3\)"):
        data.one_hot([0, 3], num_classes=3)
    with pytest.raises(LabelError):
        data.one_hot([-1, 0])
    with pytest.raises(LabelError, match="integer"):
        data.one_hot([0.5, 1.0])
    with pytest.raises(ShapeError):
        data.one_hot([[0, 1]])
    with pytest.raises(ShapeError):
        data.unhot([0, 1])


def test_standardize_uses_train_statistics():
    rng = np.random.default_rng(0)
    X_train = rng.normal(3.0, 2.0, (200, 4))
    X_train[:, 2] = 7.0  # a constant feature
    X_test = rng.normal(3.0, 2.0, (50, 4))

    Z_train, Z_test, (mean, std) = data.standardize(X_train, X_test)

    np.testing.assert_allclose(Z_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Z_train.std(axis=0)[[0, 1, 3]], 1.0)
    np.testing.assert_array_equal(Z_train[:, 2], 0.0)
    assert std[2] == 1.0
    np.testing.assert_allclose(mean, X_train.mean(axis=0))
    np.testing.assert_allclose(Z_test, (X_test - mean) / std)
    assert Z_test.shape == X_test.shape


def test_standardize_dtypes_and_shape_check():
    images = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
    (Z, (mean, std)) = data.standardize(images)
    assert Z.dtype == np.float64 and mean.shape == (2, 2)

    Z32, _ = data.standardize(np.ones((3, 2), dtype=np.float32))
    assert Z32.dtype == np.float32

    with pytest.raises(ShapeError, match=r"\(5, 3\)"):
        data.standardize(np.ones((4, 2)), np.ones((5, 3)))


def test_train_test_split_sizes_determinism_disjointness():
    X = np.arange(40).reshape(20, 2)
    y = np.arange(20)

    X_train, X_test, y_train, y_test = data.train_test_split(X, y, test_size=0.25, seed=3)

    assert len(X_train) == len(y_train) == 15 and len(X_test) == len(y_test) == 5
    np.testing.assert_array_equal(X_train[:, 0] // 2, y_train)  # rows stay paired with their labels
    np.testing.assert_array_equal(X_test[:, 0] // 2, y_test)
    assert set(y_train).isdisjoint(y_test) and set(y_train) | set(y_test) == set(range(20))
    again = data.train_test_split(X, y, test_size=0.25, seed=3)
    np.testing.assert_array_equal(again[3], y_test)
    other = data.train_test_split(X, y, test_size=0.25, seed=4)
    assert not np.array_equal(other[3], y_test)


def test_train_test_split_stratified_keeps_proportions():
    y = np.repeat([0, 1, 2], [40, 20, 8])
    X = np.arange(len(y))

    X_train, X_test, y_train, y_test = data.train_test_split(X, y, test_size=0.25, seed=0, stratify=True)

    assert np.bincount(y_test).tolist() == [10, 5, 2]
    assert np.bincount(y_train).tolist() == [30, 15, 6]
    np.testing.assert_array_equal(y[X_test], y_test)
    assert set(X_train).isdisjoint(X_test) and len(X_train) + len(X_test) == len(y)
    # One-hot targets stratify by their argmax.
    _, _, _, onehot_test = data.train_test_split(X, data.one_hot(y), test_size=0.25, seed=0, stratify=True)
    assert np.bincount(data.unhot(onehot_test)).tolist() == [10, 5, 2]


def test_train_test_split_validates():
    with pytest.raises(ShapeError, match=r"\(10, 2\).*\(9,\)"):
        data.train_test_split(np.ones((10, 2)), np.ones(9))
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match="test_size"):
            data.train_test_split(np.ones(10), np.ones(10), test_size=bad)


def test_minibatches_cover_every_index_once():
    batches = list(data.minibatches(10, 4, seed=0))

    assert [len(b) for b in batches] == [4, 4, 2]
    assert all(b.dtype == np.int64 for b in batches)
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(10))
    assert not np.array_equal(np.concatenate(batches), np.arange(10))  # shuffled
    again = list(data.minibatches(10, 4, seed=0))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_minibatches_in_order_and_drop_last():
    in_order = list(data.minibatches(7, 3, shuffle=False))
    assert [b.tolist() for b in in_order] == [[0, 1, 2], [3, 4, 5], [6]]

    dropped = list(data.minibatches(7, 3, seed=1, drop_last=True))
    assert [len(b) for b in dropped] == [3, 3]
    assert len(set(np.concatenate(dropped).tolist())) == 6

    assert list(data.minibatches(0, 3)) == []


def test_minibatches_validates_at_the_call():
    with pytest.raises(ValueError, match="batch_size"):
        data.minibatches(10, 0)
    with pytest.raises(ValueError, match="n"):
        data.minibatches(-1, 2)


def test_standardize_accepts_a_target_of_shape_n():
    y_train, y_test = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.5, 6.0])

    z_train, z_test, (mean, std) = data.standardize(y_train, y_test)

    assert mean.shape == std.shape == ()
    np.testing.assert_allclose(z_train, (y_train - 2.5) / np.sqrt(1.25))
    np.testing.assert_allclose(z_test, (y_test - 2.5) / np.sqrt(1.25))
    z_const, (_, std_const) = data.standardize(np.full(3, 7.0))
    assert std_const == 1.0 and np.array_equal(z_const, np.zeros(3))


def test_standardize_refuses_complex_input():
    with pytest.raises(TypeError, match=r"argument 0 has dtype complex128.*X\.real, X\.imag"):
        data.standardize(np.arange(4.0) + 1j)
    with pytest.raises(TypeError, match="argument 1 has dtype complex"):
        data.standardize(np.ones((3, 2)), np.ones((2, 2)) * 1j)


@pytest.mark.parametrize(("counts", "test_size"), [([25, 25, 25, 25], 0.1), ([40, 20, 8], 0.25), ([7, 5, 3, 2], 0.3),
                                                   ([1, 1, 1, 1, 10], 0.5), ([50, 1, 3], 0.33)])
def test_stratified_split_has_the_documented_test_size(counts, test_size):
    y = np.repeat(np.arange(len(counts)), counts)
    n = len(y)

    X_train, X_test, y_train, y_test = data.train_test_split(np.arange(n), y, test_size=test_size, seed=1,
                                                             stratify=True)

    assert len(X_test) == len(y_test) == int(np.ceil(test_size * n))
    assert len(X_train) == n - len(X_test)
    np.testing.assert_array_equal(y[X_test], y_test)
    taken = np.bincount(y_test, minlength=len(counts))
    # each class gives its share rounded down or up, and keeps at least one training row
    share = test_size * np.array(counts)
    assert np.all(taken <= np.array(counts) - 1)
    assert np.all((taken >= np.floor(share)) | (np.array(counts) == 1))


def test_stratified_split_matches_scikit_learn_sizes():
    sklearn_split = pytest.importorskip("sklearn.model_selection").train_test_split
    rng = np.random.default_rng(0)
    for n, test_size in ((100, 0.1), (97, 0.2), (61, 0.37)):
        y = rng.integers(0, 5, n)
        y[:10] = np.arange(10) % 5  # every class at least twice
        ours = data.train_test_split(np.arange(n), y, test_size=test_size, seed=0, stratify=True)
        theirs = sklearn_split(np.arange(n), y, test_size=test_size, random_state=0, stratify=y)
        assert [len(a) for a in ours] == [len(a) for a in theirs]
        assert np.all(np.abs(np.bincount(ours[3], minlength=5) - np.bincount(theirs[3], minlength=5)) <= 1)


def test_stratify_needs_class_labels():
    with pytest.raises(LabelError, match="stratify needs class labels.*stratify=False"):
        data.train_test_split(np.zeros((50, 2)), np.linspace(0.0, 1.0, 50), stratify=True)
    with pytest.raises(ValueError, match="every label is different"):
        data.train_test_split(np.zeros((50, 2)), np.arange(50), stratify=True)
    # whole-number floats are labels
    parts = data.train_test_split(np.zeros((20, 2)), np.repeat([0.0, 1.0], 10), stratify=True, test_size=0.2)
    assert np.bincount(parts[3].astype(int)).tolist() == [2, 2]


def test_one_hot_refuses_non_finite_and_overflowing_labels():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from a cast before the check
        with pytest.raises(LabelError, match="finite whole numbers, got inf at index 1"):
            data.one_hot(np.array([0.0, np.inf]))
    with pytest.raises(LabelError, match="finite whole numbers, got nan"):
        data.one_hot(np.array([np.nan]))
    with pytest.raises(LabelError, match=r"whole numbers\), got 0\.5 at index 0"):
        data.one_hot(np.array([0.5, 1.0]))
    for huge in (np.array([1e20]), np.array([2**63 + 5], dtype=np.uint64), np.array([10**10])):
        with pytest.raises(LabelError, match=r"at most 16777216 \(2\*\*24\).*GiB.*np\.unique"):
            data.one_hot(huge)
    with pytest.raises(LabelError, match=r"labels in \[0, 18446744073709551615\]; expected labels in \[0, 3\)"):
        data.one_hot(np.array([0, 2**64 - 1], dtype=np.uint64), num_classes=3)


def test_one_hot_validates_num_classes():
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1 or None, got -1"):
        data.one_hot([0], num_classes=-1)
    with pytest.raises(TypeError, match="num_classes must be an integer >= 1 or None, got float 3.0"):
        data.one_hot([0], num_classes=3.0)
    with pytest.raises(ValueError, match=r"num_classes=16777217 is more than .*GiB"):
        data.one_hot([0], num_classes=2**24 + 1)
    np.testing.assert_array_equal(data.one_hot([1], num_classes=np.int64(3)), [[0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(data.one_hot(np.array([True, False])), [[0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(LabelError, match=r"labels in \[0, 1\]; expected labels in \[0, 1\)"):
        data.one_hot(np.array([True, False]), num_classes=1)


def test_unhot_refuses_zero_columns():
    with pytest.raises(ShapeError, match=r"K >= 1 classes, got shape \(3, 0\)"):
        data.unhot(np.zeros((3, 0)))


def test_train_test_split_argument_messages():
    with pytest.raises(TypeError, match="test_size must be a fraction strictly between 0 and 1.*got str '0.2'"):
        data.train_test_split(np.ones(10), np.ones(10), test_size="0.2")
    with pytest.raises(ValueError, match=r"seed must be an int >= 0, a numpy\.random\.Generator or None; got -1"):
        data.train_test_split(np.ones(10), np.ones(10), seed=-1)
    with pytest.raises(TypeError, match="seed must be .*got float 1.5"):
        data.train_test_split(np.ones(10), np.ones(10), seed=1.5)
    parts = data.train_test_split(np.arange(10), np.ones(10), seed=np.random.default_rng(0))
    assert [len(p) for p in parts] == [7, 3, 7, 3]
