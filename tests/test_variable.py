"""xpnet.Variable: optimizers and schedules on a plain function, checked against hand-written updates."""

import numpy as np
import pytest

import xpnet
from xpnet.optim import SGD, Adam, ExponentialDecay


def test_sgd_with_exponential_decay_matches_the_update_written_out():
    p = xpnet.Variable([1.5, -0.5], dtype="float64", device="cpu")
    opt = SGD([p], lr=0.1)
    schedule = ExponentialDecay(opt, decay=0.9)
    expected = np.array([1.5, -0.5])
    for t in range(5):
        grad = np.array([2 * expected[0] + 1.0, 4 * expected[1]])
        p.grad = [2 * p.value[0] + 1.0, 4 * p.value[1]]
        opt.step()
        schedule.step()
        expected = expected - 0.1 * 0.9**t * grad
        np.testing.assert_allclose(p.numpy(), expected, rtol=1e-12, atol=0)
    assert opt.lr == pytest.approx(0.1 * 0.9**5)


def test_adam_first_step_moves_each_coordinate_by_lr():
    p = xpnet.Variable(np.array([[3.0, -2.0]]), dtype="float64", device="cpu")
    opt = Adam(p, lr=0.01)  # a single Variable is accepted like a model
    p.grad = np.array([[5.0, -0.25]])
    opt.step()
    # After bias correction the first Adam step is lr * g / (|g| + eps'), i.e. lr * sign(g).
    np.testing.assert_allclose(p.numpy(), [[2.99, -1.99]], rtol=0, atol=1e-7)


def test_descends_a_function_on_every_backend(xp_device):
    def grad(v):
        return [2 * v[0] + v[1], 2 * v[1] + v[0]]  # f = x^2 + y^2 + xy, minimum at 0

    p = xpnet.Variable([1.0, -2.0], device=xp_device)
    assert p.device == xp_device and p.dtype == xpnet.default_dtype()
    before = p.value
    opt = SGD([p], lr=0.2, momentum=0.5)
    for _ in range(60):
        p.grad = grad(p.value)
        opt.step()
    assert xpnet.device_of(p.value) == xp_device and xpnet.device_of(p.grad) == xp_device
    assert np.abs(p.numpy()).max() < 1e-3
    np.testing.assert_allclose(xpnet.to_numpy(before), [1.0, -2.0])  # the step reassigns, never mutates


@pytest.mark.parametrize("decay, expected", [(True, 2.0 - 0.1 * (5.0 + 0.5 * 2.0)), (False, 2.0 - 0.1 * 5.0)])
def test_weight_decay_applies_unless_switched_off(decay, expected):
    p = xpnet.Variable([2.0], dtype="float64", device="cpu", decay=decay)
    opt = SGD([p], lr=0.1, weight_decay=0.5)
    p.grad = [5.0]
    opt.step()
    assert p.numpy()[0] == pytest.approx(expected, rel=1e-12)


def test_zero_grad_and_optimizer_zero_grad():
    p = xpnet.Variable([1.0, 2.0], device="cpu")
    assert np.all(xpnet.to_numpy(p.grad) == 0)
    p.grad = [1.0, 1.0]
    p.zero_grad()
    assert np.all(xpnet.to_numpy(p.grad) == 0)
    p.grad = np.ones(2)
    SGD([p], lr=0.1).zero_grad()
    assert np.all(xpnet.to_numpy(p.grad) == 0)


def test_errors_name_what_is_wrong():
    p = xpnet.Variable([1.0, 2.0], device="cpu")
    with pytest.raises(ValueError, match=r"shape \(2,\) got a gradient of shape \(3,\)"):
        p.grad = [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="floating-point.*int64"):
        xpnet.Variable(np.array([1, 2]))
    assert repr(p) == "Variable(shape=(2,), dtype=float32, device=cpu)"
