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


def _score_sets(rng, n=120, k=7):
    """Continuous scores, heavily tied scores (3 distinct values), and all-equal scores."""
    return [rng.standard_normal((n, k)), rng.integers(0, 3, size=(n, k)).astype(float), np.zeros((n, k))]


def test_top1_is_accuracy_on_every_backend(xp_device):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, size=120)
    for scores in _score_sets(rng):
        yd, sd = xpnet.asarray(y), xpnet.asarray(scores, dtype="float64")
        assert metrics.top_k_accuracy(yd, sd, k=1) == pytest.approx(metrics.accuracy(yd, sd))
        assert metrics.top_k_accuracy(yd, sd, k=7) == pytest.approx(1.0)
    # Scores tied everywhere: argmax says class 0, so only class-0 samples are right.
    assert metrics.top_k_accuracy(xpnet.asarray(np.arange(10)), xpnet.asarray(np.zeros((10, 10))), k=1) == 0.1


def test_top_k_ties_break_like_argmax_first_index_wins(xp_device):
    # Row [1, 1, 1, 0]: class 0 ranks first, class 1 second, class 2 third, class 3 last.
    scores = xpnet.asarray(np.array([[1.0, 1.0, 1.0, 0.0]] * 4))
    for label, rank in enumerate([0, 1, 2, 3]):
        y = xpnet.asarray(np.full(4, label))
        for k in range(1, 5):
            assert metrics.top_k_accuracy(y, scores, k=k) == (1.0 if rank < k else 0.0), (label, k)
    assert metrics.top_k_accuracy(xpnet.asarray(np.arange(10)), xpnet.asarray(np.zeros((10, 10))), k=3) == 0.3


def test_top_k_nan_and_infinite_scores(xp_device):
    nan, inf = float("nan"), float("inf")
    scores = xpnet.asarray(np.array([
        [nan, 0.0, 1.0],    # true 0 is NaN: never a hit, not even with k = K
        [0.0, -inf, 1.0],   # true 0 is second; -inf elsewhere does not spoil its score
        [0.0, inf, 1.0],    # true 2 is second, below +inf
        [-inf, 0.0, 1.0],   # true 0 is -inf: last
        [-inf, -inf, -inf],  # all -inf: tied, class 0 first as argmax says
    ]))
    y = xpnet.asarray(np.array([0, 0, 2, 0, 1]))
    assert metrics.top_k_accuracy(y, scores, k=1) == pytest.approx(0.0)
    assert metrics.top_k_accuracy(y, scores, k=2) == pytest.approx(3 / 5)
    assert metrics.top_k_accuracy(y, scores, k=3) == pytest.approx(4 / 5)


def test_top_k_matches_scikit_learn():
    from sklearn.metrics import top_k_accuracy_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 7, size=120)
    continuous, tied, equal = _score_sets(rng)
    for k in (1, 2, 3, 6):
        expected = top_k_accuracy_score(y, continuous, k=k, labels=range(7))
        assert metrics.top_k_accuracy(y, continuous, k=k) == pytest.approx(expected)
        # scikit-learn's stable sort, reversed, ranks the LAST of tied classes first;
        # reversing the class order turns its rule into argmax's (first index wins).
        for scores in (tied, equal):
            expected = top_k_accuracy_score(6 - y, scores[:, ::-1], k=k, labels=range(7))
            assert metrics.top_k_accuracy(y, scores, k=k) == pytest.approx(expected)


MULTI_LABEL = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 1], [1, 1, 0]])


def test_binary_accuracy_is_element_wise(xp_device):
    y = xpnet.asarray(MULTI_LABEL)
    logits = xpnet.asarray(np.where(MULTI_LABEL == 1, 5.0, -5.0) + np.linspace(0, 0.1, 12).reshape(4, 3))
    assert metrics.binary_accuracy(y, logits, threshold=0.0) == pytest.approx(1.0)
    probs = xpnet.asarray(np.array([[0.9, 0.2, 0.4], [0.1, 0.6, 0.0], [0.3, 0.8, 0.7], [0.6, 0.7, 0.1]]))
    # wrong: (0, 2), (1, 1); 10 of 12 outputs right
    assert metrics.binary_accuracy(y, probs) == pytest.approx(10 / 12)
    assert metrics.binary_accuracy(xpnet.asarray(MULTI_LABEL.astype(float)), probs) == pytest.approx(10 / 12)
    # a single output column is the plain binary accuracy
    assert metrics.binary_accuracy(np.array([0, 1, 1, 0]), np.array([[0.2], [0.9], [0.4], [0.6]])) == 0.5


def test_binary_accuracy_errors():
    with pytest.raises(ShapeError, match=r"binary_accuracy: y_true of shape \(4, 2\) does not match y_pred "
                                         r"of shape \(4, 3\)"):
        metrics.binary_accuracy(MULTI_LABEL[:, :2], MULTI_LABEL.astype(float))
    with pytest.raises(TypeError, match=r"threshold must be a finite number, got str"):
        metrics.binary_accuracy(MULTI_LABEL, MULTI_LABEL.astype(float), threshold="0.5")
    with pytest.raises(ShapeError, match=r"y_true of shape \(4, 2\) does not match y_pred of shape \(4, 1\)"):
        metrics.binary_accuracy(MULTI_LABEL[:, :2], MULTI_LABEL[:, :1].astype(float))
    with pytest.raises(ShapeError, match=r"y_true of shape \(4, 3, 1\)"):
        metrics.binary_accuracy(MULTI_LABEL[..., None], MULTI_LABEL.astype(float))


def test_metric_functions_are_the_same_object_each_time():
    # The compiled training step is cached on the metric functions: a new function per
    # fit call would rebuild (retrace) the step every time.
    assert metrics.get("top3_accuracy")[1] is metrics.get("top3")[1]
    assert metrics.get("accuracy", task="binary")[1] is metrics.get("error", task="binary")[1]
