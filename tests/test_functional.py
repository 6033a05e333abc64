"""xpnet.functional: stability at extreme inputs, agreement with plain NumPy float64
formulas on every device, dtype/device preservation, no mutation, and hypothesis
property tests."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import xpnet
import xpnet.functional as F
from xpnet.backend import dtype_name
from xpnet.gradcheck import numerical_gradient
from xpnet.testing import TOLERANCES, assert_close

DTYPES = ("float32", "float64")


def _tol(dtype: str) -> dict[str, float]:
    rtol, atol = TOLERANCES[dtype]
    return {"rtol": rtol, "atol": atol}


def _host(array: Any) -> np.ndarray:
    """A float64 NumPy copy of ``array`` (never a view of it)."""
    return np.array(xpnet.to_numpy(array), dtype=np.float64, copy=True)


# ------------------------------------------------------------------ NumPy references
def _np_logsumexp(x, axis=-1, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def _np_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _one_hot_np(labels, k):
    return np.eye(k)[labels]


# ------------------------------------------------------------------ the case table
@dataclass
class Case:
    """One function: host float64 inputs, how to call it, and its NumPy float64 reference."""

    name: str
    inputs: Callable[[np.random.Generator], tuple[np.ndarray, ...]]
    call: Callable[..., Any]
    reference: Callable[..., Any]


def _x(rng):
    return (rng.uniform(-3.0, 3.0, (4, 5)),)


def _xg(rng):
    return rng.uniform(-3.0, 3.0, (4, 5)), rng.standard_normal((4, 5))


def _probs_onehot(rng):
    logits = rng.standard_normal((4, 3))
    return _np_softmax(logits), _one_hot_np(np.array([0, 2, 1, 2]), 3)


def _logits_onehot(rng):
    return rng.uniform(-4.0, 4.0, (4, 3)), _one_hot_np(np.array([0, 2, 1, 2]), 3)


def _probs_binary(rng):
    return rng.uniform(0.05, 0.95, (5, 2)), rng.integers(0, 2, (5, 2)).astype(np.float64)


def _logits_binary(rng):
    return rng.uniform(-5.0, 5.0, (5, 2)), rng.integers(0, 2, (5, 2)).astype(np.float64)


def _pred_target(rng):
    return rng.standard_normal((4, 3)), rng.standard_normal((4, 3))


def _linear_inputs(rng):
    return rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)


def _linear_backward_inputs(rng):
    return rng.standard_normal((4, 2)), rng.standard_normal((4, 3)), rng.standard_normal((3, 2))


def _np_softmax_backward(g, y):
    # Through the Jacobian J[i, j] = y_i (delta_ij - y_j) row by row.
    jac = np.einsum("ni,ij->nij", y, np.eye(y.shape[1])) - np.einsum("ni,nj->nij", y, y)
    return np.einsum("nij,ni->nj", jac, g)


def _np_bce(p, t):
    return -np.sum(t * np.log(p) + (1 - t) * np.log(1 - p)) / p.shape[0]


CASES = [
    Case("linear", _linear_inputs, F.linear, lambda x, W, b: x @ W + b),
    Case("linear_no_bias", lambda r: _linear_inputs(r)[:2], F.linear, lambda x, W: x @ W),
    Case(
        "linear_backward", _linear_backward_inputs, F.linear_backward, lambda g, x, W: (g @ W.T, x.T @ g, g.sum(axis=0))
    ),
    Case("relu", _x, F.relu, lambda x: np.maximum(x, 0.0)),
    Case("relu_backward", _xg, lambda x, g: F.relu_backward(g, x), lambda x, g: g * (x > 0)),
    Case("sigmoid", _x, F.sigmoid, _np_sigmoid),
    Case(
        "sigmoid_backward",
        _xg,
        lambda x, g: F.sigmoid_backward(g, F.sigmoid(x)),
        lambda x, g: g * _np_sigmoid(x) * (1 - _np_sigmoid(x)),
    ),
    Case("tanh", _x, F.tanh, np.tanh),
    Case("tanh_backward", _xg, lambda x, g: F.tanh_backward(g, F.tanh(x)), lambda x, g: g * (1 - np.tanh(x) ** 2)),
    Case("logsumexp", _x, F.logsumexp, lambda x: np.log(np.sum(np.exp(x), axis=-1))),
    Case(
        "logsumexp_keepdims",
        _x,
        lambda x: F.logsumexp(x, keepdims=True),
        lambda x: np.log(np.sum(np.exp(x), axis=-1, keepdims=True)),
    ),
    Case("logsumexp_axis0", _x, lambda x: F.logsumexp(x, axis=0), lambda x: np.log(np.sum(np.exp(x), axis=0))),
    Case(
        "logsumexp_axis0_keepdims",
        _x,
        lambda x: F.logsumexp(x, axis=0, keepdims=True),
        lambda x: np.log(np.sum(np.exp(x), axis=0, keepdims=True)),
    ),
    Case("softmax", _x, F.softmax, lambda x: np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)),
    Case(
        "softmax_axis0",
        _x,
        lambda x: F.softmax(x, axis=0),
        lambda x: np.exp(x) / np.sum(np.exp(x), axis=0, keepdims=True),
    ),
    Case(
        "softmax_backward",
        _xg,
        lambda x, g: F.softmax_backward(g, F.softmax(x)),
        lambda x, g: _np_softmax_backward(g, _np_softmax(x)),
    ),
    Case("log_softmax", _x, F.log_softmax, lambda x: np.log(np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True))),
    Case(
        "log_softmax_axis0",
        _x,
        lambda x: F.log_softmax(x, axis=0),
        lambda x: np.log(np.exp(x) / np.sum(np.exp(x), axis=0, keepdims=True)),
    ),
    Case(
        "softmax_cross_entropy",
        _logits_onehot,
        F.softmax_cross_entropy,
        lambda z, t: -np.mean(np.log(_np_softmax(z))[np.arange(z.shape[0]), t.argmax(axis=1)]),
    ),
    Case(
        "softmax_cross_entropy_backward",
        _logits_onehot,
        F.softmax_cross_entropy_backward,
        lambda z, t: (_np_softmax(z) - t) / z.shape[0],
    ),
    Case("cross_entropy", _probs_onehot, F.cross_entropy, lambda p, t: -np.sum(t * np.log(p)) / p.shape[0]),
    Case("binary_cross_entropy", _probs_binary, F.binary_cross_entropy, _np_bce),
    Case(
        "binary_cross_entropy_backward",
        _probs_binary,
        F.binary_cross_entropy_backward,
        lambda p, t: (-t / p + (1 - t) / (1 - p)) / p.shape[0],
    ),
    Case(
        "binary_cross_entropy_with_logits",
        _logits_binary,
        F.binary_cross_entropy_with_logits,
        lambda z, t: _np_bce(_np_sigmoid(z), t),
    ),
    Case(
        "binary_cross_entropy_with_logits_backward",
        _logits_binary,
        F.binary_cross_entropy_with_logits_backward,
        lambda z, t: (_np_sigmoid(z) - t) / z.shape[0],
    ),
    Case(
        "mean_squared_error", _pred_target, F.mean_squared_error, lambda p, t: 0.5 * np.sum((p - t) ** 2) / p.shape[0]
    ),
    Case("mean_squared_error_backward", _pred_target, F.mean_squared_error_backward, lambda p, t: (p - t) / p.shape[0]),
    Case("clip_probabilities", lambda r: (r.uniform(0.0, 1.0, (3, 4)),), F.clip_probabilities, lambda p: p),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_matches_numpy_reference(xp_device, case, dtype):
    """Values within the dtype's tolerance of NumPy float64, dtype and device of the
    input kept, inputs untouched."""
    host_inputs = case.inputs(np.random.default_rng(0))
    args = [xpnet.asarray(a, dtype=dtype) for a in host_inputs]
    before = [_host(a) for a in args]
    result = case.call(*args)
    expected = case.reference(*(a.astype(dtype).astype(np.float64) for a in host_inputs))
    results = result if isinstance(result, tuple) else (result,)
    expecteds = expected if isinstance(expected, tuple) else (expected,)
    assert len(results) == len(expecteds)
    for i, (got, want) in enumerate(zip(results, expecteds, strict=True)):
        want = np.asarray(want)
        assert tuple(got.shape) == want.shape, f"{case.name} output {i}"
        assert_close(got, want, dtype=dtype, device=xp_device, what=f"{case.name}[{i}]")
    for i, (arg, saved) in enumerate(zip(args, before, strict=True)):
        np.testing.assert_array_equal(_host(arg), saved, err_msg=f"{case.name} modified input {i}")


def test_losses_are_zero_dimensional(xp_device):
    z, t = (xpnet.asarray(a) for a in _logits_onehot(np.random.default_rng(1)))
    p, b = (xpnet.asarray(a) for a in _probs_binary(np.random.default_rng(1)))
    for value in (
        F.softmax_cross_entropy(z, t),
        F.cross_entropy(F.softmax(z), t),
        F.binary_cross_entropy(p, b),
        F.binary_cross_entropy_with_logits(z, t),
        F.mean_squared_error(z, t),
    ):
        assert tuple(value.shape) == ()
        assert dtype_name(value.dtype) == "float32"
        assert xpnet.device_of(value) == xp_device


def test_relu_backward_is_zero_at_zero(xp_device):
    x = xpnet.asarray([[-1.0, 0.0, 2.0], [0.0, -0.0, 1e-30]])
    g = xpnet.asarray([[5.0, 5.0, 5.0], [7.0, 7.0, 7.0]])
    np.testing.assert_array_equal(xpnet.to_numpy(F.relu_backward(g, x)), [[0.0, 0.0, 5.0], [0.0, 0.0, 7.0]])
    np.testing.assert_array_equal(xpnet.to_numpy(F.relu(x)), [[0.0, 0.0, 2.0], [0.0, 0.0, np.float32(1e-30)]])


def test_linear_shapes(xp_device):
    rng = np.random.default_rng(2)
    x = xpnet.asarray(rng.standard_normal((7, 5)))
    W = xpnet.asarray(rng.standard_normal((5, 3)))
    b = xpnet.asarray(rng.standard_normal(3))
    out = F.linear(x, W, b)
    assert tuple(out.shape) == (7, 3)
    dx, dW, db = F.linear_backward(xpnet.asarray(np.ones((7, 3))), x, W)
    assert (tuple(dx.shape), tuple(dW.shape), tuple(db.shape)) == ((7, 5), (5, 3), (3,))
    np.testing.assert_allclose(xpnet.to_numpy(db), [7.0, 7.0, 7.0])


# ------------------------------------------------------------------ one_hot
def test_one_hot(xp_device):
    labels = xpnet.asarray(np.array([2, 0, 1, 2]))
    out = F.one_hot(labels, 3)
    assert dtype_name(out.dtype) == "float32"
    assert xpnet.device_of(out) == xp_device
    np.testing.assert_array_equal(xpnet.to_numpy(out), np.eye(3)[[2, 0, 1, 2]])
    assert dtype_name(F.one_hot(labels, 3, dtype="float64").dtype) == "float64"
    with xpnet.using(dtype="float64"):
        assert dtype_name(F.one_hot(labels, 3).dtype) == "float64"
    wide = F.one_hot(labels, 5)
    assert tuple(wide.shape) == (4, 5)
    np.testing.assert_array_equal(xpnet.to_numpy(wide).sum(axis=1), np.ones(4))
    np.testing.assert_array_equal(xpnet.to_numpy(labels), [2, 0, 1, 2])


def test_one_hot_stays_on_the_labels_device(xp_device):
    labels = xpnet.asarray(np.array([[1, 0], [0, 1]]))
    other = "strict:device1" if xp_device.name != "strict:device1" else "cpu"
    with xpnet.using(other):
        out = F.one_hot(labels, 2, dtype="float64")
    assert xpnet.device_of(out) == xp_device
    assert tuple(out.shape) == (2, 2, 2)
    np.testing.assert_array_equal(xpnet.to_numpy(out), np.eye(2)[[[1, 0], [0, 1]]])


def test_softmax_cross_entropy_matches_mean_log_softmax_of_label(xp_device):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((6, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2, 3])
    z = xpnet.asarray(logits, dtype="float64")
    loss = F.softmax_cross_entropy(z, F.one_hot(xpnet.asarray(labels), 4, dtype="float64"))
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert_close(loss, -np.mean(log_p[np.arange(6), labels]), dtype="float64", device=xp_device)


@pytest.mark.parametrize("label_dtype", ["uint8", "int16", "int32"])
def test_one_hot_of_narrow_labels_with_more_classes_than_the_dtype_holds(xp_device, label_dtype):
    """arange(300) in uint8 wraps: label 5 also matched class 261, and cross-entropy
    with uint8 labels (as datasets ship them) gave 8.56 instead of log(300) = 5.70."""
    from xpnet import losses

    labels = np.array([5, 200, 0, 127], dtype=label_dtype)
    out = xpnet.to_numpy(F.one_hot(xpnet.asarray(labels), 300, dtype="float64"))
    np.testing.assert_array_equal(out, np.eye(300)[labels.astype(np.int64)])
    logits = xpnet.asarray(np.zeros((4, 300)), dtype="float64")
    value = losses.SoftmaxCrossEntropy()(logits, xpnet.asarray(labels))
    assert_close(value, np.log(300.0), dtype="float64", device=xp_device)


def test_cross_entropy_with_a_minus_inf_logit_is_finite_where_the_target_is_zero(xp_device):
    """0 * log 0 = 0 (masked logits, or a float32 logit that overflowed), as in
    torch.nn.functional.cross_entropy; a -inf logit on the true class stays inf."""
    from xpnet import losses

    logits = np.array([[2.0, -np.inf, 0.5], [1.0, 0.0, -np.inf]])
    labels = np.array([0, 1])
    finite = logits.copy()
    finite[np.isinf(finite)] = -1e300  # the same probabilities, without the infinities
    log_p = finite - np.log(np.exp(finite).sum(axis=1, keepdims=True))
    expected = -log_p[np.arange(2), labels].mean()  # 0.7573...
    z = xpnet.asarray(logits, dtype="float64")
    target = F.one_hot(xpnet.asarray(labels), 3, dtype="float64")
    assert_close(F.softmax_cross_entropy(z, target), expected, dtype="float64", device=xp_device)
    assert_close(losses.SoftmaxCrossEntropy()(z, xpnet.asarray(labels)), expected, dtype="float64", device=xp_device)
    weighted = losses.SoftmaxCrossEntropy()(z, xpnet.asarray(labels), sample_weight=xpnet.asarray(np.ones(2)))
    assert_close(weighted, expected, dtype="float64", device=xp_device)
    grad = xpnet.to_numpy(F.softmax_cross_entropy_backward(z, target))
    assert np.isfinite(grad).all()
    on_target = F.softmax_cross_entropy(z, F.one_hot(xpnet.asarray(np.array([1, 2])), 3, dtype="float64"))
    assert float(xpnet.to_numpy(on_target)) == np.inf


FUNCTIONAL_LOSSES = [
    ("softmax_cross_entropy", F.softmax_cross_entropy, "logits", "one_hot"),
    ("softmax_cross_entropy_backward", F.softmax_cross_entropy_backward, "logits", "one_hot"),
    ("nll_loss", F.nll_loss, "log_probs", "one_hot"),
    ("cross_entropy", F.cross_entropy, "probabilities", "one_hot"),
    ("binary_cross_entropy", F.binary_cross_entropy, "probabilities", r"reshape the targets to \(N, 1\)"),
    ("binary_cross_entropy_backward", F.binary_cross_entropy_backward, "probabilities", "reshape"),
    ("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits, "logits", "reshape"),
    ("binary_cross_entropy_with_logits_backward", F.binary_cross_entropy_with_logits_backward, "logits", "reshape"),
    ("mean_squared_error", F.mean_squared_error, "predictions", "reshape"),
    ("mean_squared_error_backward", F.mean_squared_error_backward, "predictions", "reshape"),
]


@pytest.mark.parametrize("name, fn, what, hint", FUNCTIONAL_LOSSES, ids=[c[0] for c in FUNCTIONAL_LOSSES])
def test_functional_losses_refuse_a_broadcast(xp_device, name, fn, what, hint):
    """(N, 1) outputs against (N,) targets, or (N,) integer labels against (N, N)
    logits, broadcast to (N, N) and gave a wrong number without complaint."""
    from xpnet.errors import ShapeError

    rng = np.random.default_rng(0)
    if hint == "one_hot":
        pred, target = rng.random((3, 3)) * 0.8 + 0.1, np.array([0, 2, 1])  # N == K
        if name == "nll_loss":
            pred = np.log(pred)
    else:
        pred, target = rng.random((3, 1)) * 0.8 + 0.1, np.array([1.0, 0.0, 1.0])
        hint = r"reshape the targets to \(N, 1\)"
    if hint == "one_hot":
        hint = r"use one_hot\(labels, K\) first"
    p = xpnet.asarray(pred, dtype="float64")
    t = xpnet.asarray(target, dtype="float64" if target.dtype.kind == "f" else None)
    with pytest.raises(ShapeError, match=rf"{name} got {what} of shape \(3, \d\) and targets of shape \(3,\); "
                                         rf"they must have the same shape; .*{hint}"):
        fn(p, t)


def test_weighted_losses_with_all_zero_weights_are_zero_not_nan(xp_device):
    from xpnet import losses

    z = xpnet.asarray(np.random.default_rng(1).standard_normal((4, 3)), dtype="float64")
    for loss, target in [(losses.SoftmaxCrossEntropy(), np.array([0, 1, 2, 0])),
                         (losses.MeanSquaredError(), np.zeros((4, 3))),
                         (losses.BinaryCrossEntropy(from_logits=True), np.ones((4, 3)))]:
        value = loss(z, xpnet.asarray(target), sample_weight=xpnet.asarray(np.zeros(4)))
        assert float(xpnet.to_numpy(value)) == 0.0, loss
        np.testing.assert_array_equal(xpnet.to_numpy(loss.backward()), np.zeros((4, 3)))


# ------------------------------------------------------------------ gradients by finite differences
def _loss_pairs():
    return [
        ("softmax_cross_entropy", F.softmax_cross_entropy, F.softmax_cross_entropy_backward, _logits_onehot),
        ("cross_entropy", F.cross_entropy, None, _probs_onehot),
        ("binary_cross_entropy", F.binary_cross_entropy, F.binary_cross_entropy_backward, _probs_binary),
        (
            "binary_cross_entropy_with_logits",
            F.binary_cross_entropy_with_logits,
            F.binary_cross_entropy_with_logits_backward,
            _logits_binary,
        ),
        ("mean_squared_error", F.mean_squared_error, F.mean_squared_error_backward, _pred_target),
    ]


@pytest.mark.parametrize(
    ("name", "loss", "backward", "inputs"),
    [p for p in _loss_pairs() if p[2] is not None],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_loss_backward_matches_finite_differences(xp_device, name, loss, backward, inputs):
    pred_host, target_host = inputs(np.random.default_rng(4))
    pred = xpnet.asarray(pred_host, dtype="float64")
    target = xpnet.asarray(target_host, dtype="float64")
    analytic = backward(pred, target)
    assert dtype_name(analytic.dtype) == "float64"
    assert xpnet.device_of(analytic) == xp_device
    numeric = numerical_gradient(lambda p: loss(p, target), pred)
    np.testing.assert_allclose(xpnet.to_numpy(analytic), numeric, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize(
    ("forward", "backward"),
    [
        (F.sigmoid, F.sigmoid_backward),
        (F.tanh, F.tanh_backward),
        (F.softmax, F.softmax_backward),
    ],
    ids=["sigmoid", "tanh", "softmax"],
)
def test_activation_backward_matches_finite_differences(forward, backward):
    rng = np.random.default_rng(5)
    x = rng.uniform(-2.0, 2.0, (3, 4))
    g = rng.standard_normal((3, 4))
    analytic = backward(g, forward(x))
    numeric = numerical_gradient(lambda v: np.sum(forward(v) * g), x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_linear_backward_matches_finite_differences():
    rng = np.random.default_rng(6)
    x, W, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    g = rng.standard_normal((4, 2))
    dx, dW, db = F.linear_backward(g, x, W)
    np.testing.assert_allclose(dx, numerical_gradient(lambda v: np.sum(F.linear(v, W, b) * g), x), rtol=1e-6)
    np.testing.assert_allclose(dW, numerical_gradient(lambda v: np.sum(F.linear(x, v, b) * g), W), rtol=1e-6)
    np.testing.assert_allclose(db, numerical_gradient(lambda v: np.sum(F.linear(x, W, v) * g), b), rtol=1e-6)


# ------------------------------------------------------------------ stability
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_huge_logits(xp_device, dtype):
    logits = np.array([[2060.0, 2000.0, 2080.0], [1010.0, 1020.0, 1030.0]])
    x = xpnet.asarray(logits, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.softmax(x)
        log_y = F.log_softmax(x)
    got = xpnet.to_numpy(y)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got.sum(axis=1), [1.0, 1.0], **_tol(dtype))
    assert_close(y, _np_softmax(logits), dtype=dtype, device=xp_device)
    # x - logsumexp(x) near 2080 is exact only to the spacing of the dtype at 2080
    assert dtype_name(log_y.dtype) == dtype and xpnet.device_of(log_y) == xp_device
    np.testing.assert_allclose(
        xpnet.to_numpy(log_y),
        logits - _np_logsumexp(logits, keepdims=True),
        rtol=0,
        atol=2 * float(np.spacing(np.asarray(2080.0, dtype=dtype))),
    )
    assert np.argmax(got[0]) == 2 and np.argmax(got[1]) == 2


def _numpy_errors_raise(device):
    """NumPy floating-point errors raise on the cpu device. Underflow (exp(-800) -> 0)
    is the intended result of the stable formulas, so it stays silent, as it is by
    default in NumPy."""
    if device.backend == "numpy":
        return np.errstate(over="raise", divide="raise", invalid="raise", under="ignore")
    return np.errstate()


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_saturates_exactly(xp_device, dtype):
    x = xpnet.asarray([[800.0, -800.0], [0.0, 40.0]], dtype=dtype)
    with warnings.catch_warnings(), _numpy_errors_raise(xp_device):
        warnings.simplefilter("error")
        y = F.sigmoid(x)
    got = xpnet.to_numpy(y)
    assert got[0, 0] == 1.0
    assert got[0, 1] == 0.0
    assert got[1, 0] == 0.5
    assert dtype_name(y.dtype) == dtype
    assert xpnet.device_of(y) == xp_device


@pytest.mark.parametrize("dtype", DTYPES)
def test_probability_losses_at_exact_zero_and_one(xp_device, dtype):
    eps = float(np.finfo(dtype).eps)
    target = xpnet.asarray([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    right = xpnet.asarray([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    wrong = xpnet.asarray([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)
    with warnings.catch_warnings(), _numpy_errors_raise(xp_device):
        warnings.simplefilter("error")
        values = {
            "bce_right": F.binary_cross_entropy(right, target),
            "bce_wrong": F.binary_cross_entropy(wrong, target),
            "ce_right": F.cross_entropy(right, target),
            "ce_wrong": F.cross_entropy(wrong, target),
            "bce_grad_wrong": F.binary_cross_entropy_backward(wrong, target),
        }
    for name, value in values.items():
        assert np.all(np.isfinite(xpnet.to_numpy(value))), name
        assert dtype_name(value.dtype) == dtype, name
    # clipped at the dtype's own eps: a wrong certain answer costs -log(eps) per element
    per_elem = -np.log(eps)
    np.testing.assert_allclose(xpnet.to_numpy(values["bce_wrong"]), 2 * per_elem, rtol=1e-4)
    np.testing.assert_allclose(xpnet.to_numpy(values["ce_wrong"]), per_elem, rtol=1e-4)
    assert 0.0 <= float(xpnet.to_numpy(values["bce_right"])) < 1e-3
    assert 0.0 <= float(xpnet.to_numpy(values["ce_right"])) < 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_probabilities_uses_the_dtype_eps(xp_device, dtype):
    eps = np.finfo(dtype).eps
    p = F.clip_probabilities(xpnet.asarray([0.0, 1.0, 0.5], dtype=dtype))
    got = xpnet.to_numpy(p)
    assert got[0] == np.asarray(eps, dtype=dtype)
    assert got[1] == np.asarray(1.0 - eps, dtype=dtype)
    assert got[1] < 1.0
    assert got[2] == 0.5


def test_clip_probabilities_never_calls_the_namespace_clip():
    """array-api-compat's CuPy clip assigns through boolean masks, whose counts CuPy reads
    back to the host: a sync per call, and a CUDA-graph capture of a BCE step that fails.
    The clip is maximum and minimum instead, with the same values (NaN stays NaN)."""
    def refuse(*args, **kwargs):
        raise AssertionError("clip_probabilities called xp.clip")

    p = np.array([[-0.5, 0.0, 0.25], [1.0, 1.5, np.nan]], dtype=np.float32)
    with xpnet.backend.namespace_override(p, clip=refuse):
        got = F.clip_probabilities(p)
    eps = np.finfo(np.float32).eps
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.clip(p, eps, np.float32(1.0 - eps)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_with_logits_at_800(xp_device, dtype):
    z = xpnet.asarray([[800.0, -800.0]], dtype=dtype)
    with warnings.catch_warnings(), _numpy_errors_raise(xp_device):
        warnings.simplefilter("error")
        right = F.binary_cross_entropy_with_logits(z, xpnet.asarray([[1.0, 0.0]], dtype=dtype))
        wrong = F.binary_cross_entropy_with_logits(z, xpnet.asarray([[0.0, 1.0]], dtype=dtype))
        grad = F.binary_cross_entropy_with_logits_backward(z, xpnet.asarray([[0.0, 1.0]], dtype=dtype))
    assert float(xpnet.to_numpy(right)) == 0.0
    assert float(xpnet.to_numpy(wrong)) == 1600.0
    np.testing.assert_array_equal(xpnet.to_numpy(grad), [[1.0, -1.0]])
    for value in (right, wrong, grad):
        assert dtype_name(value.dtype) == dtype
        assert xpnet.device_of(value) == xp_device


@pytest.mark.parametrize("dtype", DTYPES)
def test_logsumexp_of_large_values(xp_device, dtype):
    x = xpnet.asarray([[1000.0, 1000.0], [-1000.0, -1000.0], [1e4, 0.0], [88.0, 89.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = F.logsumexp(x)
    expected = [1000.0 + np.log(2.0), -1000.0 + np.log(2.0), 1e4, 89.0 + np.log1p(np.exp(-1.0))]
    assert np.all(np.isfinite(xpnet.to_numpy(got)))
    assert_close(got, expected, dtype=dtype, device=xp_device)


# ------------------------------------------------------------------ hypothesis, on NumPy
matrices = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 4), st.integers(1, 6)),
    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
)


moderate_matrices = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 4), st.integers(1, 6)),
    elements=st.floats(-19.9, 19.9, allow_nan=False, allow_infinity=False),
)


@st.composite
def matrix_pairs(draw):
    a = draw(matrices)
    b = draw(hnp.arrays(np.float64, a.shape, elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)))
    return a, b


@settings(max_examples=50, deadline=None)
@given(matrices)
def test_softmax_rows_are_distributions(x):
    y = F.softmax(x)
    assert np.all(y >= 0.0) and np.all(y <= 1.0)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-12)


@settings(max_examples=50, deadline=None)
@given(matrices, st.data())
def test_softmax_is_shift_invariant(x, data):
    shift = data.draw(hnp.arrays(np.float64, (x.shape[0], 1), elements=st.floats(-1e3, 1e3)))
    np.testing.assert_allclose(F.softmax(x + shift), F.softmax(x), rtol=1e-9, atol=1e-11)


@settings(max_examples=50, deadline=None)
@given(matrices)
def test_log_softmax_is_log_of_softmax(x):
    y = F.softmax(x)
    visible = y > 1e-200
    assert np.all(np.any(visible, axis=1))  # the largest entry of each row is >= 1/K
    np.testing.assert_allclose(F.log_softmax(x)[visible], np.log(y[visible]), rtol=1e-9, atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(matrices)
def test_logsumexp_is_at_least_the_max(x):
    assert np.all(F.logsumexp(x) >= x.max(axis=1))
    assert np.all(F.logsumexp(x) <= x.max(axis=1) + np.log(x.shape[1]) + 1e-9)


@settings(max_examples=50, deadline=None)
@given(matrices)
def test_sigmoid_range_and_symmetry(x):
    y = F.sigmoid(x)
    assert np.all(y >= 0.0) and np.all(y <= 1.0)
    np.testing.assert_allclose(F.sigmoid(-x), 1.0 - y, rtol=0, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 8).flatmap(
        lambda k: st.tuples(st.just(k), hnp.arrays(np.int64, st.integers(1, 10), elements=st.integers(0, k - 1)))
    )
)
def test_one_hot_rows_sum_to_one(k_labels):
    k, labels = k_labels
    out = F.one_hot(labels, k)
    assert out.shape == (labels.shape[0], k)
    np.testing.assert_array_equal(out.sum(axis=1), 1.0)
    np.testing.assert_array_equal(np.argmax(out, axis=1), labels)


@settings(max_examples=50, deadline=None)
@given(moderate_matrices, st.data())
def test_bce_with_logits_equals_bce_on_probabilities(z, data):
    # |z| < 20 keeps probabilities away from 0 and 1, where the clipping is idle; drawn in
    # range rather than filtered, so Hypothesis never rejects most of its inputs
    t = data.draw(hnp.arrays(np.float64, z.shape, elements=st.sampled_from([0.0, 1.0])))
    np.testing.assert_allclose(
        F.binary_cross_entropy_with_logits(z, t), F.binary_cross_entropy(F.sigmoid(z), t), rtol=1e-8, atol=1e-10
    )


@settings(max_examples=50, deadline=None)
@given(st.floats(-20.0, 20.0), st.sampled_from([0.0, 1.0]))
def test_bce_with_logits_equals_bce_on_probabilities_scalar_logits(z, t):
    zs, ts = np.array([[z]]), np.array([[t]])
    np.testing.assert_allclose(
        F.binary_cross_entropy_with_logits(zs, ts), F.binary_cross_entropy(F.sigmoid(zs), ts), rtol=1e-8, atol=1e-10
    )


@settings(max_examples=50, deadline=None)
@given(matrix_pairs())
@example((np.zeros((2, 3)), np.full((2, 3), 1e-101)))  # the underflow branch, whatever Hypothesis draws
def test_mse_is_nonnegative_and_zero_iff_equal(pair):
    a, b = pair
    assert F.mean_squared_error(a, b) >= 0.0
    assert F.mean_squared_error(a, a) == 0.0
    if np.max(np.abs(a - b)) > 1e-100:  # smaller differences square to an underflow
        assert F.mean_squared_error(a, b) > 0.0
    else:
        # differences within 1e-100 square to at most 1e-200 each: half their sum per row, averaged
        assert F.mean_squared_error(a, b) <= 0.5 * a.shape[1] * 1e-200


# ------------------------------------------------------------------ hypothesis, on array-api-strict
@settings(max_examples=50, deadline=None)
@given(matrices, st.data())
def test_strict_softmax_losses_properties(x, data):
    (strict,) = xpnet.testing.available_devices(["strict"])  # also pins the standard revision
    labels = data.draw(hnp.arrays(np.int64, (x.shape[0],), elements=st.integers(0, x.shape[1] - 1)))
    with xpnet.using(strict, dtype="float64"):
        z = xpnet.asarray(x)
        y = F.softmax(z)
        target = F.one_hot(xpnet.asarray(labels), x.shape[1])
        loss = F.softmax_cross_entropy(z, target)
        sig = F.sigmoid(z)
    for arr in (y, target, loss, sig):
        assert xpnet.device_of(arr) == strict
        assert dtype_name(arr.dtype) == "float64"
    np.testing.assert_allclose(xpnet.to_numpy(y), _np_softmax(x), rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(xpnet.to_numpy(y).sum(axis=1), 1.0, rtol=1e-12)
    expected = -np.mean((x - _np_logsumexp(x, keepdims=True))[np.arange(x.shape[0]), labels])
    np.testing.assert_allclose(float(xpnet.to_numpy(loss)), expected, rtol=1e-9, atol=1e-9)
    assert float(xpnet.to_numpy(loss)) >= 0.0
    s = xpnet.to_numpy(sig)
    assert np.all((s >= 0.0) & (s <= 1.0))
