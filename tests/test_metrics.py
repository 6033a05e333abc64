"""Metrics: values against hand-computed answers, on every backend, as Python numbers."""

import numpy as np
import pytest

import xpnet
from xpnet import metrics
from xpnet.errors import LabelError, ShapeError

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


def test_integral_float_labels_are_labels(xp_device):
    # Thresholding [0., 1., 2.] at 0.5 would call both 1 and 2 "class 1": accuracy 1.0.
    y_true = xpnet.asarray(np.array([0.0, 1.0, 2.0, 2.0]), dtype="float64")
    y_pred = xpnet.asarray(np.array([0.0, 1.0, 1.0, 2.0]), dtype="float64")
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(3 / 4)
    assert metrics.confusion_matrix(y_true, y_pred) == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert metrics.accuracy(y_true, SCORES[:4]) == metrics.accuracy(Y[:4], SCORES[:4])
    assert metrics.top_k_accuracy(np.array([0.0, 1.0, 2.0, 2.0]), SCORES[:4], k=2) == pytest.approx(3 / 4)


def test_non_integral_true_labels_are_an_error():
    with pytest.raises(LabelError, match=r"accuracy: y_true are class labels and must be whole numbers >= 0; "
                                         r"element 1 is 0.5"):
        metrics.accuracy(np.array([0.0, 0.5, 1.0]), np.array([0, 1, 1]))
    with pytest.raises(LabelError, match=r"confusion_matrix: y_true .* element 0 is -1.0"):
        metrics.confusion_matrix(np.array([-1.0, 1.0]), np.array([0, 1]))
    with pytest.raises(LabelError, match=r"class labels must be integers 0..K-1, got strings such as 'cat'"):
        metrics.accuracy(np.array(["cat", "dog"]), np.array([0, 1]))


def test_single_column_of_probabilities_is_still_thresholded():
    y = np.array([0.0, 1.0, 1.0, 0.0])
    assert metrics.accuracy(y, np.array([[0.2], [0.9], [0.4], [0.6]])) == pytest.approx(0.5)
    assert metrics.accuracy(y, np.array([-1.5, 2.0, 0.5, -0.3]), threshold=0.0) == pytest.approx(1.0)


def test_metric_arguments():
    with pytest.raises(ValueError, match=r"top_k_accuracy: k must be an integer >= 1, got 0"):
        metrics.top_k_accuracy(Y, SCORES, k=0)
    with pytest.raises(TypeError, match=r"num_classes must be an integer >= 1 or None, got float 3.0"):
        metrics.confusion_matrix(Y, SCORES, num_classes=3.0)
    with pytest.raises(LabelError, match=r"labels must be in \[0, 1\] for 2 classes, got labels in \[0, 2\]"):
        metrics.confusion_matrix(Y, SCORES.argmax(1), num_classes=2)
    with pytest.raises(TypeError, match=r"threshold must be a finite number, got str"):
        metrics.accuracy(Y, SCORES, threshold="0.5")
    with pytest.raises(ShapeError, match=r"y_pred must have shape \(N,\) or \(N, K\), got \(6, 3, 1\)"):
        metrics.accuracy(Y, SCORES[..., None])
    with pytest.raises(TypeError, match=r"a metric must be named by a string"):
        metrics.get(None)
