"""Losses: parity on every backend, finite-difference gradients, the documented
conventions, and the errors for bad targets."""

import numpy as np
import pytest

import xpnet
from xpnet import gradcheck, losses, nn
from xpnet.errors import LabelError, NonFiniteLossError, ShapeError
from xpnet.testing import check_loss_parity

RNG = np.random.default_rng(5)
LOGITS = RNG.standard_normal((8, 4)) * 3
LABELS = np.array([0, 3, 1, 2, 2, 0, 3, 1])
ONEHOT = np.eye(4)[LABELS]
PROBS = 1 / (1 + np.exp(-RNG.standard_normal((8, 3))))
BITS = (RNG.random((8, 3)) > 0.5).astype(np.float64)

CASES = {
    "ce-labels": (losses.SoftmaxCrossEntropy, LOGITS, LABELS),
    "ce-onehot": (losses.SoftmaxCrossEntropy, LOGITS, ONEHOT),
    "bce-probs": (losses.BinaryCrossEntropy, PROBS, BITS),
    "bce-logits": (lambda: losses.BinaryCrossEntropy(from_logits=True), LOGITS[:, :3], BITS),
    "bce-column": (lambda: losses.BinaryCrossEntropy(from_logits=True), LOGITS[:, :1], BITS[:, 0]),
    "mse": (losses.MeanSquaredError, LOGITS, ONEHOT),
}


@pytest.mark.parametrize("name", CASES)
def test_parity(name, xp_device):
    factory, pred, target = CASES[name]
    report = check_loss_parity(factory, pred, target, devices=[xp_device])
    assert len(report.checked) == 2


@pytest.mark.parametrize("name", CASES)
def test_gradient_matches_finite_differences(name, xp_device):
    factory, pred, target = CASES[name]
    loss = factory()
    with xpnet.using(xp_device, dtype="float64"):
        p = xpnet.asarray(pred)
        t = xpnet.asarray(target)
    loss.forward(p, t)
    analytic = xpnet.to_numpy(loss.backward())
    numeric = gradcheck.numerical_gradient(lambda q: loss.forward(q, t), p)
    np.testing.assert_allclose(analytic.reshape(numeric.shape), numeric, rtol=1e-6, atol=1e-9)


def test_values_match_textbook_formulas():
    ce = losses.SoftmaxCrossEntropy()
    value = ce.forward(xpnet.asarray(LOGITS, dtype="float64"), xpnet.asarray(LABELS))
    shifted = LOGITS - LOGITS.max(1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    assert float(value) == pytest.approx(-logp[np.arange(8), LABELS].mean(), rel=1e-12)
    assert value.shape == ()

    mse = losses.MeanSquaredError()
    value = mse.forward(xpnet.asarray(LOGITS, dtype="float64"), xpnet.asarray(ONEHOT, dtype="float64"))
    assert float(value) == pytest.approx(0.5 * ((LOGITS - ONEHOT) ** 2).sum() / 8, rel=1e-12)
    np.testing.assert_allclose(xpnet.to_numpy(mse.backward()), (LOGITS - ONEHOT) / 8, rtol=1e-12)

    bce = losses.BinaryCrossEntropy()
    value = bce.forward(xpnet.asarray(PROBS, dtype="float64"), xpnet.asarray(BITS, dtype="float64"))
    expected = -(BITS * np.log(PROBS) + (1 - BITS) * np.log(1 - PROBS)).sum() / 8
    assert float(value) == pytest.approx(expected, rel=1e-12)


def test_ce_gradient_is_softmax_minus_onehot_over_n():
    ce = losses.SoftmaxCrossEntropy()
    ce.forward(xpnet.asarray(LOGITS, dtype="float64"), xpnet.asarray(LABELS))
    e = np.exp(LOGITS - LOGITS.max(1, keepdims=True))
    np.testing.assert_allclose(xpnet.to_numpy(ce.backward()), (e / e.sum(1, keepdims=True) - ONEHOT) / 8, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_probabilities_of_exactly_zero_and_one_are_finite(dtype):
    p = xpnet.asarray(np.array([[0.0, 1.0], [1.0, 0.0]]), dtype=dtype)
    t = xpnet.asarray(np.array([[1.0, 0.0], [1.0, 0.0]]), dtype=dtype)
    bce = losses.BinaryCrossEntropy()
    assert np.isfinite(float(bce.forward(p, t)))
    assert np.all(np.isfinite(xpnet.to_numpy(bce.backward())))


def test_loss_stays_on_device_and_in_dtype(xp_device):
    for dtype in ("float32", "float64"):
        with xpnet.using(xp_device, dtype=dtype):
            value = losses.SoftmaxCrossEntropy().forward(xpnet.asarray(LOGITS), xpnet.asarray(LABELS))
        assert xpnet.device_of(value) == xp_device
        assert xpnet.backend.dtype_name(value.dtype) == dtype


def test_labels_out_of_range():
    ce = losses.SoftmaxCrossEntropy()
    with pytest.raises(LabelError, match=r"labels in \[0, 4\].*4 outputs"):
        ce.forward(xpnet.asarray(LOGITS), xpnet.asarray(np.array([0, 1, 2, 3, 4, 0, 1, 2])))
    with pytest.raises(LabelError, match=r"\[-1, 3\]"):
        ce.forward(xpnet.asarray(LOGITS), xpnet.asarray(np.array([0, 1, 2, 3, -1, 0, 1, 2])))


def test_one_hot_of_wrong_width():
    with pytest.raises(LabelError, match="width must equal the number of classes 4"):
        losses.SoftmaxCrossEntropy().forward(xpnet.asarray(LOGITS), xpnet.asarray(np.eye(5)[LABELS]))


def test_batch_size_mismatch():
    with pytest.raises(ShapeError, match="same batch size"):
        losses.SoftmaxCrossEntropy().forward(xpnet.asarray(LOGITS), xpnet.asarray(LABELS[:5]))


def test_no_silent_broadcast_for_elementwise_losses():
    with pytest.raises(ShapeError, match="must match"):
        losses.MeanSquaredError().forward(xpnet.asarray(LOGITS), xpnet.asarray(LOGITS[:, :2]))
    # (N,) targets with (N, 1) predictions are reshaped, not broadcast to (N, N)
    bce = losses.BinaryCrossEntropy(from_logits=True)
    value = bce.forward(xpnet.asarray(LOGITS[:, :1]), xpnet.asarray(BITS[:, 0]))
    assert bce.backward().shape == (8, 1)
    z, t = LOGITS[:, 0], BITS[:, 0]
    expected = np.mean(np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z))))
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_check_finite():
    loss = losses.MeanSquaredError(check_finite=True)
    bad = np.array([[np.inf], [1.0]])
    with pytest.raises(NonFiniteLossError, match="MeanSquaredError is"):
        loss.forward(xpnet.asarray(bad), xpnet.asarray(np.zeros((2, 1))))
    nan = np.array([[np.nan], [1.0]])
    with pytest.raises(NonFiniteLossError, match="is nan"):
        loss.forward(xpnet.asarray(nan), xpnet.asarray(np.zeros((2, 1))))
    # without the flag there is no host read: the NaN comes back as a 0-d array
    unchecked = losses.MeanSquaredError().forward(xpnet.asarray(nan), xpnet.asarray(np.zeros((2, 1))))
    assert np.isnan(float(unchecked))


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        losses.MeanSquaredError().backward()


def test_model_gradcheck_through_each_loss(xp_device):
    xpnet.seed(3)
    with xpnet.using(xp_device, dtype="float64"):
        model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    x = RNG.standard_normal((5, 4))
    for loss, y in [
        (losses.SoftmaxCrossEntropy(), np.array([0, 2, 1, 1, 0])),
        (losses.BinaryCrossEntropy(from_logits=True), (RNG.random((5, 3)) > 0.5).astype(float)),
        (losses.MeanSquaredError(), RNG.standard_normal((5, 3))),
    ]:
        report = gradcheck.check_model(model, loss, x, y)
        assert {c.name for c in report.checks} == {"input", "0.W", "0.b", "2.W", "2.b"}
        report.raise_if_failed()
