"""Independent references for every formula.

The parity suite compares each backend with xpnet's own NumPy run, so a formula bug
shared by every backend would pass it. Here each layer's and loss's forward is
compared with a NumPy formula written out by hand (never ``xpnet.functional``), a few
values with numbers worked out on paper, and each backward with central finite
differences of that forward, computed here rather than by ``xpnet.gradcheck``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet import losses, nn

RNG = np.random.default_rng(1234)
EPS = 1e-6  # central differences in float64: truncation ~eps^2, rounding ~1e-16/eps


@pytest.fixture(autouse=True)
def _float64_cpu():
    with xpnet.using("cpu", dtype="float64"):
        yield


# ------------------------------------------------------------------ hand-written formulas
def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _linear(layer, x):
    return x @ layer.params["W"] + (layer.params["b"] if "b" in layer.params else 0.0)


LAYERS = {
    # name: (factory, input, forward written out by hand from the layer and x)
    "Linear": (lambda: nn.Linear(4, 3), RNG.standard_normal((5, 4)), _linear),
    "Linear-no-bias": (lambda: nn.Linear(4, 3, bias=False), RNG.standard_normal((5, 4)), _linear),
    # ReLU away from its kink, where finite differences would straddle it
    "ReLU": (nn.ReLU, np.where(RNG.random((5, 4)) < 0.5, -1.0, 1.0) * RNG.uniform(0.1, 2.0, (5, 4)),
             lambda layer, x: np.where(x > 0, x, 0.0)),
    "Sigmoid": (nn.Sigmoid, RNG.standard_normal((5, 4)) * 3, lambda layer, x: 1.0 / (1.0 + np.exp(-x))),
    "Tanh": (nn.Tanh, RNG.standard_normal((5, 4)) * 2,
             lambda layer, x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x))),
    "Softmax": (nn.Softmax, RNG.standard_normal((5, 4)) * 2,
                lambda layer, x: np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)),
    "Identity": (nn.Identity, RNG.standard_normal((5, 4)), lambda layer, x: x),
    "Flatten": (nn.Flatten, RNG.standard_normal((5, 2, 3)), lambda layer, x: x.reshape(5, 6)),
    "Dropout-eval": (lambda: nn.Dropout(0.3).eval(), RNG.standard_normal((5, 4)), lambda layer, x: x),
    "Sequential": (lambda: nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2)), RNG.standard_normal((5, 4)),
                   lambda m, x: _linear(m[2], np.tanh(_linear(m[0], x)))),
}


def _host(array):
    return np.array(xpnet.to_numpy(array), dtype=np.float64)


def _numeric_gradient(f, x):
    """d f / d x by central differences, one coordinate at a time (x is changed and restored)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        keep = x[i]
        x[i] = keep + EPS
        up = f()
        x[i] = keep - EPS
        down = f()
        x[i] = keep
        grad[i] = (up - down) / (2 * EPS)
    return grad


def _layer_params_on_host(layer):
    """The layer's parameters as the host arrays the hand-written formulas read."""
    for module in layer.modules():
        for name in list(module.params):
            module.params[name] = _host(module.params[name])
    return layer


@pytest.mark.parametrize("name", LAYERS)
def test_layer_forward_matches_hand_written_formula(name):
    factory, x, formula = LAYERS[name]
    layer = _layer_params_on_host(factory())
    out = _host(layer.forward(xpnet.asarray(x)))
    np.testing.assert_allclose(out, formula(layer, x.copy()), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", LAYERS)
def test_layer_backward_matches_finite_differences(name):
    """For L = sum(forward(x) * g): backward(g) is dL/dx and grads[p] is dL/dp."""
    factory, x, _ = LAYERS[name]
    layer = _layer_params_on_host(factory())
    x = x.copy()
    g = RNG.standard_normal(_host(layer.forward(xpnet.asarray(x))).shape)

    def objective():
        return float(np.sum(_host(layer.forward(xpnet.asarray(x))) * g))

    layer.forward(xpnet.asarray(x))
    dx = _host(layer.backward(xpnet.asarray(g)))
    analytic = {
        f"{i}.{p}": _host(m.grads[p]) for i, m in enumerate(layer.modules()) for p in m.params
    }
    np.testing.assert_allclose(dx, _numeric_gradient(objective, x), rtol=1e-6, atol=1e-8, err_msg="dx")
    for i, module in enumerate(layer.modules()):
        for p in module.params:
            numeric = _numeric_gradient(objective, module.params[p])
            np.testing.assert_allclose(analytic[f"{i}.{p}"], numeric, rtol=1e-6, atol=1e-8, err_msg=p)


# --------------------------------------------------------------------------- losses
def _ce(z, labels):
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return -np.mean(np.log(p[np.arange(len(z)), labels]))


def _bce_prob(p, t):
    return -np.mean(np.sum(t * np.log(p) + (1 - t) * np.log(1 - p), axis=1))


def _bce_logits(z, t):
    return _bce_prob(1.0 / (1.0 + np.exp(-z)), t)


def _mse(p, t):
    return np.mean(0.5 * np.sum((p - t) ** 2, axis=1))


_LABELS = RNG.integers(0, 4, 6)
LOSSES = {
    # name: (loss, prediction, target, formula(prediction, target))
    "cross_entropy-labels": (losses.SoftmaxCrossEntropy(), RNG.standard_normal((6, 4)) * 2, _LABELS, _ce),
    "cross_entropy-onehot": (losses.SoftmaxCrossEntropy(), RNG.standard_normal((6, 4)) * 2,
                             np.eye(4)[_LABELS], lambda z, t: _ce(z, t.argmax(axis=1))),
    "bce-probabilities": (losses.BinaryCrossEntropy(), RNG.uniform(0.05, 0.95, (6, 3)),
                          RNG.integers(0, 2, (6, 3)).astype(np.float64), _bce_prob),
    "bce-logits": (losses.BinaryCrossEntropy(from_logits=True), RNG.standard_normal((6, 3)) * 3,
                   RNG.integers(0, 2, (6, 3)).astype(np.float64), _bce_logits),
    "mse": (losses.MeanSquaredError(), RNG.standard_normal((6, 3)), RNG.standard_normal((6, 3)), _mse),
}


@pytest.mark.parametrize("name", LOSSES)
def test_loss_forward_matches_hand_written_formula(name):
    loss, pred, target, formula = LOSSES[name]
    value = loss.forward(xpnet.asarray(pred), xpnet.asarray(target))
    assert tuple(value.shape) == ()
    assert float(value) == pytest.approx(formula(pred, target), rel=1e-12)


@pytest.mark.parametrize("name", LOSSES)
def test_loss_backward_matches_finite_differences(name):
    loss, pred, target, _ = LOSSES[name]
    pred, t = pred.copy(), xpnet.asarray(target)
    loss.forward(xpnet.asarray(pred), t)
    analytic = _host(loss.backward())
    numeric = _numeric_gradient(lambda: float(loss.forward(xpnet.asarray(pred), t)), pred)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------- numbers worked out on paper
def test_values_worked_out_by_hand():
    # softmax of (0, ln 2, ln 3) is (1, 2, 3) / 6
    probs = _host(nn.Softmax().forward(xpnet.asarray(np.log([[1.0, 2.0, 3.0]]))))
    np.testing.assert_allclose(probs, [[1 / 6, 2 / 6, 3 / 6]], rtol=1e-14)
    # equal logits over K classes: cross-entropy ln K, gradient (1/K - onehot) / N
    ce = losses.SoftmaxCrossEntropy()
    assert float(ce.forward(xpnet.asarray(np.zeros((2, 10))), xpnet.asarray(np.array([3, 7])))) == pytest.approx(
        math.log(10), rel=1e-14)
    expected = np.full((2, 10), 0.1)
    expected[0, 3] -= 1.0
    expected[1, 7] -= 1.0
    np.testing.assert_allclose(_host(ce.backward()), expected / 2, rtol=1e-14)
    # a coin-flip prediction costs ln 2 per output, whatever the target
    bce = losses.BinaryCrossEntropy(from_logits=True)
    value = bce.forward(xpnet.asarray(np.zeros((4, 1))), xpnet.asarray(np.array([[0.0], [1.0], [1.0], [0.0]])))
    assert float(value) == pytest.approx(math.log(2), rel=1e-14)
    # half the sum of squares per sample: ((1 + 4) / 2 + (9 + 0) / 2) / 2 = 3.5, gradient (pred - target) / N
    mse = losses.MeanSquaredError()
    assert float(mse.forward(xpnet.asarray(np.array([[1.0, 2.0], [3.0, 0.0]])),
                             xpnet.asarray(np.zeros((2, 2))))) == pytest.approx(3.5, rel=1e-15)
    np.testing.assert_allclose(_host(mse.backward()), [[0.5, 1.0], [1.5, 0.0]], rtol=1e-15)
    # Linear with W = [[1, 2], [3, 4]], b = [10, 20]: [1, 1] -> [14, 26]
    layer = nn.Linear(2, 2)
    layer.params["W"], layer.params["b"] = xpnet.asarray(np.array([[1.0, 2.0], [3.0, 4.0]])), xpnet.asarray(
        np.array([10.0, 20.0]))
    np.testing.assert_array_equal(_host(layer.forward(xpnet.asarray(np.ones((1, 2))))), [[14.0, 26.0]])
    # sigmoid(0) = 1/2, tanh(ln 2) = 3/5 (e^{2 ln 2} = 4, (4 - 1) / (4 + 1))
    assert _host(nn.Sigmoid().forward(xpnet.asarray(np.zeros((1, 1)))))[0, 0] == 0.5
    assert _host(nn.Tanh().forward(xpnet.asarray(np.full((1, 1), math.log(2)))))[0, 0] == pytest.approx(0.6, rel=1e-15)
