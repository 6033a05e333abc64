"""Numerically stable building blocks, written once against the Array API standard.

Every function takes its namespace from its inputs, so it runs unchanged on NumPy,
CuPy, JAX, PyTorch and array-api-strict, and keeps the input's dtype and device.
Forward functions come with the ``*_backward`` function that the layer classes in
:mod:`xpnet.nn` and :mod:`xpnet.losses` call, so each formula exists once.

Shapes: ``N`` is the batch size, ``D`` input features, ``M`` output features,
``K`` classes; ``...`` means any leading shape. The losses take targets in the
predictions' dtype, or bool (one-hot rows from ``y[:, None] == classes``, 0/1 from
``y > 0.5``), which counts as 0/1 in the predictions' dtype.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import device

from .backend import array_namespace, default_dtype, dtype_name
from .errors import ShapeError

__all__ = [
    "linear",
    "linear_backward",
    "linear_backward_input",
    "linear_backward_params",
    "relu",
    "relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "tanh",
    "tanh_backward",
    "logsumexp",
    "softmax",
    "softmax_backward",
    "log_softmax",
    "one_hot",
    "clip_probabilities",
    "nll_loss",
    "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
    "cross_entropy",
    "binary_cross_entropy",
    "binary_cross_entropy_backward",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_backward",
    "mean_squared_error",
    "mean_squared_error_backward",
]

Array = Any


# ------------------------------------------------------------------------- linear
def linear(x: Array, W: Array, b: Array | None = None) -> Array:
    """Affine map ``x @ W + b``.

    Shapes: x (N, D), W (D, M), b (M,) -> (N, M).
    """
    xp = array_namespace(x, W)
    out = xp.matmul(x, W)
    if b is not None:
        # `out` is our own fresh array: adding in place saves an allocation; on JAX,
        # whose arrays are immutable, `+=` simply rebinds the name.
        out += b
    return out


def linear_backward(grad_out: Array, x: Array, W: Array) -> tuple[Array, Array, Array]:
    """Gradients of :func:`linear`.

    Shapes: grad_out (N, M), x (N, D), W (D, M) -> dx (N, D), dW (D, M), db (M,).
    """
    dW, db = linear_backward_params(grad_out, x)
    return linear_backward_input(grad_out, W), dW, db


def linear_backward_input(grad_out: Array, W: Array) -> Array:
    """dx of :func:`linear`: ``grad_out @ W.T``. Shapes: (N, M), (D, M) -> (N, D)."""
    xp = array_namespace(grad_out, W)
    return xp.matmul(grad_out, xp.matrix_transpose(W))


def linear_backward_params(grad_out: Array, x: Array) -> tuple[Array, Array]:
    """dW and db of :func:`linear`: ``x.T @ grad_out`` and the column sums of grad_out.

    Shapes: grad_out (N, M), x (N, D) -> dW (D, M), db (M,).
    """
    xp = array_namespace(grad_out, x)
    return xp.matmul(xp.matrix_transpose(x), grad_out), xp.sum(grad_out, axis=0)


# -------------------------------------------------------------------- activations
def relu(x: Array) -> Array:
    """``max(x, 0)`` elementwise. Shape: (...) -> (...)."""
    return array_namespace(x).maximum(x, 0.0)


def relu_backward(grad_out: Array, x: Array) -> Array:
    """Gradient of :func:`relu` at input (or output) ``x``: ``grad_out`` where x > 0,
    else 0. Shapes: (...) -> (...)."""
    xp = array_namespace(grad_out, x)
    # A multiply by the 0/1 mask (on NumPy `where(x > 0, g, 0.0)` is ~6x slower),
    # in place into the fresh mask.
    mask = xp.astype(x > 0, grad_out.dtype)
    mask *= grad_out
    return mask


def sigmoid(x: Array) -> Array:
    """Logistic function ``1 / (1 + exp(-x))``, computed from ``exp(-|x|)`` so it
    never overflows: exactly 0 and 1 at -800 and 800, with no warnings.
    Shape: (...) -> (...)."""
    xp = array_namespace(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_backward(grad_out: Array, y: Array) -> Array:
    """Gradient of :func:`sigmoid` given its output ``y``. Shapes: (...) -> (...)."""
    return grad_out * y * (1.0 - y)


def tanh(x: Array) -> Array:
    """Hyperbolic tangent. Shape: (...) -> (...)."""
    return array_namespace(x).tanh(x)


def tanh_backward(grad_out: Array, y: Array) -> Array:
    """Gradient of :func:`tanh` given its output ``y``. Shapes: (...) -> (...)."""
    return grad_out * (1.0 - y * y)


# ------------------------------------------------------------------------ softmax
def logsumexp(x: Array, axis: int = -1, keepdims: bool = False) -> Array:
    """``log(sum(exp(x), axis))`` with the max shifted out, so large inputs stay finite.

    Shape: (..., K) -> (...) (or (..., 1) with ``keepdims``).
    """
    xp = array_namespace(x)
    m = xp.max(x, axis=axis, keepdims=True)
    out = m + xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else xp.squeeze(out, axis=axis)


def log_softmax(x: Array, axis: int = -1) -> Array:
    """``x - logsumexp(x)`` along ``axis``. Shape: (..., K) -> (..., K)."""
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x: Array, axis: int = -1) -> Array:
    """``exp(x) / sum(exp(x))`` along ``axis`` with the max shifted out: finite and
    summing to 1 even for logits like 2080. Shape: (..., K) -> (..., K)."""
    xp = array_namespace(x)
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def softmax_backward(grad_out: Array, y: Array, axis: int = -1) -> Array:
    """Gradient of :func:`softmax` given its output ``y``: ``y * (g - sum(g * y))``.

    Shapes: (..., K) -> (..., K).
    """
    xp = array_namespace(grad_out, y)
    return y * (grad_out - xp.sum(grad_out * y, axis=axis, keepdims=True))


def one_hot(labels: Array, num_classes: int, dtype: Any = None) -> Array:
    """One-hot encoding of integer labels, on the labels' device.

    Shapes: labels (...) of integers -> (..., num_classes) of ``dtype`` (default:
    ``xpnet.default_dtype()``). Labels outside ``[0, num_classes)`` give all-zero
    rows here; :mod:`xpnet.losses` checks the range and raises.
    """
    xp = array_namespace(labels)
    # int64 classes, not the labels' dtype: arange(300) in uint8 wraps, and label 5
    # would also match class 261. Comparing a narrower label dtype with int64 promotes.
    classes = xp.arange(num_classes, dtype=xp.int64, device=device(labels))
    target = getattr(xp, dtype_name(dtype if dtype is not None else default_dtype()))
    return xp.astype(xp.astype(labels, xp.int64)[..., None] == classes, target)


def clip_probabilities(p: Array) -> Array:
    """Clip probabilities into ``[eps, 1 - eps]`` with ``eps`` of ``p``'s own dtype,
    so their logs are finite (a float64 1e-12 would vanish in float32)."""
    xp = array_namespace(p)
    eps = float(xp.finfo(p.dtype).eps)
    # Not xp.clip: array-api-compat's CuPy clip assigns through boolean masks, and CuPy
    # reads each mask's count back to the host (a sync per call, and a failed CUDA-graph
    # capture). maximum/minimum are plain kernels with the same result, NaN included.
    return xp.minimum(xp.maximum(p, eps), 1.0 - eps)


# ------------------------------------------------------------------------- losses
def _batch_mean(per_sample_sum: Array, n: int) -> Array:
    return per_sample_sum / float(max(n, 1))


def _target_like(name: str, pred: Array, target: Array, pred_name: str = "predictions") -> Array:
    """``target`` as the loss's arithmetic takes it: a bool target (one-hot rows from
    ``==``, 0/1 from ``>``; the Array API standard defines no arithmetic on bool) as 0/1
    in ``pred``'s dtype. Its shape must be ``pred``'s: a clear error instead of a silent
    (N, N) broadcast: (N, 1) against (N,), or integer labels (N,) against (N, K) logits
    when N == K, would broadcast and give a wrong number without complaint."""
    if tuple(pred.shape) != tuple(target.shape):
        hint = ""
        if target.ndim == pred.ndim - 1 and name in ("nll_loss", "softmax_cross_entropy",
                                                      "softmax_cross_entropy_backward", "cross_entropy"):
            hint = ("; for integer class labels (N,) use one_hot(labels, K) first, or "
                    "xpnet.losses.SoftmaxCrossEntropy, which takes labels")
        elif pred.ndim == 2 and pred.shape[1] == 1 and target.ndim == 1:
            hint = "; reshape the targets to (N, 1), e.g. target[:, None]"
        raise ShapeError(f"{name} got {pred_name} of shape {tuple(pred.shape)} and targets of shape "
                         f"{tuple(target.shape)}; they must have the same shape{hint}")
    if dtype_name(target.dtype) != "bool":
        return target
    return array_namespace(target).astype(target, pred.dtype)


def nll_loss(log_probs: Array, target: Array) -> Array:
    """Mean over the batch of ``-sum(target * log_probs)``, with ``0 * log 0 = 0``: a
    class with probability 0 (a ``-inf`` logit) and target 0 adds nothing, as in
    PyTorch, instead of ``0 * -inf = nan``.

    Shapes: log_probs (N, K), target (N, K) one-hot or probabilities -> 0-d array.
    """
    target = _target_like("nll_loss", log_probs, target, "log_probs")
    xp = array_namespace(log_probs, target)
    log_probs = xp.where(target == 0, xp.zeros_like(log_probs), log_probs)
    return _batch_mean(-xp.sum(target * log_probs), log_probs.shape[0])


def softmax_cross_entropy(logits: Array, target: Array) -> Array:
    """Mean over the batch of ``-sum(target * log_softmax(logits))``.

    Shapes: logits (N, K); target (N, K) one-hot or class probabilities, in the
    logits' dtype -> 0-d array. Use :func:`one_hot` for integer labels.
    """
    target = _target_like("softmax_cross_entropy", logits, target, "logits")
    return nll_loss(log_softmax(logits), target)


def softmax_cross_entropy_backward(logits: Array, target: Array, log_probs: Array | None = None) -> Array:
    """Gradient of :func:`softmax_cross_entropy` w.r.t. the logits:
    ``(softmax(logits) - target) / N``. Pass ``log_probs = log_softmax(logits)`` from
    the forward pass to skip recomputing the softmax. Shapes: (N, K), (N, K) -> (N, K)."""
    target = _target_like("softmax_cross_entropy_backward", logits, target, "logits")
    probs = softmax(logits) if log_probs is None else array_namespace(log_probs).exp(log_probs)
    probs -= target  # a fresh array: in place
    probs /= float(max(logits.shape[0], 1))
    return probs


def cross_entropy(probs: Array, target: Array) -> Array:
    """Mean over the batch of ``-sum(target * log(p))`` for probabilities ``p``
    (clipped by the dtype's eps, so exact 0s and 1s stay finite).

    Shapes: probs (N, K), target (N, K) -> 0-d array.
    """
    target = _target_like("cross_entropy", probs, target, "probabilities")
    xp = array_namespace(probs, target)
    return _batch_mean(-xp.sum(target * xp.log(clip_probabilities(probs))), probs.shape[0])


def binary_cross_entropy(probs: Array, target: Array) -> Array:
    """Binary cross-entropy of probabilities: per sample the sum over outputs of
    ``-(t log p + (1 - t) log(1 - p))``, averaged over the batch; ``p`` is clipped
    by the dtype's eps so exact 0s and 1s stay finite.

    Shapes: probs (N, ...), target same shape -> 0-d array.
    """
    target = _target_like("binary_cross_entropy", probs, target, "probabilities")
    xp = array_namespace(probs, target)
    p = clip_probabilities(probs)
    per_elem = target * xp.log(p) + (1.0 - target) * xp.log(1.0 - p)
    return _batch_mean(-xp.sum(per_elem), probs.shape[0])


def binary_cross_entropy_backward(probs: Array, target: Array) -> Array:
    """Gradient of :func:`binary_cross_entropy` w.r.t. the probabilities:
    ``(p - t) / (p (1 - p)) / N`` with clipped ``p``. Shapes: (N, ...) -> (N, ...)."""
    target = _target_like("binary_cross_entropy_backward", probs, target, "probabilities")
    p = clip_probabilities(probs)
    return _batch_mean((p - target) / (p * (1.0 - p)), probs.shape[0])


def binary_cross_entropy_with_logits(logits: Array, target: Array) -> Array:
    """Binary cross-entropy of ``sigmoid(logits)``, computed stably as
    ``max(z, 0) - z t + log1p(exp(-|z|))``; summed per sample, averaged over the batch.

    Shapes: logits (N, ...), target same shape -> 0-d array.
    """
    target = _target_like("binary_cross_entropy_with_logits", logits, target, "logits")
    xp = array_namespace(logits, target)
    z = logits
    per_elem = xp.maximum(z, xp.zeros_like(z)) - z * target + xp.log1p(xp.exp(-xp.abs(z)))
    return _batch_mean(xp.sum(per_elem), z.shape[0])


def binary_cross_entropy_with_logits_backward(logits: Array, target: Array) -> Array:
    """Gradient of :func:`binary_cross_entropy_with_logits`: ``(sigmoid(z) - t) / N``.
    Shapes: (N, ...) -> (N, ...)."""
    target = _target_like("binary_cross_entropy_with_logits_backward", logits, target, "logits")
    return _batch_mean(sigmoid(logits) - target, logits.shape[0])


def mean_squared_error(pred: Array, target: Array) -> Array:
    """Half the sum of squared errors per sample, averaged over the batch:
    ``sum((pred - target)**2) / (2 N)`` (the classic ``LinearOutput`` loss, whose
    gradient is simply ``(pred - target) / N``).

    Shapes: pred (N, ...), target same shape -> 0-d array.
    """
    target = _target_like("mean_squared_error", pred, target, "predictions")
    xp = array_namespace(pred, target)
    diff = pred - target
    return _batch_mean(0.5 * xp.sum(diff * diff), pred.shape[0])


def mean_squared_error_backward(pred: Array, target: Array) -> Array:
    """Gradient of :func:`mean_squared_error`: ``(pred - target) / N``. Shapes: (N, ...) -> (N, ...)."""
    target = _target_like("mean_squared_error_backward", pred, target)
    return _batch_mean(pred - target, pred.shape[0])
