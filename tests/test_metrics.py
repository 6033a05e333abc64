"""Metrics: values against hand-computed answers, on every backend, as Python numbers."""

import numpy as np
import pytest

import xpnet
from xpnet import metrics
from xpnet.errors import ShapeError

Y = np.array([0, 1, 2, 2, 1, 0])
SCORES = np.array([
    [0.7, 0.2, 0.1],  # 0 right
    [0.1, 0.3, 0.6],  # 1 predicted 2; 1 is second
    [0.2, 0.2, 0.6],  # 2 right
    [0.5, 0.4, 0.1],  # 2 predicted 0; 2 is last
    [0.1, 0.8, 0.1],  # 1 right
    [0.3, 0.6, 0.1],  # 0 predicted 1; 0 is second
])


def test_values_on_every_backend(xp_device):
    y, s = xpnet.asarray(Y), xpnet.asarray(SCORES)
    acc = metrics.accuracy(y, s)
    assert isinstance(acc, float) and acc == pytest.approx(3 / 6)
    assert metrics.error(y, s) == pytest.approx(3 / 6)
    assert metrics.top_k_accuracy(y, s, k=2) == pytest.approx(5 / 6)
    assert metrics.top_k_accuracy(y, s, k=3) == pytest.approx(1.0)
    assert metrics.confusion_matrix(y, s) == [[1, 1, 0], [0, 1, 1], [1, 0, 1]]


def test_label_forms_agree():
    onehot = np.eye(3)[Y]
    predicted = SCORES.argmax(1)
    assert metrics.accuracy(Y, SCORES) == metrics.accuracy(onehot, SCORES) == metrics.accuracy(Y, predicted)
    assert metrics.confusion_matrix(Y, predicted, num_classes=4)[3] == [0, 0, 0, 0]


def test_binary_single_column():
    y = np.array([0, 1, 1, 0])
    probs = np.array([[0.2], [0.9], [0.4], [0.6]])
    assert metrics.accuracy(y, probs) == pytest.approx(0.5)
    logits = np.array([[-1.0], [2.0], [0.5], [-0.3]])
    assert metrics.accuracy(y, logits, threshold=0.0) == pytest.approx(1.0)


def test_errors():
    with pytest.raises(ShapeError, match="6 true labels but 5 predictions"):
        metrics.accuracy(Y, SCORES[:5])
    with pytest.raises(ShapeError, match="K>=4"):
        metrics.top_k_accuracy(Y, SCORES, k=4)
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.get("f1")
