"""Every layer: parity with NumPy float64 and finite-difference gradients, on every
available backend/device (the ``xp_device`` fixture), plus the layer contract."""

import math

import numpy as np
import pytest

import xpnet
from xpnet import gradcheck, nn
from xpnet.errors import DeviceMismatchError, DtypeMismatchError, ShapeError
from xpnet.testing import check_layer_parity

RNG = np.random.default_rng(1234)
X = RNG.standard_normal((6, 5))
IMAGES = RNG.standard_normal((4, 3, 2, 2))

LAYERS = {
    "Linear": (lambda: nn.Linear(5, 4), X),
    "Linear-nobias": (lambda: nn.Linear(5, 3, bias=False, init="he_normal"), X),
    "ReLU": (nn.ReLU, X),
    "Sigmoid": (nn.Sigmoid, X * 4),
    "Tanh": (nn.Tanh, X),
    "Softmax": (nn.Softmax, X * 3),
    "Identity": (nn.Identity, X),
    "Dropout": (lambda: nn.Dropout(0.4), X),
    "Flatten": (nn.Flatten, IMAGES),
    "MLP": (lambda: nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Dropout(0.25), nn.Linear(7, 4), nn.Tanh(),
                                   nn.Linear(4, 3), nn.Sigmoid()), X),
    "Flatten-MLP": (lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.Softmax()), IMAGES),
}


@pytest.mark.parametrize("name", LAYERS)
def test_parity(name, xp_device):
    factory, x = LAYERS[name]
    report = check_layer_parity(factory, x, devices=[xp_device])
    assert report.checked == [f"{xp_device.name}/float64", f"{xp_device.name}/float32"]


@pytest.mark.parametrize("name", LAYERS)
def test_gradcheck(name, xp_device):
    factory, x = LAYERS[name]
    xpnet.seed(0)
    with xpnet.using(xp_device, dtype="float64"):
        layer = factory()
    report = gradcheck.check_layer(layer, x)
    assert report.device == xp_device.name
    report.raise_if_failed()
    assert report["input"].max_abs_error < 1e-8


def test_parity_detects_a_wrong_backward():
    class BrokenReLU(nn.ReLU):
        def backward(self, grad_out):
            return grad_out  # forgets the mask

    report = gradcheck.check_layer(BrokenReLU(), X)
    assert not report.passed
    with pytest.raises(AssertionError, match="FAILED"):
        report.raise_if_failed()


def test_parity_detects_in_place_modification():
    class Mutating(nn.Identity):
        def forward(self, x):
            x[...] = 0.0
            return x

    with pytest.raises(AssertionError, match="modified in place|differ"):
        check_layer_parity(Mutating, X, devices=["cpu"])


def test_affine_is_linear_and_stores_course_layout():
    assert nn.Affine is nn.Linear
    layer = nn.Linear(784, 256)
    assert layer.params["W"].shape == (784, 256) and layer.params["b"].shape == (256,)
    bound = np.sqrt(6 / (784 + 256))
    W = xpnet.to_numpy(layer.params["W"])
    assert W.dtype == np.float32 and np.abs(W).max() <= bound and np.abs(W).max() > 0.9 * bound
    assert np.all(xpnet.to_numpy(layer.params["b"]) == 0)


def test_seed_gives_identical_weights_on_every_backend(xp_device):
    xpnet.seed(7)
    with xpnet.using("cpu"):
        ref = xpnet.to_numpy(nn.Linear(6, 4).params["W"])
    xpnet.seed(7)
    layer = nn.Linear(6, 4)
    assert xpnet.device_of(layer.params["W"]) == xp_device
    np.testing.assert_array_equal(xpnet.to_numpy(layer.params["W"]), ref)


def test_params_grads_and_zero_grad():
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.W", "0.b", "2.W", "2.b"]
    out = model.forward(xpnet.asarray(X))
    model.backward(xpnet.asarray(np.ones(out.shape)))
    assert np.abs(xpnet.to_numpy(model[0].grads["W"])).sum() > 0
    model.zero_grad()
    for p in model.parameters():
        assert p.grad.shape == p.value.shape and np.all(xpnet.to_numpy(p.grad) == 0)
        assert p.grad.dtype == p.value.dtype


def test_backward_overwrites_instead_of_accumulating():
    layer = nn.Linear(5, 2)
    x = xpnet.asarray(X)
    g = xpnet.asarray(np.ones((6, 2)))
    layer.forward(x)
    layer.backward(g)
    first = xpnet.to_numpy(layer.grads["W"]).copy()
    layer.forward(x)
    layer.backward(g)
    np.testing.assert_array_equal(xpnet.to_numpy(layer.grads["W"]), first)


def test_train_eval_switch_dropout():
    model = nn.Sequential(nn.Linear(5, 50), nn.Dropout(0.5))
    x = xpnet.asarray(X)
    model.eval()
    assert not model[1].training
    np.testing.assert_array_equal(xpnet.to_numpy(model.forward(x)), xpnet.to_numpy(model.forward(x)))
    model.train()
    dropped = xpnet.to_numpy(model.forward(x))
    assert 0.3 < np.mean(dropped == 0) < 0.7


@pytest.mark.parametrize("p", [0.2, 0.7])
def test_dropout_keeps_the_expected_value_for_p_other_than_a_half(p):
    """Kept units are scaled by exactly 1/(1 - p) (not 1/p, which agrees only at p = 0.5), about a
    fraction p is dropped, the mean is preserved, and backward uses the same mask."""
    n = 200_000
    with xpnet.using("cpu", dtype="float64"):
        layer = nn.Dropout(p)
        xpnet.seed(3)
        out = xpnet.to_numpy(layer.forward(xpnet.asarray(np.ones((n // 100, 100)))))
        grad = xpnet.to_numpy(layer.backward(xpnet.asarray(np.full((n // 100, 100), 2.0))))
    kept = out != 0
    np.testing.assert_array_equal(out[kept], 1.0 / (1.0 - p))
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs((~kept).mean() - p) < 5 * sigma
    assert abs(out.mean() - 1.0) < 5 * sigma / (1 - p)
    np.testing.assert_array_equal(grad, 2.0 * out)


def test_to_moves_parameters_and_gradients(xp_device):
    with xpnet.using("cpu"):
        model = nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2))
    before = {k: xpnet.to_numpy(v).copy() for k, v in model.state_dict().items()}
    assert model.to(xp_device, dtype="float64") is model
    assert model.device == xp_device and model.dtype == "float64"
    for p in model.parameters():
        assert xpnet.device_of(p.value) == xp_device and xpnet.device_of(p.grad) == xp_device
        assert p.grad.dtype == p.value.dtype
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(xpnet.to_numpy(v), before[k].astype(np.float64))
    out = model.forward(xpnet.asarray(X, dtype="float64", device=xp_device))
    assert xpnet.device_of(out) == xp_device


def test_repr_shows_shapes_and_parameter_count():
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    text = repr(model)
    assert "Linear(64→32)" in text and "ReLU()" in text and "2,410 parameters" in text
    assert "float32 on cpu" in text
    assert model.num_parameters() == 64 * 32 + 32 + 32 * 10 + 10


def test_wrong_input_shape_names_the_layer():
    layer = nn.Linear(784, 256)
    with pytest.raises(ShapeError, match=r"Linear\(784→256\) got input of shape \(32, 785\); expected \(N, 784\)"):
        layer.forward(xpnet.asarray(np.zeros((32, 785))))
    with pytest.raises(ShapeError, match="Flatten"):
        layer.forward(xpnet.asarray(np.zeros((32, 28, 28))))


def test_dtype_mismatch_is_an_error_not_a_silent_mix():
    layer = nn.Linear(5, 2)
    with pytest.raises(DtypeMismatchError, match="float32 parameters but got float64 input"):
        layer.forward(xpnet.asarray(X, dtype="float64"))


def test_input_on_another_backend_says_how_to_move_it():
    layer = nn.Linear(5, 2)
    with xpnet.using("strict"):
        x = xpnet.asarray(X)
    with pytest.raises(DeviceMismatchError, match=r"Linear\(5→2\).*model.to\(device\)"):
        layer.forward(x)


def test_input_on_another_device_of_the_same_backend():
    with xpnet.using("strict"):
        layer = nn.Linear(5, 2)
    with xpnet.using("strict:device1"):
        x = xpnet.asarray(X)
    with pytest.raises(DeviceMismatchError, match="strict:device1"):
        layer.forward(x)


def test_backward_before_forward_is_a_clear_error():
    with pytest.raises(RuntimeError, match="before forward"):
        nn.ReLU().backward(xpnet.asarray(X))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Linear(5, 2).backward(xpnet.asarray(np.ones((6, 2))))


def test_predict_batches_and_restores_mode():
    model = nn.Sequential(nn.Linear(5, 3), nn.Dropout(0.5))
    big = RNG.standard_normal((2500, 5))
    full = xpnet.to_numpy(model.predict(big, batch_size=None))
    batched = xpnet.to_numpy(model.predict(big, batch_size=1000))
    np.testing.assert_allclose(batched, full, rtol=1e-6)
    assert model.training
    proba = xpnet.to_numpy(model.predict_proba(big[:10]))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(xpnet.to_numpy(model.predict_classes(big[:10])), proba.argmax(axis=1))


def test_init_options():
    xpnet.seed(0)
    w = xpnet.to_numpy(nn.Linear(400, 300, init=1e-3).params["W"])
    assert abs(w.std() - 1e-3) < 1e-4
    w = xpnet.to_numpy(nn.Linear(400, 300, init="he_normal").params["W"])
    assert abs(w.std() - np.sqrt(2 / 400)) < 0.005
    with pytest.raises(ValueError, match="unknown init"):
        nn.Linear(3, 2, init="nope")


def test_clear_cache_drops_forward_state():
    model = nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Dropout(0.5), nn.Linear(3, 2))
    model.forward(xpnet.asarray(X))
    assert model.clear_cache() is model
    assert model[0]._x is None and model[1]._cache is None and model[2]._mask is None
    with pytest.raises(RuntimeError, match="before forward"):
        model.backward(xpnet.asarray(np.ones((6, 2))))
