"""Sample weights in xpnet's losses, and the Poisson loss: parity on every backend,
finite-difference gradients in float64, and the weighted-mean convention."""

import numpy as np
import pytest

import xpnet
from xpnet import gradcheck, losses
from xpnet.errors import LabelError, ShapeError
from xpnet.testing import check_loss_parity

RNG = np.random.default_rng(11)
LOGITS = RNG.standard_normal((8, 4)) * 2
LABELS = np.array([0, 3, 1, 2, 2, 0, 3, 1])
ONEHOT = np.eye(4)[LABELS]
PROBS = 1 / (1 + np.exp(-RNG.standard_normal((8, 3))))
BITS = (RNG.random((8, 3)) > 0.5).astype(np.float64)
COUNTS = RNG.poisson(2.0, size=(8, 2)).astype(np.float64)  # zeros included: 0 log 0 = 0
WEIGHTS = RNG.uniform(0.2, 3.0, size=8)

CASES = {
    "ce-labels": (losses.SoftmaxCrossEntropy, LOGITS, LABELS),
    "ce-onehot": (losses.SoftmaxCrossEntropy, LOGITS, ONEHOT),
    "bce-probs": (losses.BinaryCrossEntropy, PROBS, BITS),
    "bce-logits": (lambda: losses.BinaryCrossEntropy(from_logits=True), LOGITS[:, :3], BITS),
    "bce-column": (lambda: losses.BinaryCrossEntropy(from_logits=True), LOGITS[:, :1], BITS[:, 0]),
    "mse": (losses.MeanSquaredError, LOGITS, ONEHOT),
    "poisson": (losses.PoissonLoss, LOGITS[:, :2], COUNTS),
    "poisson-column": (losses.PoissonLoss, LOGITS[:, :1], COUNTS[:, 0]),
}


class _Weighted:
    """A loss whose forward always passes the same sample weights (for the harness)."""

    def __init__(self, loss, weights):
        self.loss, self.weights = loss, weights

    def forward(self, pred, target):
        w = xpnet.backend.device_of(pred).asarray(self.weights, dtype=pred.dtype)
        return self.loss.forward(pred, target, sample_weight=w)

    def backward(self):
        return self.loss.backward()


def _on(device, *arrays):
    with xpnet.using(device, dtype="float64"):
        return [xpnet.asarray(a) for a in arrays]


@pytest.mark.parametrize("name", CASES)
def test_weighted_parity(name, xp_device):
    factory, pred, target = CASES[name]
    report = check_loss_parity(lambda: _Weighted(factory(), WEIGHTS), pred, target, devices=[xp_device])
    assert len(report.checked) == 2


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_matches_finite_differences(name, weighted, xp_device):
    factory, pred, target = CASES[name]
    loss = factory()
    p, t, w = _on(xp_device, pred, target, WEIGHTS)
    w = w if weighted else None
    loss.forward(p, t, sample_weight=w)
    analytic = xpnet.to_numpy(loss.backward())
    numeric = gradcheck.numerical_gradient(lambda q: loss.forward(q, t, sample_weight=w), p)
    np.testing.assert_allclose(analytic.reshape(numeric.shape), numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", CASES)
def test_weights_give_the_weighted_mean_of_per_sample_losses(name):
    factory, pred, target = CASES[name]
    per_sample = np.array([float(factory().forward(*_on("cpu", pred[i:i + 1], target[i:i + 1])))
                           for i in range(pred.shape[0])])
    p, t, w = _on("cpu", pred, target, WEIGHTS)
    weighted = float(factory().forward(p, t, sample_weight=w))
    assert weighted == pytest.approx(np.sum(WEIGHTS * per_sample) / np.sum(WEIGHTS), rel=1e-12)
    # Equal weights are the plain mean, whatever their scale; integer weights repeat rows.
    assert float(factory().forward(p, t, sample_weight=w * 0 + 3.0)) == pytest.approx(float(factory().forward(p, t)),
                                                                                       rel=1e-12)
    repeats = np.array([1, 2, 1, 3, 1, 1, 2, 1])
    rp, rt = _on("cpu", np.repeat(pred, repeats, axis=0), np.repeat(target, repeats, axis=0))
    loss_w, loss_r = factory(), factory()
    weighted = float(loss_w.forward(p, t, sample_weight=xpnet.asarray(repeats, dtype="float64", device="cpu")))
    assert weighted == pytest.approx(float(loss_r.forward(rp, rt)), rel=1e-12)
    grad_r = np.add.reduceat(xpnet.to_numpy(loss_r.backward()), np.r_[0, np.cumsum(repeats)[:-1]], axis=0)
    np.testing.assert_allclose(xpnet.to_numpy(loss_w.backward()), grad_r, rtol=1e-12, atol=1e-15)


def test_poisson_value_and_gradient_match_the_formula():
    z, t = LOGITS[:, :2], COUNTS
    loss = losses.PoissonLoss()
    p, tt = _on("cpu", z, t)
    value = float(loss.forward(p, tt))
    t_log_t = np.where(t > 0, t * np.log(np.where(t > 0, t, 1.0)), 0.0)
    assert value == pytest.approx(np.sum(np.exp(z) - t * z + t_log_t - t) / 8, rel=1e-12)
    np.testing.assert_allclose(xpnet.to_numpy(loss.backward()), (np.exp(z) - t) / 8, rtol=1e-12)
    at_target = losses.PoissonLoss().forward(*_on("cpu", np.log(t + 1.0), t + 1.0))
    assert float(at_target) == pytest.approx(0.0, abs=1e-12)  # half the deviance: 0 at a perfect fit
    assert isinstance(losses.get("poisson"), losses.PoissonLoss)


def test_sample_weight_errors():
    p, t = _on("cpu", LOGITS, ONEHOT)
    with pytest.raises(ShapeError, match=r"one weight per sample, shape \(8,\)"):
        losses.MeanSquaredError().forward(p, t, sample_weight=xpnet.asarray(np.ones(7), device="cpu"))
    with pytest.raises(ValueError, match="different backends"):
        losses.MeanSquaredError().forward(p, t, sample_weight=xpnet.asarray(np.ones(8), device="strict"))


@pytest.mark.parametrize("name", ["poisson", "poisson-column"])
def test_poisson_parity(name, xp_device):
    factory, pred, target = CASES[name]
    assert len(check_loss_parity(factory, pred, target, devices=[xp_device]).checked) == 2


def test_poisson_rejects_negative_targets_naming_the_row():
    p, t = _on("cpu", LOGITS[:, :2], COUNTS)
    bad = COUNTS.copy()
    bad[5, 1] = -1.0
    with pytest.raises(LabelError, match=r"counts or rates >= 0 .*; row 5 of the targets is \[.*-1\.0\]"):
        losses.PoissonLoss().forward(p, _on("cpu", bad)[0])
    assert np.isfinite(float(losses.PoissonLoss().forward(p, t)))
