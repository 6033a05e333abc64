"""CUDA-only paths found by reading CuPy's and PyTorch's sources; each test skips with
the reason where no GPU answers. Their CPU halves live beside the code they cover."""

import warnings

import numpy as np
import pytest

import xpnet
from xpnet import losses, nn, optim

pytestmark = pytest.mark.cuda


def _needs_gpu():
    if not xpnet.gpu_available():
        pytest.skip("no CUDA GPU answers an allocation here (xpnet.gpu_available() is False)")


def _bce_run(compile):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 4)), (rng.random(64) > 0.5).astype(np.float64)
    with xpnet.using("cuda", dtype="float64"):
        xpnet.seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1), nn.Sigmoid())
        history = xpnet.fit(model, losses.BinaryCrossEntropy(), X, y, optimizer=optim.Adam(model.parameters()),
                            epochs=3, batch_size=16, seed=1, progress=False, compile=compile)
    return history, [xpnet.to_numpy(p.value) for p in model.parameters()]


def test_bce_on_probabilities_is_captured_as_a_cuda_graph():
    """BinaryCrossEntropy on probabilities clips them; array-api-compat's CuPy clip
    read boolean-mask counts back to the host, which a stream capture refuses (the
    step fell back to eager with a RuntimeWarning)."""
    _needs_gpu()
    eager = _bce_run(False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled = _bce_run(True)
    assert compiled[0].params["compile"] == "cuda_graph"
    np.testing.assert_allclose(compiled[0]["loss"], eager[0]["loss"], rtol=1e-10)
    for got, want in zip(compiled[1], eager[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
