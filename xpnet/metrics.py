"""Classification metrics, computed on the device and returned as Python numbers.

``y_true`` may be integer labels (N,) or one-hot (N, K), bool included (``y > 0.5``
is classes 0/1, ``y[:, None] == classes`` one-hot rows); ``y_pred`` may be labels
(N,), scores/probabilities (N, K) (argmax is taken) or a single output column
(N, 1) / (N,) of probabilities or logits for binary problems (see ``threshold``).

Float labels are labels when every value is a whole number (``[0., 1., 2.]``, as
pandas and many loaders produce); a single column of ``y_pred`` with fractional (or
negative) values is a probability or logit and is thresholded. ``y_true`` with
fractional values is an error: it has no class to compare with.

Independent binary outputs (one sigmoid per output: multi-label targets (N, M) of
0/1) have no single class to compare; :func:`binary_accuracy` thresholds every output
instead, and is what :func:`xpnet.fit` reports as "accuracy" for
:class:`~xpnet.losses.BinaryCrossEntropy`.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

from array_api_compat import device

from . import _validate
from . import backend as _backend
from . import functional as F
from .backend import array_namespace
from .errors import LabelError, ShapeError

__all__ = ["accuracy", "binary_accuracy", "error", "top_k_accuracy", "confusion_matrix", "get"]


def _labels(y: Any, threshold: float = 0.5) -> Any:
    """Integer labels (N,) from labels, one-hot or scores (N, K) (argmax), or one
    column of probabilities/logits (N,) or (N, 1) (compared with ``threshold``)."""
    xp = array_namespace(y)
    if _backend.dtype_name(y.dtype) == "bool":
        # one-hot rows from ``==`` or labels from ``>``; argmax of bool is not standard
        y = xp.astype(y, xp.int32)
    if y.ndim == 2 and y.shape[1] > 1:
        return xp.argmax(y, axis=1)
    if y.ndim == 2:
        y = y[:, 0]
    if _backend.dtype_name(y.dtype) in _backend.FLOAT_DTYPES:
        return xp.astype(y > threshold, xp.int64)
    return xp.astype(y, xp.int64)


def _pair(owner: str, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    device = _device_for(y_pred, y_true)
    y_true = _backend.asarray(_validate.as_host(owner, "y_true", y_true, labels=True), device=device)
    y_pred = _backend.asarray(_validate.as_host(owner, "y_pred", y_pred, labels=True), device=device)
    for name, a in (("y_true", y_true), ("y_pred", y_pred)):
        if a.ndim not in (1, 2):
            raise ShapeError(f"{owner}: {name} must have shape (N,) or (N, K), got {tuple(a.shape)}")
    if y_true.shape[0] != y_pred.shape[0]:
        raise ShapeError(f"metric got {y_true.shape[0]} true labels but {y_pred.shape[0]} predictions")
    return _float_labels(owner, "y_true", y_true, strict=True), _float_labels(owner, "y_pred", y_pred, strict=False)


def _float_labels(owner: str, name: str, y: Any, *, strict: bool) -> Any:
    """Integer labels for a float column whose values are all whole numbers >= 0 (one
    host read). Otherwise ``y`` unchanged (a column of probabilities or logits), or,
    when ``strict`` (true labels), an error."""
    if _backend.dtype_name(y.dtype) not in _backend.FLOAT_DTYPES or (y.ndim == 2 and y.shape[1] > 1):
        return y
    xp = array_namespace(y)
    column = y if y.ndim == 1 else y[:, 0]
    whole = (column == xp.floor(column)) & (column >= 0.0)
    if bool(xp.all(whole)):
        return xp.astype(column, xp.int64)
    if strict:
        i = int(xp.argmin(xp.astype(whole, xp.int32)))
        raise LabelError(f"{owner}: {name} are class labels and must be whole numbers >= 0; "
                         f"element {i} is {float(column[i])}. Cast labels with y.astype(int)")
    return y


def _device_for(*arrays: Any) -> Any:
    for a in arrays:
        try:
            return _backend.device_of(a)
        except TypeError:
            continue
    return None


def correct_count(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    """Number of correct predictions as a 0-d float array on the device (no host sync).

    For a single output column, ``threshold`` splits it (0.5 for probabilities, 0.0
    for logits).
    """
    xp = array_namespace(y_true, y_pred)
    hits = _labels(y_pred, threshold) == _labels(y_true)
    return xp.sum(xp.astype(hits, xp.float64 if _backend.dtype_name(y_pred.dtype) == "float64" else xp.float32))


def accuracy(y_true: Any, y_pred: Any, *, threshold: float = 0.5) -> float:
    """Fraction of correct predictions, in [0, 1].

    Shapes: y_true (N,) labels or (N, K) one-hot; y_pred (N,) labels, (N, K) scores,
    or (N, 1) binary probabilities (``threshold`` 0.5; use 0.0 for logits). Rows of
    (N, K) are one class per sample (argmax); for multi-label targets use
    :func:`binary_accuracy`.
    """
    _validate.real("accuracy", "threshold", threshold)
    y_true, y_pred = _pair("accuracy", y_true, y_pred)
    n = y_true.shape[0]
    return float(correct_count(y_true, y_pred, threshold)) / n if n else 0.0


def binary_correct_count(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    """Right decisions of independent binary outputs, as a 0-d float array on the
    device (no host sync): each sample adds the fraction of its M outputs that are
    right, so the count over N is the mean over all N*M outputs.

    Output j of sample i is right when ``y_pred[i, j] > threshold`` (0.5 for
    probabilities, 0.0 for logits) agrees with ``y_true[i, j] > 0.5``; integer or
    boolean arrays are decisions already (nonzero is 1). For M = 1 this is
    :func:`correct_count`.

    Shapes: y_pred (N, M) or (N,); y_true the same number of values per sample ((N,)
    with (N, 1) is fine).
    """
    xp = array_namespace(y_true, y_pred)
    n, m = y_pred.shape[0], math.prod(y_pred.shape[1:])
    right = _decisions(xp.reshape(y_pred, (n, m)), threshold) == _decisions(xp.reshape(y_true, (n, m)), 0.5)
    dtype = xp.float64 if _backend.dtype_name(y_pred.dtype) == "float64" else xp.float32
    return xp.sum(xp.astype(right, dtype)) / float(m)


def _decisions(y: Any, threshold: float) -> Any:
    xp = array_namespace(y)
    if _backend.dtype_name(y.dtype) in _backend.FLOAT_DTYPES:
        return y > threshold
    return xp.astype(y, xp.bool)


def binary_accuracy(y_true: Any, y_pred: Any, *, threshold: float = 0.5) -> float:
    """Fraction of independent binary outputs decided right, over all N*M of them, in
    [0, 1] (Keras' ``binary_accuracy``): the "accuracy" :func:`xpnet.fit` reports for
    :class:`~xpnet.losses.BinaryCrossEntropy`. A multi-label model that gets every
    label right scores 1.0, where :func:`accuracy` would compare argmaxes.

    Shapes: y_true (N, M) of 0/1 (or (N,) for one output); y_pred the same shape ((N, 1)
    for y_true (N,)), probabilities (``threshold`` 0.5; use 0.0 for logits) or 0/1.
    """
    _validate.real("binary_accuracy", "threshold", threshold)
    on = _device_for(y_pred, y_true)
    y_true, y_pred = (_backend.asarray(_validate.as_host("binary_accuracy", name, a, labels=True), device=on)
                      for name, a in (("y_true", y_true), ("y_pred", y_pred)))
    shapes = [a.shape if a.ndim == 2 else (*a.shape, 1) for a in (y_true, y_pred)]
    if y_true.ndim not in (1, 2) or y_pred.ndim not in (1, 2) or tuple(shapes[0]) != tuple(shapes[1]):
        raise ShapeError(f"binary_accuracy: y_true of shape {tuple(y_true.shape)} does not match y_pred of shape "
                         f"{tuple(y_pred.shape)}; pass one 0/1 target per output, shape (N, M) for M outputs "
                         f"((N,) is fine for one output)")
    n = y_pred.shape[0]
    return float(binary_correct_count(y_true, y_pred, threshold)) / n if n else 0.0


def error(y_true: Any, y_pred: Any, *, threshold: float = 0.5) -> float:
    """Classification error, ``1 - accuracy``. Shapes as :func:`accuracy`."""
    return 1.0 - accuracy(y_true, y_pred, threshold=threshold)


def top_k_accuracy(y_true: Any, scores: Any, k: int = 5) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores.

    Shapes: y_true (N,) labels or (N, K) one-hot; scores (N, K) with K >= k.
    """
    k = _validate.integer("top_k_accuracy", "k", k, minimum=1)
    y_true, scores = _pair("top_k_accuracy", y_true, scores)
    if scores.ndim != 2 or scores.shape[1] < k:
        raise ShapeError(f"top_k_accuracy(k={k}) needs scores of shape (N, K>={k}), got {tuple(scores.shape)}")
    return float(top_k_count(y_true, scores, k)) / scores.shape[0] if scores.shape[0] else 0.0


def top_k_count(y_true: Any, scores: Any, k: int) -> Any:
    """Number of samples whose true class is in the top ``k``, as a 0-d device array.

    Ties break as argmax breaks them, the first index first: true class ``c`` ranks
    ``#{j: s_j > s_c} + #{j < c: s_j == s_c}`` and is in the top k when that rank is
    below k. So top-1 is :func:`accuracy`, and equal scores (an untrained or dead
    network) put 1 sample in K in the top 1, not all of them. A NaN score ranks above
    every number, as in argmax; a sample whose true score is NaN is never a hit. No
    sort (backends do not order ties in ``argsort`` alike); O(N*K) memory.
    """
    xp = array_namespace(y_true, scores)
    labels = _labels(y_true)[:, None]
    classes = xp.arange(scores.shape[1], dtype=labels.dtype, device=device(scores))[None, :]
    is_true = classes == labels
    # where, not a product with a one-hot row: 0 * inf and 0 * NaN elsewhere are NaN
    true_score = xp.sum(xp.where(is_true, scores, xp.zeros_like(scores)), axis=1, keepdims=True)
    ahead = ((scores > true_score) | ((scores == true_score) & (classes < labels))
             | (xp.isnan(scores) & xp.logical_not(is_true)))
    rank = xp.sum(xp.astype(ahead, scores.dtype), axis=1)
    hit = (rank < k) & xp.logical_not(xp.isnan(true_score[:, 0]))
    return xp.sum(xp.astype(hit, scores.dtype))


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> list[list[int]]:
    """Counts ``C[i][j]`` of samples of true class ``i`` predicted as ``j``.

    Computed on the device as ``onehot(true).T @ onehot(pred)``; returned as a list of
    lists of ints. Shapes: as :func:`accuracy`; K = ``num_classes`` (default: inferred
    from the scores' width or the largest label + 1).
    """
    num_classes = _validate.integer("confusion_matrix", "num_classes", num_classes, minimum=1, allow_none=True)
    y_true, y_pred = _pair("confusion_matrix", y_true, y_pred)
    xp = array_namespace(y_true, y_pred)
    true, pred = _labels(y_true), _labels(y_pred)
    if true.shape[0] == 0:
        return [[0] * (num_classes or 0) for _ in range(num_classes or 0)]
    low = int(xp.min(xp.minimum(true, pred)))
    high = int(xp.max(xp.maximum(true, pred)))
    if num_classes is None:
        widths = [a.shape[1] for a in (y_true, y_pred) if a.ndim == 2 and a.shape[1] > 1]
        num_classes = max(widths) if widths else high + 1
    if low < 0 or high >= num_classes:
        raise LabelError(f"confusion_matrix: labels must be in [0, {num_classes - 1}] for {num_classes} classes, "
                         f"got labels in [{low}, {high}]; pass num_classes={high + 1} or fix the labels")
    a = F.one_hot(true, num_classes, dtype="float64")
    b = F.one_hot(pred, num_classes, dtype="float64")
    counts = _backend.to_numpy(xp.matmul(xp.matrix_transpose(a), b))
    return [[int(round(v)) for v in row] for row in counts]


_TOP_K = re.compile(r"top_?(\d+)(_accuracy)?")


def get(name: str, *, task: str = "multiclass") -> tuple[str, Any]:
    """Resolve a metric name for :func:`xpnet.fit` into ``(name, count_fn)`` where
    ``count_fn(y_true, scores, threshold) -> 0-d device array`` counts successes.
    Names: ``"accuracy"``, ``"error"``, ``"top5_accuracy"`` (any k).

    ``task`` is the loss's :attr:`~xpnet.losses.Loss.task`. ``"multiclass"``: one class
    per sample, so "accuracy" and "error" compare argmaxes (:func:`correct_count`).
    ``"binary"``: independent sigmoid outputs, so they threshold every output
    (:func:`binary_correct_count`); one-hot (N, K) targets of a softmax stay argmax
    because their loss says "multiclass", whatever the values look like."""
    if not isinstance(name, str):
        raise TypeError(f"a metric must be named by a string such as 'accuracy', got {type(name).__name__} {name!r}")
    if task not in ("multiclass", "binary"):
        raise ValueError(f"unknown task {task!r} for metric {name!r}; a classification Loss sets task = "
                         f"'multiclass' (one class per sample) or 'binary' (each output a 0/1 decision)")
    count = binary_correct_count if task == "binary" else correct_count
    if name in ("accuracy", "acc"):
        return "accuracy", count
    if name == "error":
        return "error", count
    match = _TOP_K.fullmatch(name)
    if match:
        k = int(match.group(1))
        return f"top{k}_accuracy", _top_k_counter(k)
    raise ValueError(f"unknown metric {name!r}; use 'accuracy', 'error' or 'top5_accuracy'")


@functools.cache
def _top_k_counter(k: int) -> Any:
    """One counting function per k, so that a compiled training step keyed on the
    metric functions is reused across fit calls."""
    return lambda y, s, threshold: top_k_count(y, s, k)
