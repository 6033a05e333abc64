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


def _device_or_skip(name):
    try:
        return xpnet.backend.resolve_device(name)
    except Exception as exc:  # noqa: BLE001 - becomes the skip reason
        pytest.skip(f"{name} unavailable: {type(exc).__name__}: {exc}")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("device", ["cuda", "torch:cuda"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sklearn_sparse_weighted_fit_on_a_gpu_equals_the_cpu(device, solver):
    """The estimator's device paths no CPU test reaches: sparse X densified by a scatter
    on the GPU, sample weights and the L2 term on device arrays, L-BFGS's flat buffers."""
    scipy_sparse = pytest.importorskip("scipy.sparse")
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    from xpnet.sklearn import MLPClassifier

    _device_or_skip(device)
    X, y = load_digits(n_class=4, return_X_y=True)
    X, y = np.where(X[:240] > 8, X[:240] / 16.0, 0.0), y[:240]
    weights = np.random.default_rng(0).uniform(0.5, 2.0, size=X.shape[0])
    params = dict(hidden_layer_sizes=(9,), solver=solver, max_iter=3, batch_size=80, alpha=1e-3, random_state=0)
    on_cpu = MLPClassifier(**params).fit(X, y, sample_weight=weights)
    there = MLPClassifier(**params, device=device).fit(scipy_sparse.csr_matrix(X), y, sample_weight=weights)
    assert there.model_.device == xpnet.backend.resolve_device(device)
    np.testing.assert_allclose(there.coefs_[0], on_cpu.coefs_[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(there.predict_proba(scipy_sparse.csr_matrix(X)), on_cpu.predict_proba(X), rtol=1e-9)


def _fit_three_times(compile):
    """Full-batch training, minibatches on another data set, then full-batch on fresh
    data of the first set's shape (uploaded anew: it may land at the address the first
    graph reads, which then reads it): graphs captured on data sets, replayed."""
    rng = np.random.default_rng(2)
    X1, y1 = rng.standard_normal((96, 5)), rng.integers(0, 3, 96)
    X2, y2 = rng.standard_normal((80, 5)), rng.integers(0, 3, 80)
    X3, y3 = rng.standard_normal((96, 5)), rng.integers(0, 3, 96)
    with xpnet.using("cuda", dtype="float64"):
        xpnet.seed(0)
        model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
        opt = optim.Adam(model.parameters(), lr=1e-2)
        histories = [xpnet.fit(model, "cross_entropy", X1, y1, optimizer=opt, epochs=6, batch_size=None,
                               progress=False, compile=compile),
                     xpnet.fit(model, "cross_entropy", X2, y2, optimizer=opt, epochs=4, batch_size=32, seed=1,
                               progress=False, compile=compile),
                     xpnet.fit(model, "cross_entropy", X3, y3, optimizer=opt, epochs=3, batch_size=None,
                               progress=False, compile=compile)]
    return histories, [xpnet.to_numpy(p.value) for p in model.parameters()]


def test_fit_replays_graphs_captured_on_the_data_sets():
    _needs_gpu()
    eager = _fit_three_times(False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled = _fit_three_times("auto")
    assert [h.params["compile"] for h in compiled[0]] == ["cuda_graph"] * 3
    for h_eager, h_compiled in zip(eager[0], compiled[0], strict=True):
        for key in h_eager.history:
            np.testing.assert_allclose(h_compiled[key], h_eager[key], rtol=1e-10, err_msg=key)
    for got, want in zip(compiled[1], eager[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
