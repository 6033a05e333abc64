"""Optimizers and schedules: exact update rules, parity across backends (including
JAX, whose arrays are immutable), and dtype/device of the state."""

import math

import numpy as np
import pytest

import xpnet
from xpnet import losses, nn, optim
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
    # weight decay applies to weights only: the zero-gradient bias stays at zero
    np.testing.assert_array_equal(xpnet.to_numpy(layer.params["b"]), [0.0])


def test_adam_update_rule():
    layer = _one_param([1.0, -2.0], [0.5, -0.25])
    opt = optim.Adam(layer.parameters(), lr=0.01)
    w, g = np.array([1.0, -2.0]), np.array([0.5, -0.25])
    m = v = np.zeros(2)
    for t in range(1, 4):
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(xpnet.to_numpy(layer.params["W"]).ravel(), w, rtol=1e-6)


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
    assert np.abs(xpnet.to_numpy(layer.params["W"])).max() < 1e-3


def test_invalid_hyperparameters():
    params = nn.Linear(2, 1).parameters()
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD(params, lr=0.0)
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD(params, lr=0.1, momentum=1.5)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([], lr=0.1)


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
