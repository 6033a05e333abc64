"""Optimizers and schedules: exact update rules, parity across backends (including
JAX, whose arrays are immutable), and dtype/device of the state."""

import math

import numpy as np
import pytest

import xpnet
from xpnet import losses, nn, optim
from xpnet.errors import ShapeError
from xpnet.testing import assert_close

RNG = np.random.default_rng(11)
X = RNG.standard_normal((16, 5))
Y = RNG.integers(0, 3, 16)

OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1),
    "sgd-momentum-wd": lambda p: optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2),
    "sgd-nesterov": lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda p: optim.Adam(p, lr=0.01),
    "adam-wd": lambda p: optim.Adam(p, lr=0.01, weight_decay=1e-2),
}


def _train(make_opt, steps=5):
    xpnet.seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = make_opt(model.parameters())
    loss = losses.SoftmaxCrossEntropy()
    x, y = xpnet.asarray(X), xpnet.asarray(Y)
    values = []
    for _ in range(steps):
        values.append(float(loss.forward(model.forward(x), y)))
        model.backward(loss.backward())
        opt.step()
    return model, opt, values


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_parity(name, xp_device):
    with xpnet.using("cpu", dtype="float64"):
        ref_model, _, ref_values = _train(OPTIMIZERS[name])
    for dtype in ("float64", "float32"):
        with xpnet.using(xp_device, dtype=dtype):
            model, opt, values = _train(OPTIMIZERS[name])
        rtol = 1e-10 if dtype == "float64" else 1e-4
        np.testing.assert_allclose(values, ref_values, rtol=rtol)
        assert values[-1] < values[0]
        for (k, v), ref in zip(model.state_dict().items(), ref_model.state_dict().values(), strict=True):
            assert_close(v, xpnet.to_numpy(ref), dtype=dtype, device=xp_device, what=f"{name} {k}")
        for state in opt.state:
            for arr in state.values():
                assert xpnet.device_of(arr) == xp_device
                assert xpnet.backend.dtype_name(arr.dtype) == dtype


def test_parameters_really_change_on_immutable_backends():
    pytest.importorskip("jax")
    with xpnet.using("jax"):
        model, _, _ = _train(OPTIMIZERS["sgd"], steps=1)
        xpnet.seed(0)
        fresh = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    assert not np.array_equal(xpnet.to_numpy(model[0].params["W"]), xpnet.to_numpy(fresh[0].params["W"]))


def _one_param(value, grad):
    layer = nn.Linear(2, 1, dtype="float64")
    layer.params["W"] = xpnet.asarray(np.array(value, dtype=float).reshape(2, 1), dtype="float64")
    layer.grads["W"] = xpnet.asarray(np.array(grad, dtype=float).reshape(2, 1), dtype="float64")
    return layer


def test_sgd_update_rule_with_momentum_and_decay():
    layer = _one_param([1.0, -2.0], [0.5, 0.25])
    opt = optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    w, g, v = np.array([1.0, -2.0]), np.array([0.5, 0.25]), np.zeros(2)
    for _ in range(3):
        opt.step()
        v = 0.9 * v + (g + 0.01 * w)
        w = w - 0.1 * v
    np.testing.assert_allclose(xpnet.to_numpy(layer.params["W"]).ravel(), w, rtol=1e-14)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.5),
                                  lambda p: optim.Adam(p, lr=0.1, weight_decay=0.5)], ids=["sgd", "adam"])
def test_weight_decay_skips_the_bias(make):
    # A bias far from zero with a nonzero gradient: decay on it would change its step.
    layer = _one_param([1.0, -2.0], [0.5, 0.25])
    layer.params["b"] = xpnet.asarray(np.array([3.0]), dtype="float64")
    layer.grads["b"] = xpnet.asarray(np.array([0.2]), dtype="float64")
    decayed = make(layer.parameters())
    twin = _one_param([1.0, -2.0], [0.5, 0.25])
    twin.params["b"] = xpnet.asarray(np.array([3.0]), dtype="float64")
    twin.grads["b"] = xpnet.asarray(np.array([0.2]), dtype="float64")
    plain = type(decayed)(twin.parameters(), lr=0.1, **{**decayed.get_config(), "weight_decay": 0.0})
    for _ in range(3):
        decayed.step()
        plain.step()
    b = xpnet.to_numpy(layer.params["b"])
    np.testing.assert_allclose(b, xpnet.to_numpy(twin.params["b"]), rtol=1e-15)
    assert abs(b[0] - 3.0) > 1e-3  # the bias did move: the comparison above means something
    assert not np.allclose(xpnet.to_numpy(layer.params["W"]), xpnet.to_numpy(twin.params["W"]))


# A gradient of 3e-8 puts sqrt(v) near eps, where the two epsilon forms differ.
ADAM_W, ADAM_G = [1.0, -2.0], [0.5, 3e-8]


def _adam_reference(eps_hat, steps=4, lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
    """Adam written out from the paper: Algorithm 1, or the epsilon-hat form."""
    w, g = np.array(ADAM_W), np.array(ADAM_G)
    m = v = np.zeros(2)
    for t in range(1, steps + 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        if eps_hat:
            w = w - lr * np.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        else:
            w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return w


def _adam_xpnet(eps_hat, steps=4):
    layer = _one_param(ADAM_W, ADAM_G)
    opt = optim.Adam(layer.parameters(), lr=0.01, eps_hat=eps_hat)
    for _ in range(steps):
        opt.step()
    return xpnet.to_numpy(layer.params["W"]).ravel()


def test_adam_is_algorithm_1_exactly():
    np.testing.assert_allclose(_adam_xpnet(False), _adam_reference(False), rtol=1e-12, atol=0)
    # and the forms are far apart here, so the comparison above tells them apart
    assert abs(_adam_reference(False)[1] - _adam_reference(True)[1]) > 1e-4


def test_adam_matches_torch():
    torch = pytest.importorskip("torch")
    w = torch.tensor(ADAM_W, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.01)
    for _ in range(4):
        w.grad = torch.tensor(ADAM_G, dtype=torch.float64)
        opt.step()
    np.testing.assert_allclose(_adam_xpnet(False), w.detach().numpy(), rtol=1e-12, atol=0)


def test_adam_epsilon_hat_form_exactly():
    np.testing.assert_allclose(_adam_xpnet(True), _adam_reference(True), rtol=1e-12, atol=0)
    _stochastic = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    w = [np.array(ADAM_W)]
    sk = _stochastic.AdamOptimizer(w, learning_rate_init=0.01)
    for _ in range(4):
        sk.update_params(w, [np.array(ADAM_G)])
    np.testing.assert_allclose(_adam_xpnet(True), w[0], rtol=1e-12, atol=0)


def test_float32_model_stays_float32():
    model, opt, _ = _train(OPTIMIZERS["adam-wd"])
    for p in model.parameters():
        assert p.value.dtype == p.grad.dtype == np.float32
    for state in opt.state:
        assert all(a.dtype == np.float32 for a in state.values())


def test_state_follows_model_to_another_device():
    model, opt, _ = _train(OPTIMIZERS["sgd-momentum-wd"], steps=2)
    model.to("strict")
    x, y = xpnet.asarray(X, device="strict"), xpnet.asarray(Y, device="strict")
    loss = losses.SoftmaxCrossEntropy()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    opt.step()
    assert all(xpnet.device_of(a).name == "strict" for s in opt.state for a in s.values())


def test_exponential_decay_schedule():
    layer = _one_param([1.0, 1.0], [0.0, 0.0])
    opt = optim.SGD(layer.parameters(), lr=0.5)
    schedule = optim.ExponentialDecay(opt, decay=0.9)
    lrs = [opt.lr] + [schedule.step() for _ in range(4)]
    np.testing.assert_allclose(lrs, [0.5 * 0.9**t for t in range(5)], rtol=1e-15)
    assert optim.exponential_decay(0.5, 0.9, 3) == pytest.approx(0.5 * 0.729)
    step = optim.StepDecay(optim.SGD(layer.parameters(), lr=1.0), step_size=2, gamma=0.5)
    assert [step.step() for _ in range(4)] == [1.0, 0.5, 0.5, 0.25]
    inv = optim.InverseTimeDecay(optim.SGD(layer.parameters(), lr=1.0), rate=1.0)
    assert inv.step() == pytest.approx(0.5)


def test_gradient_descent_with_decay_on_a_quadratic_bowl():
    # The course exercise: minimise f(x, y) = x^2 + 10 y^2 with lr_t = lr_0 * d**t.
    layer = _one_param([1.5, -1.0], [0.0, 0.0])
    opt = optim.SGD(layer.parameters(), lr=0.09)
    schedule = optim.ExponentialDecay(opt, decay=0.99)
    scale = xpnet.asarray(np.array([[2.0], [20.0]]), dtype="float64")
    for _ in range(100):
        layer.grads["W"] = scale * layer.params["W"]
        opt.step()
        schedule.step()
    # Each step multiplies coordinate i by (1 - lr_t * c_i): the exact path, which a
    # schedule that never decays (or decays by another rule) does not reproduce.
    expected = np.array([1.5, -1.0])
    for t in range(100):
        expected = expected * (1.0 - 0.09 * 0.99**t * np.array([2.0, 20.0]))
    np.testing.assert_allclose(xpnet.to_numpy(layer.params["W"]).ravel(), expected, rtol=1e-10)
    assert opt.lr == pytest.approx(0.09 * 0.99**100, rel=1e-14)
    assert np.abs(expected).max() < 1e-3


def test_invalid_hyperparameters():
    params = nn.Linear(2, 1).parameters()
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD(params, lr=0.0)
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD(params, lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([], lr=0.1)


def _params():
    return nn.Linear(2, 1).parameters()


def _sgd():
    return optim.SGD(_params(), lr=0.5)


BAD_HYPERPARAMETERS = [
    (lambda: optim.SGD(_params(), lr=float("nan")), ValueError, r"SGD: lr \(the learning rate\) must be a number > 0, got nan"),
    (lambda: optim.Adam(_params(), lr=float("inf")), ValueError, r"Adam: lr .* > 0, got inf"),
    (lambda: optim.SGD(_params(), lr=-0.1), ValueError, r"lr .* > 0, got -0.1"),
    (lambda: optim.SGD(_params(), lr="0.1"), TypeError, r"lr .* got str '0.1'"),
    (lambda: optim.SGD(_params(), lr=True), TypeError, r"lr .* got bool True"),
    (lambda: optim.SGD(_params(), momentum=1.0), ValueError, r"SGD: momentum must be a number in \[0, 1\), got 1"),
    (lambda: optim.SGD(_params(), momentum=-0.1), ValueError, r"momentum .* got -0.1"),
    (lambda: optim.SGD(_params(), weight_decay=-1e-4), ValueError, r"SGD: weight_decay must be a number >= 0"),
    (lambda: optim.SGD(_params(), momentum=0.9, nesterov="yes"), TypeError, r"nesterov must be True or False"),
    (lambda: optim.Adam(_params(), betas=(1.5, 0.999)), ValueError, r"Adam: betas\[0\] must be a number in \[0, 1\), got 1.5"),
    (lambda: optim.Adam(_params(), betas=(0.9, 1.0)), ValueError, r"Adam: betas\[1\] must be a number in \[0, 1\), got 1"),
    (lambda: optim.Adam(_params(), betas=0.9), TypeError, r"Adam: betas must be a pair"),
    (lambda: optim.Adam(_params(), eps=-1e-8), ValueError, r"Adam: eps must be a number > 0, got -1e-08"),
    (lambda: optim.Adam(_params(), eps=0.0), ValueError, r"Adam: eps must be a number > 0, got 0"),
    (lambda: optim.Adam(_params(), weight_decay=-1.0), ValueError, r"Adam: weight_decay must be a number >= 0"),
    (lambda: optim.Adam(_params(), eps_hat=1), TypeError, r"eps_hat must be True or False"),
    (lambda: optim.Adam({"W": 1}), TypeError, r"params must be model.parameters\(\)"),
    (lambda: optim.Adam([1, 2]), TypeError, r"params\[0\] is a int, not an xpnet.nn.Parameter"),
    (lambda: optim.ExponentialDecay(_sgd(), decay=-1), ValueError, r"ExponentialDecay: decay must be a number in \(0, 1\], got -1"),
    (lambda: optim.ExponentialDecay(_sgd(), decay=1.1), ValueError, r"decay .* got 1.1"),
    (lambda: optim.ExponentialDecay(_sgd(), decay=0.0), ValueError, r"decay .* got 0"),
    (lambda: optim.StepDecay(_sgd(), step_size=0), ValueError, r"StepDecay: step_size must be an integer >= 1, got 0"),
    (lambda: optim.StepDecay(_sgd(), step_size=2.5), TypeError, r"step_size .* got float 2.5"),
    (lambda: optim.StepDecay(_sgd(), step_size=2, gamma=0.0), ValueError, r"StepDecay: gamma must be a number in \(0, 1\]"),
    (lambda: optim.InverseTimeDecay(_sgd(), rate=-1.0), ValueError, r"InverseTimeDecay: rate must be a number >= 0"),
    (lambda: optim.InverseTimeDecay(_sgd(), rate=float("nan")), ValueError, r"rate must be a number >= 0, got nan"),
    (lambda: optim.ExponentialDecay("sgd", decay=0.9), TypeError, r"optimizer must be an xpnet.optim.Optimizer"),
    (lambda: optim.exponential_decay(0.1, -0.5, 3), ValueError, r"exponential_decay: decay"),
]


@pytest.mark.parametrize(("make", "exc", "match"), BAD_HYPERPARAMETERS, ids=range(len(BAD_HYPERPARAMETERS)))
def test_hyperparameters_name_the_argument_and_its_range(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_a_learning_rate_set_later_is_checked_too():
    opt = _sgd()
    with pytest.raises(ValueError, match=r"lr .* got nan"):
        opt.lr = float("nan")
    assert opt.lr == 0.5
    xpnet.seed(0)
    model = nn.Sequential(nn.Linear(5, 3))
    schedule = xpnet.callbacks.LearningRateScheduler(lambda epoch, lr: lr - 1.0)
    with pytest.raises(ValueError, match=r"SGD: lr .* must be a number >= 0, got -0.9"):
        xpnet.fit(model, "cross_entropy", X, Y, optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=3,
                  callbacks=[schedule], progress=False)


@pytest.mark.parametrize(("make", "name", "value", "exc", "match"), [
    (_sgd, "momentum", 1.5, ValueError, r"SGD: momentum must be a number in \[0, 1\), got 1.5"),
    (_sgd, "weight_decay", float("nan"), ValueError, r"SGD: weight_decay must be a number >= 0, got nan"),
    (_sgd, "nesterov", "yes", TypeError, r"SGD: nesterov must be True or False, got str"),
    (lambda: optim.Adam(nn.Linear(2, 2).parameters()), "beta2", 1.0, ValueError, r"Adam: betas\[1\] must be"),
    (lambda: optim.Adam(nn.Linear(2, 2).parameters()), "eps", 0.0, ValueError, r"Adam: eps must be a number > 0"),
    (lambda: optim.Adam(nn.Linear(2, 2).parameters()), "eps_hat", 1, TypeError, r"Adam: eps_hat must be True"),
])
def test_hyperparameters_set_later_are_checked_too(make, name, value, exc, match):
    """Scripts change hyperparameters between fit calls (docs/training.md); a bad value
    is named where it is set and the old one stays."""
    opt = make()
    old = getattr(opt, name)
    with pytest.raises(exc, match=match):
        setattr(opt, name, value)
    assert getattr(opt, name) == old


def test_state_dict_round_trip():
    model, opt, _ = _train(OPTIMIZERS["adam"], steps=3)
    state = opt.state_dict()
    fresh = optim.Adam(model.parameters(), lr=0.5)
    fresh.load_state_dict(state)
    assert fresh.t == 3 and fresh.lr == pytest.approx(0.01)
    for a, b in zip(opt.state, fresh.state, strict=True):
        for k in a:
            np.testing.assert_array_equal(xpnet.to_numpy(a[k]), xpnet.to_numpy(b[k]))
    with pytest.raises(ValueError, match="not a SGD"):
        optim.SGD(model.parameters(), lr=0.1).load_state_dict(state)
    assert math.isfinite(opt.lr)


def test_a_schedule_starts_from_the_lr_set_by_hand():
    # PyTorch's rule: the rate current when the schedule is made is its base rate.
    opt = _sgd()
    opt.lr = 0.01
    schedule = optim.ExponentialDecay(opt, decay=0.5)
    assert opt.lr == 0.01 and schedule.lr0 == 0.01
    assert schedule.step() == 0.005
    step = optim.StepDecay(opt, step_size=2, gamma=0.1)
    assert opt.lr == 0.005 and [step.step() for _ in range(2)] == [0.005, 0.005 * 0.1]


def test_schedule_state_dict_continues_the_schedule():
    opt = _sgd()
    schedule = optim.StepDecay(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        schedule.step()
    state = schedule.state_dict()
    assert state == {"type": "StepDecay", "t": 3, "lr0": 0.5}
    fresh_opt = optim.SGD(_params(), lr=0.5)
    fresh = optim.StepDecay(fresh_opt, step_size=2, gamma=0.5)
    fresh.load_state_dict(state)
    assert fresh.t == 3 and fresh_opt.lr == opt.lr == 0.25
    assert [fresh.step() for _ in range(3)] == [schedule.step() for _ in range(3)]


BAD_SCHEDULE_STATES = [
    ({"type": "ExponentialDecay", "t": 1, "lr0": 0.1}, ValueError, r"StepDecay.load_state_dict: the state is for a "
                                                                   r"ExponentialDecay, not a StepDecay"),
    ({"type": "StepDecay", "t": -1, "lr0": 0.1}, ValueError, r"t must be an integer >= 0, got -1"),
    ({"type": "StepDecay", "t": 1, "lr0": 0.0}, ValueError, r"lr .* must be a number > 0, got 0"),
    ({"type": "StepDecay", "t": 1}, ValueError, r"the state lacks \['lr0'\]"),
    ([1, 2], TypeError, r"expects the dict that state_dict\(\) returns, got list"),
]


@pytest.mark.parametrize(("state", "exc", "match"), BAD_SCHEDULE_STATES, ids=range(len(BAD_SCHEDULE_STATES)))
def test_a_bad_schedule_state_is_named(state, exc, match):
    schedule = optim.StepDecay(_sgd(), step_size=2)
    with pytest.raises(exc, match=match):
        schedule.load_state_dict(state)
    assert schedule.t == 0 and schedule.optimizer.lr == 0.5


@pytest.mark.parametrize("make, per_step", [(lambda ps: optim.Adam(ps, lr=0.01, weight_decay=1e-3), 2),
                                             (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), 1)])
def test_coefficients_are_computed_once_a_step(monkeypatch, make, per_step):
    """A compiled step hands the optimizer t and lr as 0-d arrays (float64 device
    scalars in a CUDA graph), where each coefficient costs a few kernels: they are
    computed once a step (per dtype), not once per parameter, and give the update the
    floats give (Adam: step size and eps; SGD: -lr)."""
    calls = []
    coefficient = optim._coefficient
    monkeypatch.setattr(optim, "_coefficient", lambda value, like: calls.append(value) or coefficient(value, like))
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 3)), rng.integers(0, 2, 8)
    runs = []
    for scalars in (False, True):
        xpnet.seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).to(dtype="float64")  # four parameters
        opt = make(model.parameters())
        loss = losses.SoftmaxCrossEntropy()
        calls.clear()
        for _ in range(3):
            loss.forward(model.forward(X), y)
            model.backward_params(loss.backward())
            if scalars:
                t, lr = opt.t, opt.lr
                opt.t, opt._lr = np.asarray(float(t)), np.asarray(lr)  # as _TracedStep binds them
                opt.step()
                opt.t, opt._lr = t + 1, lr
            else:
                opt.step()
        runs.append([xpnet.to_numpy(p.value) for p in model.parameters()])
        assert len(calls) == 3 * per_step
    for got, want in zip(runs[1], runs[0], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-15)
    assert opt._shared is None  # nothing of a step (a trace's values) stays in the optimizer


@pytest.mark.parametrize("name", ["sgd-momentum-wd", "adam"])
def test_a_wrong_gradient_shape_changes_nothing(name):
    """A backward that stores a gradient of the wrong shape for a later parameter is
    named before any parameter moves: no half-applied step, and t still counts only
    the steps that happened (Adam's bias correction depends on it)."""
    model, opt, _ = _train(OPTIMIZERS[name], steps=2)
    loss = losses.SoftmaxCrossEntropy()
    loss.forward(model.forward(xpnet.asarray(X)), xpnet.asarray(Y))
    model.backward(loss.backward())
    before = [xpnet.to_numpy(p.value).copy() for p in model.parameters()]
    states = [{k: xpnet.to_numpy(v).copy() for k, v in s.items()} for s in opt.state]
    last = model.parameters()[-1]
    last.module.grads[last.name] = last.module.grads[last.name][:1]
    with pytest.raises(ShapeError, match=r"has shape \(1,\)"):
        opt.step()
    assert opt.t == 2
    for p, want in zip(model.parameters(), before, strict=True):
        np.testing.assert_array_equal(xpnet.to_numpy(p.value), want)
    for state, want in zip(opt.state, states, strict=True):
        assert state.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(xpnet.to_numpy(state[k]), want[k])


def test_a_subclass_may_set_lr_per_parameter_inside_update():
    """Layer-wise rates (LARS) set ``self.lr`` for each parameter inside ``_update``;
    the coefficients shared once a step must follow it, not reuse the first one's."""

    class Layerwise(optim.SGD):
        def _update(self, w, g, state, decay):
            base = self.lr
            self.lr = base * (1 + w.shape[0])  # a different rate for each parameter shape
            try:
                return super()._update(w, g, state, decay)
            finally:
                self.lr = base

    xpnet.seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).to(dtype="float64")
    for p in model.parameters():
        p.module.grads[p.name] = xpnet.asarray(np.full(p.shape, 0.5), dtype="float64")
    before = [xpnet.to_numpy(p.value).copy() for p in model.parameters()]
    Layerwise(model.parameters(), lr=0.1).step()
    for p, w0 in zip(model.parameters(), before, strict=True):
        np.testing.assert_allclose(xpnet.to_numpy(p.value), w0 - 0.1 * (1 + w0.shape[0]) * 0.5, rtol=1e-15)


@pytest.mark.parametrize("device", ["cpu", "jax", "torch", "strict"])
def test_a_numpy_integer_step_count_set_by_hand_works_on_every_backend(device):
    """``opt.t = np.int64(n)`` (a count read back from a NumPy file) reached torch's
    astype as a NumPy scalar and raised; elsewhere it must keep float32 parameters."""
    try:
        xpnet.backend.resolve_device(device)
    except Exception as exc:  # noqa: BLE001 - becomes the skip reason
        pytest.skip(f"{device} unavailable: {exc}")
    with xpnet.using(device, dtype="float32"):
        xpnet.seed(0)
        model = nn.Sequential(nn.Linear(5, 3))
        opt = optim.Adam(model.parameters(), lr=0.01)
        opt.t = np.int64(7)
        loss = losses.SoftmaxCrossEntropy()
        loss.forward(model.forward(xpnet.asarray(X)), xpnet.asarray(Y))
        model.backward(loss.backward())
        opt.step()
    assert opt.t == 8
    for p in model.parameters():
        assert xpnet.backend.dtype_name(p.value.dtype) == "float32"


def test_parameters_added_to_an_optimizer_after_construction_are_named():
    model = nn.Sequential(nn.Linear(5, 3))
    opt = optim.SGD(model.parameters(), lr=0.1)
    extra = nn.Linear(3, 3)
    opt.params += extra.parameters()
    with pytest.raises(ValueError, match=r"built over 2 parameters and now holds 4; build a new optimizer"):
        opt.step()
