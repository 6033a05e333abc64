"""Tests for the ``Scale`` layer of check_my_layer.py, once per backend.

``xp_device`` (from ``pytest_plugins = ["xpnet.testing"]`` in conftest.py) runs each
test on cpu, strict, strict:device1, jax, torch, cuda and torch:cuda, skipping those
that are not available here with the reason.
"""

import numpy as np
from check_my_layer import Scale

import xpnet
from xpnet.testing import check_layer_parity

X = np.random.default_rng(0).standard_normal((8, 4))


def test_parity(xp_device):
    check_layer_parity(lambda: Scale(4), X, devices=[xp_device])


def test_gradcheck(xp_device):
    layer = Scale(4)  # built on xp_device: the fixture selects it for the test
    assert layer.device == xp_device
    layer.params["gamma"] = xpnet.asarray([0.5, -1.0, 2.0, 3.0])
    xpnet.gradcheck.check_layer(layer, X).raise_if_failed()


def test_backward_overwrites_gradients(xp_device):
    layer = Scale(4)
    x = xpnet.asarray(X)
    for _ in range(2):
        layer.forward(x)
        layer.backward(xpnet.asarray(np.ones((8, 4))))
    np.testing.assert_allclose(xpnet.to_numpy(layer.grads["gamma"]), X.sum(axis=0), rtol=1e-5)
