"""Bool targets, as NumPy comparisons make them (``y > 0.5``, ``y[:, None] == classes``),
mean the same numbers on every backend: in fit, evaluate, validation data, the loss
classes, the functional losses, the metrics and the scikit-learn estimators. And the
dtype error for non-float input does not offer a model conversion that cannot work."""

import numpy as np
import pytest

import xpnet
from xpnet import functional as F
from xpnet import losses, metrics, nn
from xpnet.errors import DtypeMismatchError, LabelError

RNG = np.random.default_rng(11)
X = RNG.random((48, 4))
LABELS = (X[:, 0] + 0.3 * X[:, 1] > 0.6).astype(np.int64)
ONEHOT3 = RNG.integers(0, 3, 48)[:, None] == np.arange(3)

# name: (loss, bool targets, the numeric targets they stand for). Three outputs for
# all, so JAX compiles each shape once; the other target shapes of the element-wise
# losses are covered per loss below, without training.
FIT_CASES = {
    "labels-cross_entropy": ("cross_entropy", LABELS.astype(bool), LABELS),
    "onehot-cross_entropy": ("cross_entropy", ONEHOT3, ONEHOT3.astype(np.float64)),
    "multilabel-bce_logits": ("bce_logits", X[:, :3] > 0.5, (X[:, :3] > 0.5).astype(np.float64)),
}


def _train(loss, y, device):
    with xpnet.using(device, dtype="float64"):
        xpnet.random.seed(0)
        model = nn.Sequential(nn.Linear(4, 3))
        history = xpnet.fit(model, loss, X[:32], y[:32], epochs=2, batch_size=16, seed=1, progress=False,
                            validation_data=(X[32:], y[32:]))
        scores = xpnet.evaluate(model, loss, X, y)
    return history, scores, [xpnet.to_numpy(p.value) for p in model.parameters()]


@pytest.mark.parametrize("case", FIT_CASES)
def test_fit_and_evaluate_take_bool_targets_as_the_numbers_they_stand_for(case, xp_device):
    loss, y_bool, y_num = FIT_CASES[case]
    h_bool, s_bool, p_bool = _train(loss, y_bool, xp_device)
    h_num, s_num, p_num = _train(loss, y_num, xp_device)
    assert h_bool.history.keys() == h_num.history.keys()
    for key in h_num.history:
        np.testing.assert_allclose(h_bool.history[key], h_num.history[key], rtol=1e-12, err_msg=key)
    assert s_bool == pytest.approx(s_num, rel=1e-12)
    for a, b in zip(p_bool, p_num, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


LOSS_CASES = {
    "ce-labels": (losses.SoftmaxCrossEntropy, (8, 2), LABELS[:8].astype(bool), LABELS[:8]),
    "ce-onehot": (losses.SoftmaxCrossEntropy, (8, 3), ONEHOT3[:8], ONEHOT3[:8].astype(np.float64)),
    "bce": (losses.BinaryCrossEntropy, (8, 3), X[:8, :3] > 0.5, (X[:8, :3] > 0.5).astype(np.float64)),
    "bce-column": (lambda: losses.BinaryCrossEntropy(from_logits=True), (8, 1), LABELS[:8].astype(bool), LABELS[:8]),
    "mse": (losses.MeanSquaredError, (8, 3), X[:8, :3] > 0.5, (X[:8, :3] > 0.5).astype(np.float64)),
    "poisson": (losses.PoissonLoss, (8, 3), X[:8, :3] > 0.5, (X[:8, :3] > 0.5).astype(np.float64)),
}


@pytest.mark.parametrize("case", LOSS_CASES)
def test_loss_forward_and_validate_take_bool_targets(case, xp_device):
    factory, shape, t_bool, t_num = LOSS_CASES[case]
    pred = RNG.random(shape)  # in (0, 1): probabilities for bce, logits or rates for the rest
    with xpnet.using(xp_device, dtype="float64"):
        p, tb = xpnet.asarray(pred), xpnet.asarray(t_bool)
        tn = xpnet.asarray(t_num, dtype=None if t_num.dtype.kind == "i" else "float64")
    loss = factory()
    loss.validate_target(p.shape, tb)
    expected = float(loss.forward(p, tn))
    expected_grad = xpnet.to_numpy(loss.backward())
    assert float(loss.forward(p, tb)) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(xpnet.to_numpy(loss.backward()), expected_grad, rtol=1e-12)


def test_bool_rows_that_are_not_one_hot_are_refused_as_such(xp_device):
    rows = np.array([[True, True, False], [False, False, False]])
    with xpnet.using(xp_device):
        logits, target = xpnet.asarray(np.zeros((2, 3))), xpnet.asarray(rows)
    with pytest.raises(LabelError, match=r"one-hot rows.*row 0 of the targets is \[1\.0, 1\.0, 0\.0\] \(2 such"):
        losses.SoftmaxCrossEntropy().forward(logits, target)


FUNCTIONAL = [F.nll_loss, F.softmax_cross_entropy, F.softmax_cross_entropy_backward, F.cross_entropy,
              F.binary_cross_entropy, F.binary_cross_entropy_backward, F.binary_cross_entropy_with_logits,
              F.binary_cross_entropy_with_logits_backward, F.mean_squared_error, F.mean_squared_error_backward]


@pytest.mark.parametrize("fn", FUNCTIONAL, ids=lambda f: f.__name__)
def test_functional_losses_take_bool_targets_as_zero_one(fn, xp_device):
    pred = RNG.random((8, 3)) * 0.8 + 0.1  # probabilities away from the clip for every function
    with xpnet.using(xp_device, dtype="float64"):
        p, tb, tf = xpnet.asarray(pred), xpnet.asarray(ONEHOT3[:8]), xpnet.asarray(ONEHOT3[:8], dtype="float64")
    np.testing.assert_allclose(xpnet.to_numpy(fn(p, tb)), xpnet.to_numpy(fn(p, tf)), rtol=1e-12)
    assert xpnet.backend.dtype_name(fn(p, tb).dtype) == "float64"


def test_metrics_take_bool_true_labels_on_the_device(xp_device):
    scores = RNG.random((48, 3))
    probs = RNG.random(48)
    with xpnet.using(xp_device, dtype="float64"):
        onehot, labels = xpnet.asarray(ONEHOT3), xpnet.asarray(LABELS.astype(bool))
        s, p = xpnet.asarray(scores), xpnet.asarray(probs)
    onehot_labels = np.argmax(ONEHOT3, axis=1)
    assert metrics.accuracy(onehot, s) == pytest.approx(np.mean(scores.argmax(1) == onehot_labels))
    assert metrics.accuracy(labels, p) == pytest.approx(np.mean((probs > 0.5) == LABELS))
    assert metrics.top_k_accuracy(onehot, s, k=2) == metrics.top_k_accuracy(onehot_labels, scores, k=2)
    assert metrics.confusion_matrix(onehot, s) == metrics.confusion_matrix(onehot_labels, scores.argmax(1))
    assert metrics.binary_accuracy(labels, p) == pytest.approx(np.mean((probs > 0.5) == LABELS))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 5 iterations, on purpose
@pytest.mark.parametrize("device", ["cpu", "strict"])
def test_sklearn_classifier_keeps_bool_classes_as_scikit_learn_does(device):
    sklearn = pytest.importorskip("sklearn.neural_network")
    from xpnet.sklearn import MLPClassifier

    y = LABELS.astype(bool)
    ours = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0, device=device).fit(X, y)
    theirs = sklearn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, y)
    assert ours.classes_.dtype == theirs.classes_.dtype == np.bool_
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.predict(X).dtype == np.bool_
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


@pytest.mark.parametrize("dtype", ["int64", "bool", "uint8"])
def test_dtype_error_for_non_float_input_offers_no_model_conversion(dtype, xp_device):
    with xpnet.using(xp_device):
        model = nn.Sequential(nn.Linear(3, 2))
        x = xpnet.asarray(np.ones((4, 3), dtype=dtype))
    with pytest.raises(DtypeMismatchError) as info:
        model.forward(x)
    message = str(info.value)
    assert f"got {dtype} input" in message and "xpnet.asarray(x, dtype='float32')" in message
    assert "model.to(" not in message and "cannot take " + dtype in message


def test_dtype_error_for_other_float_input_still_offers_model_conversion(xp_device):
    with xpnet.using(xp_device, dtype="float32"):
        model = nn.Sequential(nn.Linear(3, 2))
    with xpnet.using(xp_device):
        x = xpnet.asarray(np.ones((4, 3)), dtype="float64")
    with pytest.raises(DtypeMismatchError, match=r"float64 input.*or the model with model\.to\(dtype='float64'\)"):
        model.forward(x)
