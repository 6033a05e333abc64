"""Losses with hand-written backward passes.

``loss.forward(pred, target)`` returns a 0-d array on the device (no host sync per
step; ``float(loss)`` works when you want the number). ``loss.backward()`` returns
dL/d(pred), already averaged over the batch. The formulas live in
:mod:`xpnet.functional`.

``forward`` validates targets: shapes always (free), and their values (one host
read) unless ``validate=False``: integer labels' range, binary cross-entropy's
float targets in [0, 1], softmax cross-entropy's (N, K) targets being one-hot rows
or class probabilities. :func:`xpnet.fit` validates the whole target set once
before training and then skips the per-step check.

Sample weights: ``forward(pred, target, sample_weight=w)`` with ``w`` of shape (N,)
on pred's device gives the weighted mean ``sum(w_i l_i) / sum(w_i)`` of the
per-sample losses ``l_i`` (the plain mean when every ``w_i`` is equal), and
``backward()`` its gradient: each row of the unweighted gradient times
``N w_i / sum(w)``. This is scikit-learn's ``sample_weight`` convention.
"""

from __future__ import annotations

import functools
from typing import Any

from . import _validate
from . import functional as F
from .backend import array_namespace, check_same_device, dtype_name, to_numpy
from .errors import LabelError, NonFiniteLossError, ShapeError

__all__ = ["Loss", "SoftmaxCrossEntropy", "BinaryCrossEntropy", "MeanSquaredError", "PoissonLoss", "get",
           "numeric_target"]


def _is_integer(array: Any) -> bool:
    return dtype_name(array.dtype).startswith(("int", "uint"))


def numeric_target(target: Any, dtype: Any = "float32") -> Any:
    """Boolean targets as the numbers they stand for; any other dtype unchanged.

    A NumPy comparison gives bool arrays, so ``y > 0.5`` (labels) and
    ``y[:, None] == np.arange(K)`` (one-hot rows) are ordinary targets, as in
    scikit-learn, where bool ``y`` has the classes False and True (0 and 1).

    Shapes: bool (N,) -> int64 class labels (N,), False = 0 and True = 1 (binary labels
    for every loss); bool (N, ...) -> 0/1 of the same shape in ``dtype`` (one-hot rows,
    multi-label or per-output targets).
    """
    if dtype_name(target.dtype) != "bool":
        return target
    xp = array_namespace(target)
    if target.ndim == 1:
        return xp.astype(target, xp.int64)
    return xp.astype(target, getattr(xp, dtype_name(dtype)))


class Loss:
    """Base class. Subclasses implement ``_target`` (shape checks and conversion) and
    ``_value`` / ``_grad`` from :mod:`xpnet.functional`.

    Args:
        check_finite: raise :class:`~xpnet.errors.NonFiniteLossError` when the loss is
            NaN or infinite (costs one host read per call).
        validate: check the targets' values on every call (one host read).
    """

    #: What the targets are, which decides the metrics :func:`xpnet.fit` and
    #: :func:`xpnet.evaluate` report. ``"multiclass"``: one class per sample, and
    #: "accuracy" compares argmaxes. ``"binary"``: every output is its own 0/1 decision
    #: (binary or multi-label), and "accuracy" thresholds each output. ``None`` (the
    #: default, and MeanSquaredError's and PoissonLoss's): a regression loss, with no
    #: default metric, and "accuracy" is refused. A classification loss of your own
    #: sets it on its class.
    task: str | None = None

    def __init__(self, *, check_finite: bool = False, validate: bool = True):
        self.check_finite = _validate.boolean(type(self).__name__, "check_finite", check_finite)
        self.validate = _validate.boolean(type(self).__name__, "validate", validate)
        self._cache: tuple[Any, Any] | None = None
        self._row_scale: Any = None

    def __call__(self, pred: Any, target: Any, sample_weight: Any = None) -> Any:
        return self.forward(pred, target, sample_weight=sample_weight)

    def forward(self, pred: Any, target: Any, sample_weight: Any = None) -> Any:
        """Loss of ``pred`` against ``target`` as a 0-d array on pred's device:
        the batch mean, or with ``sample_weight`` (N,) the weighted mean."""
        name = type(self).__name__
        self._row_scale = None
        check_same_device(name, {"prediction": pred, "target": target})
        target = numeric_target(target, pred.dtype)
        if pred.ndim < 1 or pred.shape[0] != target.shape[0]:
            raise ShapeError(
                f"{name} got predictions of shape {tuple(pred.shape)} and targets of shape "
                f"{tuple(target.shape)}; both need the same batch size N as the first axis"
            )
        if self.validate:
            self.validate_target(pred.shape, target)
            self.validate_prediction(pred)
        t = self._target(pred, target)
        self._cache = (pred, t)
        if sample_weight is None:
            value = self._value(pred, t)
        else:
            value = self._weighted_value(pred, t, sample_weight)
        if self.check_finite and not bool(array_namespace(value).isfinite(value)):
            raise NonFiniteLossError(f"{name} is {float(value)}; check the learning rate and the input data")
        return value

    def backward(self) -> Any:
        """dL/d(pred) for the last ``forward``, averaged over the batch; pred's shape."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        grad = self._grad(*self._cache)
        if self._row_scale is not None:
            grad = grad * self._row_scale
        return grad

    def _weighted_value(self, pred: Any, target: Any, sample_weight: Any) -> Any:
        name = type(self).__name__
        xp = check_same_device(name, {"prediction": pred, "sample_weight": sample_weight})
        n = pred.shape[0]
        if tuple(sample_weight.shape) != (n,):
            raise ShapeError(
                f"{name} got sample_weight of shape {tuple(sample_weight.shape)} for a batch of {n}; "
                f"pass one weight per sample, shape ({n},)"
            )
        w = xp.astype(sample_weight, pred.dtype)
        total = xp.sum(w)
        # all weights zero (or an empty batch): a loss and gradient of 0, not 0/0 = nan
        total = xp.where(total > 0, total, xp.ones_like(total))
        # The unweighted gradient is the per-sample gradient divided by N; rescaling
        # each row by N w_i / sum(w) turns it into the weighted mean's gradient.
        scale = w * (float(n) / total)
        self._row_scale = xp.reshape(scale, (n,) + (1,) * (pred.ndim - 1))
        return xp.sum(w * self._per_sample(pred, target)) / total

    def _per_sample(self, pred: Any, target: Any) -> Any:
        """Per-sample losses (N,) whose mean is ``_value``; needed for sample weights."""
        raise NotImplementedError(f"{type(self).__name__} does not support sample_weight")

    def validate_target(self, pred_shape: tuple[int, ...], target: Any) -> None:
        """Raise :class:`~xpnet.errors.LabelError` if ``target`` cannot go with
        predictions of ``pred_shape`` (wrong width, labels out of range, values the
        loss is not defined for). Reads the target's values back to the host once.
        Bool targets are checked as :func:`numeric_target` turns them into numbers."""

    def validate_prediction(self, pred: Any) -> None:
        """Raise ``ValueError`` if ``pred`` cannot be this loss's input (probabilities
        outside [0, 1], say). :func:`xpnet.fit` and :func:`xpnet.evaluate` call it once
        on the model's outputs for the first rows; ``forward`` on every call while
        ``validate`` is on. The default accepts anything."""

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this loss (used when saving)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- subclass hooks ------------------------------------------------------------
    def _target(self, pred: Any, target: Any) -> Any:
        raise NotImplementedError

    def _value(self, pred: Any, target: Any) -> Any:
        raise NotImplementedError

    def _grad(self, pred: Any, target: Any) -> Any:
        raise NotImplementedError


def _first_bad_row(name: str, target: Any, bad_rows: Any, rule: str) -> None:
    """Raise a LabelError quoting the first row where ``bad_rows`` (N,) is True; one
    host read when every row is fine."""
    xp = array_namespace(bad_rows)
    if target.shape[0] == 0 or not bool(xp.any(bad_rows)):
        return
    i = int(xp.argmax(xp.astype(bad_rows, xp.int32)))
    row = to_numpy(target[i, ...]).tolist()
    count = int(xp.sum(xp.astype(bad_rows, xp.int64)))
    raise LabelError(f"{name} {rule}; row {i} of the targets is {row} ({count} such row(s))")


def _check_label_range(name: str, labels: Any, k: int, what: str) -> None:
    xp = array_namespace(labels)
    if labels.shape[0] == 0:
        return
    low, high = int(xp.min(labels)), int(xp.max(labels))
    if low < 0 or high >= k:
        raise LabelError(f"{name} got labels in [{low}, {high}] but {what}; labels must be in [0, {k - 1}]")


class SoftmaxCrossEntropy(Loss):
    """Softmax followed by cross-entropy, on logits.

    Shapes: logits (N, K); target either integer class labels (N,) or one-hot /
    class probabilities (N, K) -> 0-d loss. ``backward()`` returns
    ``(softmax(logits) - onehot) / N`` of shape (N, K).
    """

    task = "multiclass"

    def validate_target(self, pred_shape, target):
        name = type(self).__name__
        target = numeric_target(target)
        if len(pred_shape) != 2:
            raise ShapeError(f"{name} expects logits of shape (N, K), got {tuple(pred_shape)}")
        k = pred_shape[1]
        if _is_integer(target):
            if target.ndim != 1:
                hint = (f"; one-hot rows are targets of shape (N, {k}) as floats: y.astype(float)"
                        if target.ndim == 2 and target.shape[1] == k else "")
                raise ShapeError(f"{name} expects integer labels of shape (N,), got {tuple(target.shape)}{hint}")
            _check_label_range(name, target, k, f"the model has {k} outputs")
            return
        if target.ndim == 1:
            raise LabelError(
                # not the dtype's name: fit has already cast float labels to the model's dtype
                f"{name}: class labels must be integers 0..{k - 1}, got floating-point values of "
                f"shape {tuple(target.shape)}; cast them with y.astype(int) (NumPy) or "
                f"xpnet.asarray(y, dtype='int64'), or pass one-hot targets of shape (N, {k})"
            )
        if tuple(target.shape) != tuple(pred_shape):
            raise LabelError(
                f"{name} got one-hot targets of shape {tuple(target.shape)} for logits of shape "
                f"{tuple(pred_shape)}; the target width must equal the number of classes {k}"
            )
        xp = array_namespace(target)
        # Soft labels (label smoothing, mixup) are distributions too; the tolerance
        # covers a float32 sum of K float64-made probabilities.
        tol = max(float(xp.finfo(target.dtype).eps) ** 0.5, 1e-12)
        in_range = xp.all((target >= 0.0) & (target <= 1.0), axis=1)
        sums_to_one = xp.abs(xp.sum(target, axis=1) - 1.0) <= tol
        _first_bad_row(name, target, xp.logical_not(in_range & sums_to_one),
                       "targets of shape (N, K) must be one-hot rows or class probabilities (each in [0, 1], "
                       "summing to 1); for integer labels pass y of shape (N,)")

    def _target(self, pred, target):
        if _is_integer(target):
            return F.one_hot(target, pred.shape[1], dtype=pred.dtype)
        if tuple(target.shape) != tuple(pred.shape):
            self.validate_target(pred.shape, target)
        return array_namespace(target).astype(target, pred.dtype)

    def _value(self, pred, target):
        self._log_probs = F.log_softmax(pred)
        return F.nll_loss(self._log_probs, target)

    def _grad(self, pred, target):
        return F.softmax_cross_entropy_backward(pred, target, log_probs=self._log_probs)

    def _per_sample(self, pred, target):
        self._log_probs = F.log_softmax(pred)
        xp = array_namespace(pred)
        log_probs = xp.where(target == 0, xp.zeros_like(self._log_probs), self._log_probs)  # 0 log 0 = 0
        return -xp.sum(target * log_probs, axis=1)


def _check_target_shape(name: str, pred_shape: tuple[int, ...], target_shape: tuple[int, ...],
                        need: str = "they must match") -> None:
    """Targets for elementwise losses have the predictions' shape, or (N,) for (N, 1)
    predictions. Anything else is an error, never a silent (N, N) broadcast; fit
    checks the whole set once, forward every batch."""
    pred_shape, target_shape = tuple(pred_shape), tuple(target_shape)
    if target_shape == pred_shape or (len(pred_shape) == 2 and pred_shape[1] == 1 and len(target_shape) == 1):
        return
    raise ShapeError(f"{name}: the model gives outputs of shape {pred_shape} but the targets have shape "
                     f"{target_shape}; {need} (targets (N,) are accepted for outputs (N, 1))")


def _same_shape_target(name: str, pred: Any, target: Any) -> Any:
    """The targets as an array of pred's shape and dtype (see :func:`_check_target_shape`)."""
    _check_target_shape(name, pred.shape, target.shape)
    xp = array_namespace(target)
    if tuple(target.shape) != tuple(pred.shape):
        target = xp.reshape(target, (-1, 1))
    return xp.astype(target, pred.dtype)


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy, summed over outputs per sample, averaged over the batch.

    Args:
        from_logits: ``False`` (default): ``pred`` are probabilities in [0, 1], clipped
            by the dtype's eps so exact 0s and 1s give finite values. ``True``: ``pred``
            are logits and the sigmoid is folded in (stabler; prefer it).

    Shapes: pred (N, M) or (N,); target the same shape of 0/1 (or (N,) for (N, 1)
    pred) -> 0-d loss; ``backward()`` has pred's shape.
    """

    task = "binary"

    def __init__(self, from_logits: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.from_logits = _validate.boolean("BinaryCrossEntropy", "from_logits", from_logits)

    def validate_target(self, pred_shape, target):
        name = type(self).__name__
        target = numeric_target(target)
        _check_target_shape(name, pred_shape, target.shape, "binary cross-entropy needs one 0/1 target per output")
        if _is_integer(target):
            _check_label_range(name, target, 2, "binary cross-entropy takes 0/1 labels")
            return
        xp = array_namespace(target)
        inside = (target >= 0.0) & (target <= 1.0)  # False for NaN too
        rows = inside if inside.ndim == 1 else xp.all(xp.reshape(inside, (inside.shape[0], -1)), axis=1)
        _first_bad_row(name, target, xp.logical_not(rows),
                       "targets must be probabilities in [0, 1] (0/1 labels or soft targets)")

    def validate_prediction(self, pred):
        """Probabilities in [0, 1] unless ``from_logits``: a model without a final
        Sigmoid would otherwise train on silently clipped outputs."""
        if self.from_logits or pred.shape[0] == 0:
            return
        xp = array_namespace(pred)
        low, high = to_numpy(xp.stack([xp.min(pred), xp.max(pred)])).tolist()
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"BinaryCrossEntropy expects probabilities in [0, 1], but the predictions range over "
                f"[{low:.4g}, {high:.4g}]: end the model with nn.Sigmoid(), or use "
                f"BinaryCrossEntropy(from_logits=True) (\"bce_logits\") on raw outputs, which is also stabler"
            )

    def _target(self, pred, target):
        return _same_shape_target(type(self).__name__, pred, target)

    def _value(self, pred, target):
        if self.from_logits:
            return F.binary_cross_entropy_with_logits(pred, target)
        return F.binary_cross_entropy(pred, target)

    def _grad(self, pred, target):
        if self.from_logits:
            return F.binary_cross_entropy_with_logits_backward(pred, target)
        return F.binary_cross_entropy_backward(pred, target)

    def _per_sample(self, pred, target):
        xp = array_namespace(pred, target)
        if self.from_logits:
            z = pred
            per_elem = xp.maximum(z, xp.zeros_like(z)) - z * target + xp.log1p(xp.exp(-xp.abs(z)))
        else:
            p = F.clip_probabilities(pred)
            per_elem = -(target * xp.log(p) + (1.0 - target) * xp.log(1.0 - p))
        return _sum_per_sample(xp, per_elem)

    def get_config(self):
        return {"from_logits": self.from_logits}

    def __repr__(self) -> str:
        return f"BinaryCrossEntropy(from_logits={self.from_logits})"


class MeanSquaredError(Loss):
    """Half the sum of squared errors per sample, averaged over the batch:
    ``sum((pred - target)**2) / (2N)``, as the classic ``LinearOutput`` layer, so that
    ``backward()`` is exactly ``(pred - target) / N``. (PyTorch's ``MSELoss`` is the
    plain mean over all elements: ``2 / M`` times this for M outputs.)

    Shapes: pred (N, M) or (N,); target the same shape (or (N,) for (N, 1)) -> 0-d.
    """

    def _target(self, pred, target):
        return _same_shape_target(type(self).__name__, pred, target)

    def _value(self, pred, target):
        return F.mean_squared_error(pred, target)

    def _grad(self, pred, target):
        return F.mean_squared_error_backward(pred, target)

    def _per_sample(self, pred, target):
        xp = array_namespace(pred, target)
        diff = pred - target
        return 0.5 * _sum_per_sample(xp, diff * diff)


def _sum_per_sample(xp: Any, per_elem: Any) -> Any:
    """(N, ...) -> (N,): the sum over every axis but the batch axis."""
    if per_elem.ndim == 1:
        return per_elem
    return xp.sum(xp.reshape(per_elem, (per_elem.shape[0], -1)), axis=1)


class PoissonLoss(Loss):
    """Half the Poisson deviance of the rate ``exp(pred)``, on log-rates.

    Per sample and output: ``exp(z) - t z + t log(t) - t`` (with ``0 log 0 = 0``),
    which is 0 where ``exp(z) == t``; summed over outputs, averaged over the batch.
    ``backward()`` is ``(exp(z) - t) / N``. The ``t log(t) - t`` terms do not depend
    on ``z``: scikit-learn's ``MLPRegressor(loss="poisson")`` reports the same value.
    Targets are counts or rates, ``t >= 0``.

    Shapes: pred (log-rates) (N, M) or (N,); target the same shape (or (N,) for
    (N, 1)) -> 0-d loss.
    """

    def validate_target(self, pred_shape, target):
        target = numeric_target(target)
        xp = array_namespace(target)
        valid = target >= 0  # False for NaN too
        rows = valid if valid.ndim == 1 else xp.all(xp.reshape(valid, (valid.shape[0], -1)), axis=1)
        _first_bad_row(type(self).__name__, target, xp.logical_not(rows),
                       "targets must be counts or rates >= 0 (the Poisson deviance is undefined below 0)")

    def _target(self, pred, target):
        return _same_shape_target(type(self).__name__, pred, target)

    def _per_element(self, pred, target):
        xp = array_namespace(pred, target)
        positive = target > 0.0
        safe = xp.where(positive, target, xp.ones_like(target))
        t_log_t = xp.where(positive, target * xp.log(safe), xp.zeros_like(target))
        return xp.exp(pred) - target * pred + t_log_t - target

    def _per_sample(self, pred, target):
        return _sum_per_sample(array_namespace(pred), self._per_element(pred, target))

    def _value(self, pred, target):
        xp = array_namespace(pred, target)
        return xp.sum(self._per_element(pred, target)) / float(max(pred.shape[0], 1))

    def _grad(self, pred, target):
        xp = array_namespace(pred, target)
        return (xp.exp(pred) - target) / float(max(pred.shape[0], 1))


_BY_NAME = {
    "softmax_cross_entropy": SoftmaxCrossEntropy,
    "cross_entropy": SoftmaxCrossEntropy,
    "binary_cross_entropy": BinaryCrossEntropy,
    "bce": BinaryCrossEntropy,
    "bce_logits": functools.partial(BinaryCrossEntropy, from_logits=True),
    "binary_cross_entropy_with_logits": functools.partial(BinaryCrossEntropy, from_logits=True),
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "poisson": PoissonLoss,
}


def get(loss: str | Loss) -> Loss:
    """A Loss instance from an instance or a name (``"cross_entropy"``, ``"bce"``, ``"bce_logits"``
    (BinaryCrossEntropy on logits), ``"mse"``, ``"poisson"``)."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in _BY_NAME:
        return _BY_NAME[loss]()
    if isinstance(loss, type) and issubclass(loss, Loss):
        raise TypeError(f"loss must be a Loss instance or a name; got the class {loss.__name__}: "
                        f"call it, loss={loss.__name__}()")
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a Loss instance or a name ({', '.join(_BY_NAME)}), "
                        f"got {type(loss).__name__}; the call is fit(model, loss, X, y, ...)")
    raise ValueError(f"unknown loss {loss!r}; use a Loss instance or one of {', '.join(_BY_NAME)}")
