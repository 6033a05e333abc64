"""Datasets and the small helpers a training loop needs, all on the host in NumPy.

>>> (X_train, y_train), (X_test, y_test) = xpnet.data.load_mnist()
>>> for idx in xpnet.data.minibatches(len(X_train), 128, seed=0):
...     xb, yb = X_train[idx], y_train[idx]

Downloads land in ``root`` (``$XPNET_DATA_DIR``, else ``~/.cache/xpnet``) under
``mnist/`` and ``cifar10/``. Every file is checked against the SHA-256 in
``CHECKSUMS`` before it is read, so a present, verified file never touches the
network, and a half-written or tampered download is refused instead of parsed.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import math
import os
import pickle
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _validate
from .errors import CorruptFileError, LabelError, ShapeError
from .random import generator

__all__ = [
    "CHECKSUMS",
    "load_digits",
    "load_mnist",
    "load_cifar10",
    "one_hot",
    "unhot",
    "standardize",
    "train_test_split",
    "minibatches",
]

CHECKSUMS: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "cifar10": {
        "cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    },
}

# yann.lecun.com now answers downloads with 403, so the mirrors PyTorch and TensorFlow use come first.
_MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
_CIFAR10_URLS = ("https://www.cs.toronto.edu/~kriz/",)

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR10_DIR = "cifar-10-batches-py"
_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_TEST = "test_batch"

_CHUNK = 1 << 20
_TIMEOUT_S = 60


# ---------------------------------------------------------------------------
# scikit-learn's digits
# ---------------------------------------------------------------------------


def load_digits(
    *, flatten: bool = True, scale: bool = True, return_images: bool = False
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 1,797 8x8 handwritten digits bundled with scikit-learn (no download).

    Returns ``(X, y)``: ``X`` float64 of shape (1797, 64), or (1797, 8, 8) with
    ``flatten=False``, with pixels in [0, 1] when ``scale`` (raw values are 0..16);
    ``y`` int64 of shape (1797,) with classes 0..9. With ``return_images=True``
    returns ``(X, y, images)``, ``images`` float64 (1797, 8, 8) scaled like ``X``,
    handy for plotting while ``X`` stays flat.
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:
        raise ImportError(
            'load_digits needs scikit-learn, which is not installed; install it with pip install "xpnet[sklearn]"'
        ) from exc
    bunch = sk_load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)
    if scale:
        images = images / 16.0
    X = images.reshape(len(images), -1) if flatten else images.copy()
    y = np.asarray(bunch.target, dtype=np.int64)
    if return_images:
        return X, y, images
    return X, y


# ---------------------------------------------------------------------------
# Cache and download
# ---------------------------------------------------------------------------


def _data_root(root: str | os.PathLike | None) -> Path:
    if root is None:
        root = os.environ.get("XPNET_DATA_DIR") or Path.home() / ".cache" / "xpnet"
    return Path(root).expanduser()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _base_urls(base_url: str | Sequence[str] | None, default: Sequence[str]) -> list[str]:
    urls = default if base_url is None else [base_url] if isinstance(base_url, str) else base_url
    return [u if u.endswith("/") else u + "/" for u in urls]


def _fetch_all(
    dataset: str,
    filenames: Sequence[str],
    root: Path,
    base_url: str | Sequence[str] | None,
    default_urls: Sequence[str],
    download: bool,
) -> dict[str, Path]:
    """Verified paths of ``filenames`` under ``root/dataset``, downloading the missing ones
    if allowed. When one cannot be had, the error lists every file of the set, its
    SHA-256 and where it goes, so an offline user fetches them all in one go."""
    folder = root / dataset
    mirrors = _base_urls(base_url, default_urls)
    paths, missing = {}, []
    for filename in filenames:
        path = paths[filename] = folder / filename
        if not path.exists():
            missing.append(filename)
            continue
        expected, actual = CHECKSUMS[dataset][filename], _sha256(path)
        if actual != expected:
            raise CorruptFileError(
                f"{path} has SHA-256 {actual}, expected {expected}: the file is incomplete or not the "
                f"official one. Delete it and call again to re-download it (from {mirrors[0] + filename})."
            )
    if missing and not download:
        raise FileNotFoundError(
            f"{len(missing)} {dataset} file{'s are' if len(missing) > 1 else ' is'} missing and download=False. "
            f"Pass download=True, or download by hand.\n" + _by_hand(dataset, filenames, folder, mirrors, missing)
        )
    if missing:
        folder.mkdir(parents=True, exist_ok=True)
    for filename in missing:
        errors = []
        for mirror in mirrors:
            try:
                _download(mirror + filename, paths[filename], CHECKSUMS[dataset][filename])
                break
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
                errors.append(f"{mirror + filename}: {exc}")
        else:
            still = [name for name in missing if not paths[name].exists()]
            raise ConnectionError(
                f"could not download {dataset}: the machine may be offline or the mirrors unreachable "
                f"({'; '.join(errors)}). Download by hand on a machine with internet access.\n"
                + _by_hand(dataset, filenames, folder, mirrors, still)
            )
    return paths


def _by_hand(dataset: str, filenames: Sequence[str], folder: Path, mirrors: Sequence[str], missing: list[str]) -> str:
    """Every file of a dataset, its SHA-256 and source, and how to point xpnet at another folder."""
    lines = [f"Put these files in {folder}{os.sep} (check each with `sha256sum`):"]
    for name in filenames:
        where = f"from {mirrors[0] + name}" if name in missing else "already there"
        lines.append(f"  {folder / name}\n      sha256 {CHECKSUMS[dataset][name]}, {where}")
    lines.append(
        f"To keep them in another folder DIR, put them in DIR{os.sep}{dataset}{os.sep} and set XPNET_DATA_DIR=DIR, "
        f"pass root=DIR, or on the command line --data-dir DIR."
    )
    return "\n".join(lines)


def _download(url: str, path: Path, expected: str) -> None:
    """Stream ``url`` to a temporary file next to ``path``, verify it, then move it into place.

    Writing beside the target and renaming with ``os.replace`` means a crash or a
    second process never sees a half-written file under the final name.
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if actual != expected:
            raise CorruptFileError(
                f"the file downloaded from {url} has SHA-256 {actual}, expected {expected}; it was deleted. "
                f"The mirror may serve a different or damaged file: try again later, or download it by hand "
                f"and place it at {path}."
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse a gzipped IDX file of unsigned bytes with ``ndim`` dimensions."""
    fix = f"Delete {path} and call again to re-download it."
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptFileError(f"{path} is not a complete gzip file ({exc}). {fix}") from exc
    header_len = 4 + 4 * ndim
    # The magic number is two zero bytes, the element type (0x08: unsigned byte) and the number of dimensions.
    expected_magic = 0x0800 + ndim
    if len(raw) < header_len:
        raise CorruptFileError(f"{path} holds {len(raw)} bytes, fewer than the {header_len}-byte IDX header. {fix}")
    magic, *dims = np.frombuffer(raw, dtype=">u4", count=1 + ndim).tolist()
    if magic != expected_magic:
        raise CorruptFileError(
            f"{path} starts with magic number {magic:#010x}, expected {expected_magic:#010x} "
            f"(an IDX file of unsigned bytes with {ndim} dimension{'s' if ndim > 1 else ''}). {fix}"
        )
    expected_bytes = math.prod(dims)
    found_bytes = len(raw) - header_len
    if found_bytes != expected_bytes:
        what = "truncated" if found_bytes < expected_bytes else "longer than its header says"
        raise CorruptFileError(
            f"{path} is {what}: its header promises shape {tuple(dims)} = {expected_bytes} bytes of data, "
            f"found {found_bytes}. {fix}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims)


def load_mnist(
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    base_url: str | Sequence[str] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The MNIST handwritten digits: 60,000 training and 10,000 test images.

    Returns ``((X_train, y_train), (X_test, y_test))``: images uint8 of shape
    (N, 28, 28) with values 0..255, labels int64 of shape (N,) with classes 0..9.

    The four gzipped IDX files are read from ``root/mnist/`` (``root`` defaults to
    ``$XPNET_DATA_DIR``, else ``~/.cache/xpnet``) and downloaded there first if
    missing and ``download`` is true. ``base_url`` (a URL prefix or a list of them,
    tried in order) overrides the default mirrors.

    Raises ``CorruptFileError`` for a file whose SHA-256 or IDX structure is wrong,
    ``FileNotFoundError`` for a missing file with ``download=False`` and
    ``ConnectionError`` when no mirror can be reached.
    """
    names = [name for pair in _MNIST_FILES.values() for name in pair]
    paths = _fetch_all("mnist", names, _data_root(root), base_url, _MNIST_URLS, download)
    splits = []
    for images_name, labels_name in _MNIST_FILES.values():
        images_path, labels_path = paths[images_name], paths[labels_name]
        images = _read_idx(images_path, ndim=3)
        labels = _read_idx(labels_path, ndim=1).astype(np.int64)
        if len(images) != len(labels):
            raise CorruptFileError(
                f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
                f"expected one label per image. Delete both files and call again to re-download them."
            )
        splits.append((images, labels))
    return splits[0], splits[1]


# ---------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------

# The CIFAR batches are pickled dicts of a NumPy array and lists; rebuilding an array
# takes exactly these globals. Pickles from NumPy 1 name the ``numpy.core`` module,
# from NumPy 2 ``numpy._core``; both resolve to the function installed here.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild NumPy arrays and nothing else that names a global.

    A pickle can call any importable function while loading; refusing every global
    but the array-reconstruction ones means a tampered batch cannot run code.
    """

    def find_class(self, module: str, name: str):
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load the global {module}.{name}: a CIFAR-10 batch only needs NumPy array "
                f"reconstruction ({', '.join(f'{m}.{n}' for m, n in _PICKLE_ALLOWED)}), so this is not a "
                f"genuine CIFAR-10 file"
            ) from None


def _restricted_loads(data: bytes) -> object:
    return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


def _cifar_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    fix = "Delete the archive and call again to re-download it."
    try:
        batch = _restricted_loads(raw)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise CorruptFileError(f"{where} is not a CIFAR-10 batch: {exc}. {fix}") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        found = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise CorruptFileError(f"{where} should be a dict with keys b'data' and b'labels', found {found}. {fix}")
    data = batch[b"data"]
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise CorruptFileError(f"{where}: b'data' should be uint8 of shape (N, 3072), found {found}. {fix}")
    if labels.shape != (len(data),):
        raise CorruptFileError(f"{where} holds {len(data)} images but {labels.size} labels. {fix}")
    # Each row stores the red plane, then green, then blue (CHW); images are returned HWC.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


def load_cifar10(
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    base_url: str | Sequence[str] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """CIFAR-10: 50,000 training and 10,000 test colour images in 10 classes.

    Returns ``((X_train, y_train), (X_test, y_test))``: images uint8 of shape
    (N, 32, 32, 3) (height, width, RGB channel) with values 0..255, labels int64
    of shape (N,) with classes 0..9.

    Reads the official ``cifar-10-python.tar.gz`` from ``root/cifar10/`` (``root``
    defaults to ``$XPNET_DATA_DIR``, else ``~/.cache/xpnet``), downloading it there
    first if missing and ``download`` is true; ``base_url`` overrides the source.
    The batches are read straight out of the archive, nothing is extracted, and
    they are unpickled only after the archive's SHA-256 matched, with an unpickler
    that refuses anything but NumPy arrays (``CorruptFileError`` naming the batch).

    Raises ``CorruptFileError`` for a wrong checksum or content, ``FileNotFoundError``
    for a missing file with ``download=False`` and ``ConnectionError`` when the
    source cannot be reached.
    """
    path = _fetch_all("cifar10", [_CIFAR10_ARCHIVE], _data_root(root), base_url, _CIFAR10_URLS, download)[
        _CIFAR10_ARCHIVE
    ]
    wanted = {f"{_CIFAR10_DIR}/{name}" for name in (*_CIFAR10_TRAIN, _CIFAR10_TEST)}
    batches = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            # One pass over the members: seeking backwards in a gzip stream would decompress it again.
            for member in tar:
                if member.name in wanted and member.isfile():
                    raw = tar.extractfile(member).read()
                    batches[member.name] = _cifar_batch(raw, f"{path}:{member.name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise CorruptFileError(
            f"{path} is not a readable tar.gz archive ({exc}). Delete it and call again to re-download it."
        ) from exc
    missing = sorted(wanted - batches.keys())
    if missing:
        raise CorruptFileError(
            f"{path} lacks {', '.join(missing)}; expected the batches {', '.join(sorted(wanted))}. "
            f"Delete it and call again to re-download it."
        )
    train = [batches[f"{_CIFAR10_DIR}/{name}"] for name in _CIFAR10_TRAIN]
    X_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([labels for _, labels in train])
    return (X_train, y_train), batches[f"{_CIFAR10_DIR}/{_CIFAR10_TEST}"]


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


# A one-hot row per label costs num_classes floats: beyond this many classes a label is
# almost surely an id or a value, not a class index, and the array would fill the memory.
_MAX_CLASSES = 1 << 24


def _first(values: np.ndarray, bad: np.ndarray) -> str:
    """``"inf at index 3"``: the first offending value and where it is, for a message."""
    i = int(np.flatnonzero(bad)[0])
    return f"{values[i].item()!r} at index {i}"


def one_hot(labels: ArrayLike, num_classes: int | None = None, dtype: DTypeLike = "float64") -> np.ndarray:
    """Class labels of shape (N,) -> one-hot rows of shape (N, num_classes).

    ``num_classes`` (a positive int) defaults to ``max(labels) + 1``. Labels must be
    whole numbers (ints, bools, or floats such as 3.0) in ``[0, num_classes)``; the
    result has dtype ``dtype`` (float64 by default). At most 2**24 (16,777,216)
    classes: a larger label is an id rather than a class index; map ids to indices
    first with ``np.unique(ids, return_inverse=True)``.
    """
    num_classes = _validate.integer("one_hot", "num_classes", num_classes, minimum=1, allow_none=True)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ShapeError(f"one_hot expects labels of shape (N,), got shape {labels.shape}")
    if labels.dtype.kind == "b":
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iuf":
        raise LabelError(f"one_hot expects integer class labels, got dtype {labels.dtype}; "
                         f"map other labels to indices with np.unique(labels, return_inverse=True)")
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)):
            raise LabelError(f"one_hot expects labels that are finite whole numbers, got "
                             f"{_first(labels, ~np.isfinite(labels))}")
        if not np.all(labels == np.round(labels)):
            raise LabelError(f"one_hot expects integer class labels (whole numbers), got "
                             f"{_first(labels, labels != np.round(labels))} in an array of dtype {labels.dtype}; "
                             f"for one-hot or probability rows use unhot() first")
    # Compared in the labels' own dtype: a cast to int64 first would wrap 1e20 or a large uint64 around.
    low, high = (labels.min().item(), labels.max().item()) if labels.size else (0, -1)
    if num_classes is None:
        if high >= _MAX_CLASSES:
            raise LabelError(f"one_hot got a label of {high:g}, which would make {high + 1:g} classes; at most "
                             f"{_MAX_CLASSES} (2**24) are allowed (the array would take "
                             f"{labels.size * (high + 1) * np.dtype(dtype).itemsize / 2**30:.3g} GiB). "
                             f"Labels must be class indices 0..K-1: map ids to them with "
                             f"np.unique(ids, return_inverse=True)")
        num_classes = int(high) + 1
    elif num_classes > _MAX_CLASSES:
        raise ValueError(f"one_hot: num_classes={num_classes} is more than the {_MAX_CLASSES} (2**24) allowed (the "
                         f"array would take {labels.size * num_classes * np.dtype(dtype).itemsize / 2**30:.3g} GiB)")
    if labels.size and (low < 0 or high >= num_classes):
        raise LabelError(
            f"one_hot got labels in [{low}, {high}]; expected labels in [0, {num_classes}) "
            f"for num_classes={num_classes}"
        )
    labels = labels.astype(np.int64)
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out


def unhot(onehot: ArrayLike) -> np.ndarray:
    """One-hot rows (or scores, or probabilities) of shape (N, K), K >= 1 -> int64 class labels (N,) by argmax."""
    onehot = np.asarray(onehot)
    if onehot.ndim != 2 or onehot.shape[1] == 0:
        raise ShapeError(f"unhot expects rows of shape (N, K) with K >= 1 classes, got shape {onehot.shape}")
    return np.argmax(onehot, axis=1).astype(np.int64)


def standardize(X_train: ArrayLike, *others: ArrayLike) -> tuple:
    """Shift and scale every feature to mean 0, std 1 using the training set's statistics.

    ``X_train`` has shape (N, ...) and each of ``others`` (M, ...) with the same
    trailing shape. Returns ``(X_train_std, *others_std, (mean, std))``, where
    ``mean`` and ``std`` are arrays of shape ``X_train.shape[1:]`` (0-d for a target
    ``y`` of shape (N,)); a constant feature has std 0, which is replaced by 1 so it
    becomes 0 instead of NaN. Floating inputs keep their dtype, integer and bool
    inputs (such as uint8 images) become float64; complex inputs are refused.

    >>> X_train, X_test, (mean, std) = standardize(X_train, X_test)
    """
    arrays = [np.asarray(X) for X in (X_train, *others)]
    for i, X in enumerate(arrays):
        if X.dtype.kind not in "biuf":
            raise TypeError(f"standardize: argument {i} has dtype {X.dtype}; expected real numbers (float, int, "
                            f"uint or bool). For complex data standardize the real and imaginary parts "
                            f"separately (X.real, X.imag)")
    X_train = arrays[0]
    if X_train.ndim < 1 or len(X_train) == 0:
        raise ShapeError(f"standardize needs at least one training row, got shape {X_train.shape}")
    dtype = X_train.dtype if X_train.dtype.kind == "f" else np.dtype(np.float64)
    mean = np.asarray(X_train.mean(axis=0, dtype=np.float64))
    std = np.asarray(X_train.std(axis=0, dtype=np.float64))
    std = np.where(std == 0, 1.0, std)
    mean, std = mean.astype(dtype), std.astype(dtype)
    out = []
    for i, X in enumerate(arrays):
        if X.shape[1:] != X_train.shape[1:]:
            raise ShapeError(
                f"standardize: argument {i} has shape {X.shape}; expected (M, {', '.join(map(str, X_train.shape[1:]))})"
                f" to match X_train of shape {X_train.shape}"
            )
        out.append(np.asarray((X - mean) / std).astype(dtype, copy=False))
    return (*out, (mean, std))


def _stratified_test_counts(counts: np.ndarray, n_test: int, rng: np.random.Generator) -> np.ndarray:
    """How many of each class's rows go to the test set: ``n_test`` in all, each class
    its share ``n_test * count / N`` rounded down, the rest one each to the classes with
    the largest fractions left (ties broken at random), as scikit-learn's
    ``_approximate_mode``; every class keeps at least one training row."""
    share = counts * (n_test / counts.sum())
    taken = np.floor(share).astype(np.int64)
    room = counts - 1 - taken
    left = n_test - int(taken.sum())
    # Largest fraction first, random among equal fractions; classes without room come last.
    order = np.lexsort((rng.random(len(counts)), -(share - taken), room <= 0))
    order = order[room[order] > 0]
    first = order[:left]
    taken[first] += 1
    left -= len(first)
    if left:  # only when classes of one sample (or full ones) cannot take their share
        room = counts - 1 - taken
        before = np.cumsum(room[order]) - room[order]
        taken[order] += np.clip(left - before, 0, room[order])
    return taken


def train_test_split(
    X: ArrayLike,
    y: ArrayLike,
    test_size: float = 0.25,
    seed: int | np.random.Generator | None = 0,
    stratify: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split ``X`` (N, ...) and ``y`` (N, ...) at random into ``X_train, X_test, y_train, y_test``.

    ``test_size`` is the fraction of rows that go to the test set, a number strictly
    between 0 and 1: the test set has ``ceil(test_size * N)`` rows, as in
    scikit-learn. The split is a permutation drawn from ``seed`` (an int >= 0 gives
    the same split every time; None draws from xpnet's global generator, see
    ``xpnet.seed``). With ``stratify``, ``y`` holds class labels (N,) or one-hot rows
    (N, K) and each class gives the test set its share of those rows, rounded so the
    total is still ``ceil(test_size * N)`` (scikit-learn's allocation), so both sets
    keep the class proportions; every class keeps at least one training row, so a
    class with one sample goes to train.
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim < 1 or y.ndim < 1 or len(X) != len(y):
        raise ShapeError(
            f"train_test_split got X of shape {X.shape} and y of shape {y.shape}; expected the same number "
            f"of rows (one label per sample)"
        )
    expected = "a fraction strictly between 0 and 1, such as 0.25"
    if isinstance(test_size, bool) or not isinstance(test_size, Real):
        raise TypeError(f"test_size must be {expected}; got {type(test_size).__name__} {test_size!r}")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be {expected}; got {test_size!r}")
    if not isinstance(seed, np.random.Generator):
        expected = "an int >= 0, a numpy.random.Generator or None"
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, Integral)):
            raise TypeError(f"train_test_split: seed must be {expected}; got {type(seed).__name__} {seed!r}")
        if seed is not None and seed < 0:
            raise ValueError(f"train_test_split: seed must be {expected}; got {seed!r}")
    n = len(X)
    n_test = math.ceil(test_size * n)
    if n_test >= n:
        raise ValueError(f"test_size={test_size} of {n} samples leaves an empty train set; "
                         f"use a smaller test_size or more samples")
    rng = generator(seed)
    if stratify:
        classes = unhot(y) if y.ndim == 2 else y
        if classes.ndim != 1:
            raise ShapeError(f"stratify needs labels of shape (N,) or one-hot rows (N, K), got y of shape {y.shape}")
        if classes.dtype.kind in "fc" and not np.all(classes == np.round(classes)):
            raise LabelError(f"stratify needs class labels, got y of dtype {classes.dtype} with values such as "
                             f"{_first(classes, classes != np.round(classes))}, which look continuous; "
                             f"pass stratify=False for a regression target")
        values, inverse, counts = np.unique(classes, return_inverse=True, return_counts=True)
        if n_test > n - len(values):
            every = " (every label is different: is y a continuous target?)" if len(values) == n else ""
            raise ValueError(
                f"test_size={test_size} of {n} samples asks for {n_test} test rows, but with stratify=True each "
                f"of the {len(values)} classes{every} keeps at least one training row, which leaves at most "
                f"{n - len(values)}; use a smaller test_size, or stratify=False"
            )
        taken = _stratified_test_counts(counts, n_test, rng)
        # Rows grouped by class, in random order within each class; the first `taken` of each group go to test.
        by_class = rng.permutation(n)
        by_class = by_class[np.argsort(inverse[by_class], kind="stable")]
        rank = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
        test_idx = rng.permutation(by_class[rank < np.repeat(taken, counts)])
        is_test = np.zeros(n, dtype=bool)
        is_test[test_idx] = True
        train_idx = rng.permutation(np.flatnonzero(~is_test))
    else:
        perm = rng.permutation(n)
        test_idx, train_idx = perm[:n_test], perm[n_test:]
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


def minibatches(
    n: int,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int | np.random.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[np.ndarray]:
    """Yield int64 index arrays that cover ``range(n)`` once, ``batch_size`` at a time.

    Every batch has ``batch_size`` indices except the last, which holds the
    remainder and is kept unless ``drop_last``. With ``shuffle`` the order is a
    permutation drawn from ``seed`` (None: xpnet's global generator, see
    ``xpnet.seed``); without it the indices run in order.

    >>> for idx in minibatches(len(X), 32, seed=epoch):
    ...     loss = train_step(X[idx], y[idx])
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"minibatches needs the number of samples n as an int >= 0, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    order = generator(seed).permutation(n) if shuffle else np.arange(n, dtype=np.int64)
    stop = n - n % batch_size if drop_last else n
    # A generator expression rather than a generator function, so bad arguments fail at the call, not at first use.
    return (order[start : start + batch_size] for start in range(0, stop, batch_size))
