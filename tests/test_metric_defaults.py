"""Which metrics fit and evaluate report for each loss, and what "accuracy" means there:
argmax for SoftmaxCrossEntropy, every output thresholded for BinaryCrossEntropy, none
for regression losses."""

import numpy as np
import pytest

import xpnet
from xpnet import losses, nn, optim

Y = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 1], [1, 1, 0]], dtype=float)
LOGITS = np.where(Y == 1, 5.0, -5.0) + np.linspace(0.0, 0.1, 12).reshape(4, 3)
PROBS = np.array([[0.9, 0.2, 0.4], [0.1, 0.6, 0.0], [0.3, 0.8, 0.7], [0.6, 0.7, 0.1]])  # 10 of 12 right


def test_multi_label_bce_accuracy_is_element_wise(xp_device):
    perfect = xpnet.evaluate(nn.Identity(), losses.BinaryCrossEntropy(from_logits=True), LOGITS, Y)
    assert perfect["accuracy"] == pytest.approx(1.0)
    result = xpnet.evaluate(nn.Identity(), "bce", PROBS, Y, metrics=["accuracy", "error"])
    assert result["accuracy"] == pytest.approx(10 / 12)
    assert result["error"] == pytest.approx(2 / 12)


def test_single_output_bce_and_one_hot_cross_entropy_keep_their_accuracy(xp_device):
    y = np.array([0.0, 1.0, 1.0, 0.0])
    assert xpnet.evaluate(nn.Identity(), "bce", np.array([[0.2], [0.9], [0.4], [0.6]]), y)["accuracy"] == 0.5
    logits = np.array([[-1.0], [2.0], [0.5], [-0.3]])
    assert xpnet.evaluate(nn.Identity(), losses.BinaryCrossEntropy(from_logits=True), logits, y)["accuracy"] == 1.0
    # one-hot (N, K) targets of a softmax are one class per sample: argmax, not per output
    scores = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.0]])
    onehot = np.eye(3)[[0, 1, 1, 2]]
    assert xpnet.evaluate(nn.Identity(), "cross_entropy", scores, onehot)["accuracy"] == 0.5


@pytest.mark.parametrize("compile", [False, "auto"])
def test_fit_reports_the_element_wise_accuracy(compile):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5))
    Y3 = (X[:, :3] > 0).astype(float)
    model = nn.Sequential(nn.Linear(5, 3))
    loss = losses.BinaryCrossEntropy(from_logits=True)
    history = xpnet.fit(model, loss, X, Y3, optimizer=optim.SGD(model.parameters(), lr=0.5), epochs=40,
                        batch_size=16, shuffle=False, compile=compile, progress=False)
    assert history["accuracy"][-1] > 0.9
    out = xpnet.to_numpy(model.predict(X))
    expected = np.mean((out > 0.0) == (Y3 > 0.5))
    assert xpnet.evaluate(model, loss, X, Y3)["accuracy"] == pytest.approx(expected)


def _counts():
    rng = np.random.default_rng(0)
    return rng.standard_normal((40, 5)), rng.poisson(2.0, size=40).astype(float)


class _HalfSquares(losses.Loss):
    """A user's regression loss: no task declared."""

    def _target(self, pred, target):
        return target

    def _value(self, pred, target):
        return xpnet.backend.array_namespace(pred).sum((pred - target) ** 2) / 2

    def _grad(self, pred, target):
        return pred - target


@pytest.mark.parametrize("loss", ["poisson", "mse", _HalfSquares()], ids=["poisson", "mse", "user"])
def test_regression_losses_report_no_accuracy(loss):
    X, counts = _counts()
    model = nn.Sequential(nn.Linear(5, 1))
    history = xpnet.fit(model, loss, X, counts[:, None], epochs=2, progress=False)
    assert set(history.history) == {"loss", "lr"}
    assert set(xpnet.evaluate(model, loss, X, counts[:, None])) == {"loss"}
    with pytest.raises(ValueError, match=r"metrics \['accuracy'\] need class labels; .* is a regression loss"):
        xpnet.fit(model, loss, X, counts[:, None], metrics=["accuracy"], epochs=1, progress=False)
    with pytest.raises(ValueError, match="regression loss"):
        xpnet.evaluate(model, loss, X, counts[:, None], metrics=["accuracy"])


class _Hinge(_HalfSquares):
    """A user's classification loss written from scratch: it says so."""

    task = "binary"


def test_a_user_classification_loss_declares_its_task():
    class Focal(losses.SoftmaxCrossEntropy):
        pass

    X, counts = _counts()
    y = (counts > 2).astype(int)
    assert "accuracy" in xpnet.evaluate(nn.Sequential(nn.Linear(5, 2)), Focal(), X, y)
    assert xpnet.evaluate(nn.Identity(), _Hinge(), PROBS, Y)["accuracy"] == pytest.approx(10 / 12)

    class Typo(_HalfSquares):
        task = "multilabel"

    with pytest.raises(ValueError, match=r"unknown task 'multilabel' .* 'multiclass' .* or 'binary'"):
        xpnet.evaluate(nn.Identity(), Typo(), PROBS, Y)
