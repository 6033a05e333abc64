"""Every mistake gets a clear answer: fit/evaluate/predict arguments and data, loss
targets, layer constructors, state dicts, gradients from elsewhere, missing
gradients. Each error names the argument, what was expected and what arrived, and
comes before any training step."""

import math
import re

import numpy as np
import pytest

import xpnet
from xpnet import callbacks, gradcheck, losses, nn, optim
from xpnet.errors import DeviceMismatchError, LabelError, MissingGradientError, NonFiniteLossError, ShapeError

RNG = np.random.default_rng(8)
X = RNG.standard_normal((40, 4))
Y = RNG.integers(0, 3, 40)


def model_and_optimizer():
    xpnet.seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    return model, optim.SGD(model.parameters(), lr=0.1)


def fit_fails(exc, match, *, X=X, y=Y, loss="cross_entropy", model_tail=None, **kwargs):
    """fit raises ``exc`` matching ``match`` before the optimizer took any step."""
    model, opt = model_and_optimizer()
    if model_tail is not None:  # another last layer
        model = nn.Sequential(model[0], model[1], model_tail)
        opt = optim.SGD(model.parameters(), lr=0.1)
    before = xpnet.to_numpy(model[0].params["W"]).copy()
    kwargs.setdefault("epochs", 2)
    kwargs.setdefault("progress", False)
    with pytest.raises(exc, match=match):
        xpnet.fit(model, loss, X, y, optimizer=opt, **kwargs)
    assert opt.t == 0
    np.testing.assert_array_equal(xpnet.to_numpy(model[0].params["W"]), before)


# ------------------------------------------------------------------ fit's settings
BAD_SETTINGS = [
    (dict(epochs=0), ValueError, r"epochs must be an integer >= 1, got 0"),
    (dict(epochs=-1), ValueError, r"epochs must be an integer >= 1, got -1"),
    (dict(epochs=2.0), TypeError, r"epochs must be an integer >= 1, got float 2.0"),
    (dict(epochs="3"), TypeError, r"epochs .* got str '3'"),
    (dict(batch_size=0), ValueError, r"batch_size must be an integer >= 1 or None, got 0"),
    (dict(batch_size=8.5), TypeError, r"batch_size .* got float 8.5"),
    (dict(batch_size=True), TypeError, r"batch_size .* got bool True"),
    (dict(batch_size=64, drop_last=True), ValueError, r"batch_size=64 with drop_last=True drops all 40"),
    (dict(shuffle="yes"), TypeError, r"shuffle must be True or False, got str 'yes'"),
    (dict(drop_last=1), TypeError, r"drop_last must be True or False, got int 1"),
    (dict(progress=None), TypeError, r"progress must be True or False"),
    (dict(seed=-3), ValueError, r"seed must be an integer >= 0 or None, got -3"),
    (dict(seed=1.5), TypeError, r"seed .* got float 1.5"),
    (dict(validation_split=1.5), ValueError, r"validation_split must be a number in \(0, 1\), got 1.5"),
    (dict(validation_split=float("nan")), ValueError, r"validation_split must be a number in \(0, 1\)"),
    (dict(validation_split="0.2"), TypeError, r"validation_split .* got str"),
    (dict(validation_data=X), TypeError, r"validation_data \(X_val, y_val\) must be a pair"),
    (dict(validation_data=(X, Y, Y)), TypeError, r"validation_data \(X_val, y_val\) must be a pair"),
    (dict(metrics=[3]), TypeError, r"metrics must be None, a metric name or a list of names"),
    (dict(metrics="f1"), ValueError, r"unknown metric 'f1'"),
    (dict(callbacks=callbacks.EarlyStopping()), TypeError, r"wrap it in a list: callbacks=\[EarlyStopping"),
    (dict(callbacks=["early"]), TypeError, r"callbacks\[0\] must be an xpnet.callbacks.Callback, got str"),
]


def _setting_id(kwargs: dict) -> str:
    """A test id that is the same in every run (no array values, no object addresses),
    as pytest-xdist needs: each worker must collect the same ids."""
    plain = (int, float, str, list, type(None))
    return ",".join(f"{k}={v!r}" if isinstance(v, plain) else f"{k}={type(v).__name__}" for k, v in kwargs.items())


@pytest.mark.parametrize(("kwargs", "exc", "match"), BAD_SETTINGS, ids=[_setting_id(k) for k, _, _ in BAD_SETTINGS])
def test_fit_settings_are_checked_before_training(kwargs, exc, match):
    fit_fails(exc, match, **kwargs)


def test_validation_set_of_the_wrong_width_is_named_before_the_first_step():
    fit_fails(ShapeError, r"validation set's X_val has shape \(10, 5\) but the training X has \(40, 4\)",
              validation_data=(RNG.standard_normal((10, 5)), Y[:10]))
    fit_fails(LabelError, r"validation set's y_val: .*labels in \[7, 7\] but the model has 3 outputs",
              validation_data=(X[:10], np.full(10, 7)))


def test_string_and_float_class_labels():
    fit_fails(LabelError, r"class labels must be integers 0..K-1, got strings such as 'b'.*LabelEncoder",
              y=np.array(["b", "a", "c", "a"] * 10))
    fit_fails(LabelError, r"class labels must be integers 0..2, got floating-point values.*y.astype\(int\)",
              y=Y.astype(np.float64))
    fit_fails(ShapeError, r"expects integer labels of shape \(N,\), got \(40, 3\); one-hot rows are targets of "
                          r"shape \(N, 3\) as floats: y.astype\(float\)", y=np.eye(3, dtype=int)[Y])


def test_shape_error_names_the_datas_shape_not_the_probes():
    fit_fails(ShapeError, r"X of shape \(40, 3\) does not fit the model: Linear\(4→6\) got input of shape \(40, 3\)",
              X=X[:, :3])


def test_non_finite_inputs_are_refused_at_entry():
    bad = X.copy()
    bad[7, 2] = np.nan
    fit_fails(ValueError, r"X contains 1 NaN or infinite value\(s\), the first in row 7", X=bad)
    fit_fails(ValueError, r"X_val contains 1 NaN", validation_data=(bad, Y))
    target = RNG.standard_normal((40, 3))
    target[3, 0] = np.inf
    fit_fails(ValueError, r"y contains 1 NaN or infinite value\(s\), the first in row 3", loss="mse", y=target,
              metrics=())
    model, _ = model_and_optimizer()
    with pytest.raises(ValueError, match=r"evaluate: X contains 1 NaN"):
        xpnet.evaluate(model, "cross_entropy", bad, Y)


@pytest.mark.parametrize("device", ["cpu", "strict"])
def test_the_entry_check_neither_misses_nor_invents_non_finite_values(device):
    """The first pass sums each array: large finite values that overflow the sum are
    still accepted, and +inf beside -inf (a NaN sum) is still found."""
    from xpnet._validate import check_finite

    big = np.full((50, 4), 3e38, dtype=np.float32)  # finite; their float32 sum is inf
    check_finite("fit", {"X": xpnet.asarray(big, device=device)})
    both = np.zeros((50, 4))
    both[5, 1], both[9, 0] = np.inf, -np.inf
    with pytest.raises(ValueError, match=r"fit: X contains 2 NaN or infinite value\(s\), the first in row 5"):
        check_finite("fit", {"ok": xpnet.asarray(np.ones(3), device=device), "X": xpnet.asarray(both, device=device)})


def test_a_diverging_run_stops_and_names_the_epoch():
    # Linear regression with a far too large step: |w| grows ~100x per step until it
    # overflows; the check sits where the epoch's loss is read anyway.
    x = RNG.standard_normal((64, 3)) * 10
    y = x @ np.array([[1.0], [2.0], [3.0]])
    model = nn.Sequential(nn.Linear(3, 1))
    opt = optim.SGD(model.parameters(), lr=1.0)
    with np.errstate(over="ignore", invalid="ignore"), \
            pytest.raises(NonFiniteLossError, match=r"loss became (nan|inf) in epoch \d+.*smaller learning rate"):
        xpnet.fit(model, "mse", x, y, optimizer=opt, epochs=200, batch_size=None, progress=False)
    assert opt.t < 200  # it stopped, not trained every epoch at loss nan


def test_callbacks_check_what_they_monitor_at_the_start(tmp_path):
    fit_fails(ValueError, r"EarlyStopping: cannot monitor 'val_los'",
              validation_data=(X, Y), callbacks=[callbacks.EarlyStopping(monitor="val_los")])
    fit_fails(ValueError, r"EarlyStopping: cannot monitor 'acuracy'",
              callbacks=[callbacks.EarlyStopping(monitor="acuracy")])
    path = tmp_path / "ck-{val_loss:.3f}.npz"
    fit_fails(ValueError, r"ModelCheckpoint: path .* uses val_loss, which this run does not log",
              callbacks=[callbacks.ModelCheckpoint(path)])
    assert not list(tmp_path.iterdir())
    # with validation data the same callbacks run
    model, opt = model_and_optimizer()
    history = xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=2, validation_data=(X, Y), progress=False,
                        callbacks=[callbacks.EarlyStopping(monitor="val_loss"), callbacks.ModelCheckpoint(path)])
    assert history.epochs == 2 and len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize(("make", "exc", "match"), [
    (lambda: callbacks.EarlyStopping(patience=2.5), TypeError, r"EarlyStopping: patience must be an integer >= 0"),
    (lambda: callbacks.EarlyStopping(mode="mx"), ValueError, r"mode must be one of 'auto', 'min', 'max', got 'mx'"),
    (lambda: callbacks.EarlyStopping(min_delta=-1), ValueError, r"min_delta must be a number >= 0"),
    (lambda: callbacks.EarlyStopping(monitor=None), TypeError, r"monitor must be a logged name"),
    (lambda: callbacks.ModelCheckpoint(3), TypeError, r"path must be a str or os.PathLike, got int"),
    (lambda: callbacks.ModelCheckpoint("ck-{}.npz"), ValueError, r"positional field"),
    (lambda: callbacks.ModelCheckpoint("ck-{epoch.npz"), ValueError, r"not a valid format string"),
    (lambda: callbacks.LearningRateScheduler(0.5), TypeError, r"LRSchedule or a function"),
])
def test_callback_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_optimizer_of_another_model_is_refused():
    model, _ = model_and_optimizer()
    other, other_opt = model_and_optimizer()
    with pytest.raises(ValueError, match=r"optimizer updates Parameter\(Linear.W.*not a parameter of this model"):
        xpnet.fit(model, "cross_entropy", X, Y, optimizer=other_opt, epochs=1, progress=False)


def test_targets_are_checked_once_per_fit_not_per_step():
    calls = []

    class Counting(losses.SoftmaxCrossEntropy):
        def validate_target(self, pred_shape, target):
            calls.append(target.shape[0])
            super().validate_target(pred_shape, target)

    model, opt = model_and_optimizer()
    xpnet.fit(model, Counting(), X, Y, optimizer=opt, epochs=3, batch_size=8, validation_data=(X[:10], Y[:10]),
              progress=False)
    assert opt.t == 15
    assert calls == [40, 10]  # the training targets and the validation targets, once each


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_evaluate_and_predict_batch_size(batch_size):
    model, _ = model_and_optimizer()
    exc = TypeError if isinstance(batch_size, float) else ValueError
    with pytest.raises(exc, match=rf"evaluate: batch_size must be an integer >= 1 or None, got .*{batch_size}"):
        xpnet.evaluate(model, "cross_entropy", X, Y, batch_size=batch_size)
    for method in (model.predict, model.predict_proba, model.predict_classes):
        with pytest.raises(exc, match=rf"predict: batch_size must be an integer >= 1 or None, got .*{batch_size}"):
            method(X, batch_size=batch_size)


def test_predict_shape_error_names_the_data():
    model, _ = model_and_optimizer()
    with pytest.raises(ShapeError, match=r"x of shape \(40, 5\) does not fit the model: .*shape \(40, 5\)"):
        model.predict(RNG.standard_normal((40, 5)), batch_size=16)


# ------------------------------------------------------------------------ losses
def test_bce_targets_outside_zero_one():
    bce = losses.BinaryCrossEntropy(from_logits=True)
    target = np.array([[0.0], [1.0], [1.5], [0.2]])
    with pytest.raises(LabelError, match=r"probabilities in \[0, 1\].*row 2 of the targets is \[1.5\]"):
        bce.forward(xpnet.asarray(np.zeros((4, 1))), xpnet.asarray(target))
    with pytest.raises(LabelError, match=r"row 1 .* \[nan\]"):
        bce.forward(xpnet.asarray(np.zeros((2, 1))), xpnet.asarray(np.array([[0.0], [np.nan]])))
    soft = bce.forward(xpnet.asarray(np.zeros((2, 1))), xpnet.asarray(np.array([[0.25], [1.0]])))
    assert float(soft) == pytest.approx(math.log(2.0))
    model = nn.Sequential(nn.Linear(4, 1))
    with pytest.raises(LabelError, match=r"fit: y: BinaryCrossEntropy .*row 2"):
        xpnet.fit(model, bce, X[:4], target, epochs=1, progress=False)


def test_softmax_cross_entropy_targets_that_are_not_distributions():
    ce = losses.SoftmaxCrossEntropy()
    logits = xpnet.asarray(np.zeros((3, 3)))
    with pytest.raises(LabelError, match=r"one-hot rows or class probabilities.*row 1 of the targets is \[1.0, 1.0, 0.0\]"):
        ce.forward(logits, xpnet.asarray(np.array([[1.0, 0, 0], [1, 1, 0], [0, 0, 1]])))
    with pytest.raises(LabelError, match=r"row 0 of the targets is \[-0.5, 1.5, 0.0\]"):
        ce.forward(logits, xpnet.asarray(np.array([[-0.5, 1.5, 0], [1, 0, 0], [0, 0, 1]])))
    soft = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [1.0, 0.0, 0.0]])
    assert float(ce.forward(logits, xpnet.asarray(soft, dtype="float32"))) == pytest.approx(math.log(3.0))
    # fit checks once, with the data set named
    fit_fails(LabelError, r"fit: y: SoftmaxCrossEntropy targets .* row 0", y=np.full((40, 3), 0.5))


def test_loss_flags_and_classes():
    with pytest.raises(TypeError, match=r"validate must be True or False"):
        losses.MeanSquaredError(validate="no")
    with pytest.raises(TypeError, match=r"got the class SoftmaxCrossEntropy: call it"):
        losses.get(losses.SoftmaxCrossEntropy)


# ---------------------------------------------------------------------- layers
@pytest.mark.parametrize(("args", "exc", "match"), [
    ((4.5, 3), TypeError, r"Linear: in_features must be an integer >= 1, got float 4.5"),
    ((4, "3"), TypeError, r"Linear: out_features must be an integer >= 1, got str '3'"),
    ((True, 3), TypeError, r"in_features .* got bool True"),
    ((0, 3), ValueError, r"in_features must be an integer >= 1, got 0"),
    ((4, 3, "no"), TypeError, r"Linear: bias must be True or False"),
])
def test_linear_sizes(args, exc, match):
    with pytest.raises(exc, match=match):
        nn.Linear(*args)


def test_linear_accepts_numpy_integers_and_checks_what_init_returns():
    assert nn.Linear(np.int64(4), np.int32(3)).params["W"].shape == (4, 3)
    with pytest.raises(ShapeError, match=r"returned weights of shape \(3, 4\); expected \(4, 3\)"):
        nn.Linear(4, 3, init=lambda shape, **kw: xpnet.asarray(np.zeros(shape[::-1])))
    with pytest.raises(ValueError, match=r"standard deviation\) must be a number >= 0, got -0.1"):
        nn.Linear(4, 3, init=-0.1)
    with pytest.raises(ValueError, match=r"standard deviation\) must be a number >= 0, got nan"):
        nn.Linear(4, 3, init=float("nan"))


@pytest.mark.parametrize(("p", "exc"), [("0.5", TypeError), (1.0, ValueError), (-0.1, ValueError),
                                        (float("nan"), ValueError)])
def test_dropout_probability(p, exc):
    with pytest.raises(exc, match=r"Dropout: p \(the probability of dropping a unit\) must be a number in \[0, 1\)"):
        nn.Dropout(p)


def test_load_state_dict_mismatches_are_value_errors_and_copy_nothing():
    model, _ = model_and_optimizer()
    state = {k: xpnet.to_numpy(v) + 1.0 for k, v in model.state_dict().items()}
    before = {k: xpnet.to_numpy(v).copy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"missing \['2.b'\], unexpected \[\]"):
        model.load_state_dict({k: v for k, v in state.items() if k != "2.b"})
    with pytest.raises(ValueError, match=r"unexpected \['3.W'\]"):
        model.load_state_dict({**state, "3.W": state["0.W"]})
    with pytest.raises(ValueError, match=r"parameter '2.b': expected shape \(3,\), got \(4,\)"):
        model.load_state_dict({**state, "2.b": np.zeros(4)})
    for k, v in model.state_dict().items():  # the good entries before '2.b' were not copied either
        np.testing.assert_array_equal(xpnet.to_numpy(v), before[k])
    with pytest.raises(TypeError, match=r"expects a dict"):
        model.load_state_dict(list(state.values()))


def test_gradient_from_another_device_in_backward():
    with xpnet.using("strict"):
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        x = xpnet.asarray(X)
    model.forward(x)
    for grad, where in [(xpnet.asarray(np.ones((40, 3)), device="strict:device1"), "strict:device1"),
                        (np.ones((40, 3), dtype=np.float32), "cpu")]:
        for backward in (model.backward, model.backward_params, model[2].backward, model[2].backward_params):
            with pytest.raises(DeviceMismatchError,
                               match=rf"Linear\(6→3\).backward got a gradient on {where} but the layer is on strict; "
                                     r"move the gradient with xpnet.asarray\(grad, device='strict'\)"):
                backward(grad)


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.Softmax(), nn.Dropout(0.3)], ids=repr)
@pytest.mark.parametrize("other", ["strict", "strict:device1"])
def test_gradient_from_another_device_in_a_standalone_parameter_free_layer(layer, other):
    """Called on its own (outside a Sequential), a parameter-free layer names the
    mismatch too. Before, Sigmoid/Tanh/Dropout multiplied a NumPy cache by a torch or
    JAX gradient without complaint and handed on an array of the other backend."""
    layer.train()
    x = xpnet.asarray(X, device="strict")
    out = layer.forward(x)
    expected = xpnet.to_numpy(layer.backward(xpnet.asarray(np.ones((40, 4)), device="strict")))
    with pytest.raises(DeviceMismatchError,
                       match=rf"{re.escape(repr(layer))}.backward got a gradient on {other if other != 'strict' else 'cpu'} "
                             rf"but the layer is on strict"):
        layer.backward(xpnet.asarray(np.ones((40, 4)), device=other) if other != "strict" else np.ones((40, 4)))
    assert xpnet.to_numpy(out).shape == (40, 4)
    # The failed call changed nothing: the right gradient still goes through.
    np.testing.assert_array_equal(xpnet.to_numpy(layer.backward(xpnet.asarray(np.ones((40, 4)), device="strict"))),
                                  expected)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_gradient_from_another_cpu_backend_is_not_mixed_in(backend):
    """NumPy * torch and NumPy * JAX succeed in those libraries; the layer refuses."""
    pytest.importorskip(backend)
    for layer in (nn.Sigmoid(), nn.Tanh(), nn.Dropout(0.3)):
        layer.train()
        layer.forward(xpnet.asarray(X, device="cpu"))
        with pytest.raises(DeviceMismatchError, match=rf"got a gradient on {backend}:cpu but the layer is on cpu"):
            layer.backward(xpnet.asarray(np.ones((40, 4)), device=backend))


class ForgetsBias(nn.Module):
    """A user layer whose backward stores dW but never db."""

    def __init__(self, stale=False):
        super().__init__()
        self.params = {"W": xpnet.asarray(RNG.standard_normal((4, 3))), "b": xpnet.asarray(np.zeros(3))}
        if stale:
            self.zero_grad()

    def forward(self, x):
        self._x = x
        return x @ self.params["W"] + self.params["b"]

    def backward(self, grad_out):
        self.grads["W"] = self._x.T @ grad_out
        return grad_out @ self.params["W"].T


@pytest.mark.parametrize("stale", [False, True])
def test_gradcheck_reports_a_gradient_that_backward_never_stored(stale):
    report = gradcheck.check_layer(ForgetsBias(stale), X[:5])
    assert report["W"].passed and not report["b"].passed
    assert "ForgetsBias.backward never stored grads['b']" in str(report)
    model = nn.Sequential(ForgetsBias(stale), nn.Tanh())
    report = gradcheck.check_model(model, "mse", X[:5], RNG.standard_normal((5, 3)))
    assert not report["0.b"].passed and report["0.W"].passed and report["input"].passed
    with pytest.raises(AssertionError, match=r"0.b .*FAILED: ForgetsBias.backward never stored grads\['b'\]"):
        report.raise_if_failed()


def test_check_model_takes_loss_names_and_checks_its_arguments():
    model = nn.Sequential(nn.Linear(4, 3, dtype="float64"))
    assert gradcheck.check_model(model, "cross_entropy", X[:5], Y[:5]).passed
    with pytest.raises(ValueError, match=r"unknown loss 'crossentropy'"):
        gradcheck.check_model(model, "crossentropy", X[:5], Y[:5])
    with pytest.raises(ValueError, match=r"check_layer: h must be a number > 0, got 0"):
        gradcheck.check_layer(model, X[:5], h=0.0)
    with pytest.raises(TypeError, match=r"check_layer: expected an xpnet.nn.Module, got function"):
        gradcheck.check_layer(lambda x: x, X[:5])


def test_missing_gradient_in_training_names_layer_and_parameter():
    model = nn.Sequential(ForgetsBias())
    with pytest.raises(MissingGradientError, match=r"ForgetsBias has no gradient for its parameter 'b'"):
        xpnet.fit(model, "mse", X, RNG.standard_normal((40, 3)), epochs=1, progress=False)


def test_optimizer_refuses_a_gradient_of_the_wrong_shape():
    layer = nn.Linear(4, 3)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    layer.grads["b"] = xpnet.asarray(np.ones((5, 3)))  # would broadcast b to (5, 3)
    with pytest.raises(ShapeError, match=r"gradient of Parameter\(Linear.b, shape=\(3,\)\) has shape \(5, 3\)"):
        opt.step()
    assert layer.params["b"].shape == (3,)


def test_arguments_in_the_wrong_order():
    model, _ = model_and_optimizer()
    with pytest.raises(TypeError, match=r"fit: model must be an xpnet.nn.Module, got ndarray .*fit\(model, loss, X, y"):
        xpnet.fit(X, model, Y, "cross_entropy")
    with pytest.raises(TypeError, match=r"evaluate: model must be an xpnet.nn.Module, got str"):
        xpnet.evaluate("cross_entropy", model, X, Y)
    with pytest.raises(TypeError, match=r"loss must be a Loss instance or a name .*got ndarray"):
        xpnet.fit(model, X, Y, "cross_entropy")
    with pytest.raises(TypeError, match=r"train\(mode\) takes True or False, got str 'eval'"):
        model.train("eval")


def test_other_public_entry_points():
    model, opt = model_and_optimizer()
    with pytest.raises(TypeError, match=r"predict: x must be numeric, got an array of <U1"):
        model.predict(np.array([["a", "b", "c", "d"]]))
    with pytest.raises(TypeError, match=r"seed: n must be an integer >= 0 or None, got str 'abc'"):
        xpnet.seed("abc")
    with pytest.raises(ValueError, match=r"numerical_gradient: h must be a number > 0, got -1e-06"):
        gradcheck.numerical_gradient(lambda v: v, X, h=-1e-6)
    state = opt.state_dict()
    with pytest.raises(ValueError, match=r"SGD.load_state_dict: the state lacks \['arrays'\]"):
        opt.load_state_dict({k: v for k, v in state.items() if k != "arrays"})
    with pytest.raises(ValueError, match=r"state entry '9.velocity' does not name one of this optimizer's 4 param"):
        opt.load_state_dict({**state, "arrays": {"9.velocity": np.zeros(3)}})
    with pytest.raises(ValueError, match=r"SGD.load_state_dict: lr must be a number >= 0, got nan"):
        opt.load_state_dict({**state, "lr": float("nan")})
    assert opt.lr == 0.1 and opt.t == 0


def test_validation_pair_of_different_lengths_is_named():
    fit_fails(ValueError, r"fit \(validation_data\): X has 10 samples but y has 9",
              validation_data=(X[:10], Y[:9]))


@pytest.mark.parametrize("dtype", ["int64", "float16", "int32"])
def test_layers_refuse_parameter_dtypes_other_than_float32_and_float64(dtype):
    """int64 weights were silently truncated initial values; float16 ones trained to
    NaN with Adam's default eps (it underflows to 0)."""
    with pytest.raises(TypeError, match=rf"xpnet parameters must be float32 or float64, got {dtype}"):
        nn.Linear(3, 2, dtype=dtype)


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.Softmax(), nn.Dropout(0.4)], ids=repr)
def test_parameter_free_layers_refuse_a_gradient_of_another_shape(layer):
    """(1, 3) broadcast against a (2, 3) forward and returned a (2, 3) gradient."""
    layer.train()
    layer.forward(xpnet.asarray(np.ones((2, 3))))
    with pytest.raises(ShapeError, match=rf"{re.escape(repr(layer))}.backward got a gradient of shape \(1, 3\); "
                                         rf"expected \(2, 3\)"):
        layer.backward(xpnet.asarray(np.ones((1, 3))))


@pytest.mark.parametrize("device", ["cpu", "strict"])
def test_an_empty_batch_goes_through_flatten(device):
    with xpnet.using(device):
        model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
        assert tuple(model.predict(np.zeros((0, 3, 4))).shape) == (0, 2)
        flat = nn.Flatten()
        assert tuple(flat.forward(xpnet.asarray(np.zeros((0, 3, 4)))).shape) == (0, 12)
        assert tuple(flat.backward(xpnet.asarray(np.zeros((0, 12)))).shape) == (0, 3, 4)


def test_bce_on_outputs_that_are_not_probabilities_is_refused_before_training():
    """A model without a final Sigmoid trained on silently clipped outputs (accuracy
    0.58 where the same model with a Sigmoid reaches 0.78)."""
    yb = (X[:, 0] > 0).astype(int)
    fit_fails(ValueError, r"fit: BinaryCrossEntropy expects probabilities in \[0, 1\], but the predictions range "
                          r"over \[-?[\d.e+-]+, [\d.e+-]+\]: end the model with nn.Sigmoid\(\), or use "
                          r"BinaryCrossEntropy\(from_logits=True\).*first 40 rows of X", loss="bce", y=yb,
              model_tail=nn.Linear(6, 1))
    with pytest.raises(ValueError, match=r"BinaryCrossEntropy expects probabilities in \[0, 1\]"):
        losses.BinaryCrossEntropy()(xpnet.asarray([[-2.0], [3.0]]), xpnet.asarray([1, 0]))
    # probabilities, and logits with from_logits=True (also by name), are fine
    for loss, tail in [("bce", [nn.Linear(6, 1), nn.Sigmoid()]), ("bce_logits", [nn.Linear(6, 1)])]:
        xpnet.seed(0)
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), *tail)
        xpnet.fit(model, loss, X, yb, epochs=1, progress=False)


def test_bce_targets_of_another_width_are_refused_for_the_whole_set():
    fit_fails(ShapeError, r"fit: y: BinaryCrossEntropy: the model gives outputs of shape \(40, 3\) but the targets "
                          r"have shape \(40,\); binary cross-entropy needs one 0/1 target per output",
              loss=losses.BinaryCrossEntropy(from_logits=True), y=(X[:, 0] > 0).astype(int))
    with pytest.raises(LabelError, match=r"got labels in \[0, 2\] but binary cross-entropy takes 0/1 labels; "
                                         r"labels must be in \[0, 1\]"):
        losses.BinaryCrossEntropy(from_logits=True)(xpnet.asarray(np.zeros((3, 1))), xpnet.asarray([0, 2, 1]))


def test_a_softmax_before_cross_entropy_is_pointed_out():
    xpnet.seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Softmax())
    with pytest.warns(UserWarning, match=r"the model ends in nn.Softmax and SoftmaxCrossEntropy applies a softmax "
                                         r"again; remove the last Softmax layer"):
        xpnet.fit(model, "cross_entropy", X, Y, epochs=1, progress=False)


def test_evaluate_takes_batch_size_none_like_fit_and_predict():
    model, _ = model_and_optimizer()
    whole = xpnet.evaluate(model, "cross_entropy", X, Y, batch_size=None)
    batched = xpnet.evaluate(model, "cross_entropy", X, Y, batch_size=7)
    assert whole.keys() == batched.keys()
    for key in whole:
        assert math.isclose(whole[key], batched[key], rel_tol=1e-6), key
