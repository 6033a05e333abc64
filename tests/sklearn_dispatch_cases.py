"""Array API dispatch: inputs of other libraries in, predictions in their namespace
and on their device out.

scikit-learn's dispatch needs ``SCIPY_ARRAY_API=1`` set before SciPy is first
imported, so tests/test_sklearn.py runs this file in its own interpreter; the file
name keeps the main run from collecting it.
"""

import os

import array_api_compat
import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose
from sklearn.datasets import load_iris

import xpnet
from xpnet.sklearn import MLPClassifier, MLPRegressor

pytestmark = [
    pytest.mark.skipif(os.environ.get("SCIPY_ARRAY_API") != "1", reason="needs SCIPY_ARRAY_API=1 before SciPy loads"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

X, Y = load_iris(return_X_y=True)


def _torch():
    torch = pytest.importorskip("torch")
    return lambda a: torch.asarray(a), "torch"


def _strict():
    strict = pytest.importorskip("array_api_strict")
    return lambda a: strict.asarray(a, device=strict.Device("device1")), "strict:device1"


def _jax():
    jnp = pytest.importorskip("jax.numpy")
    return lambda a: jnp.asarray(a), "jax"


def _cupy():
    if not xpnet.gpu_available():
        pytest.skip("needs a CUDA GPU (CuPy answering an allocation)")
    import cupy

    return lambda a: cupy.asarray(a), "cuda"


LIBRARIES = {"torch": _torch, "strict": _strict, "jax": _jax, "cupy": pytest.param(_cupy, marks=pytest.mark.cuda)}


def _same_place(result, like):
    assert array_api_compat.array_namespace(result) is array_api_compat.array_namespace(like)
    assert str(array_api_compat.device(result)) == str(array_api_compat.device(like))


@pytest.mark.parametrize("library", LIBRARIES.values(), ids=list(LIBRARIES))
@pytest.mark.parametrize("trained_on", ["cpu", "input's device"])
def test_predictions_come_back_in_the_input_namespace_and_device(library, trained_on):
    convert, device = library()
    device = "cpu" if trained_on == "cpu" else device
    X_in, y_class, y_reg = convert(X), convert(Y), convert(X[:, 0] * 1.0)
    X_host = xpnet.to_numpy(X_in).astype(np.float64)  # JAX rounds to float32 unless x64 is on
    params = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, dtype="float64")
    reference_clf = MLPClassifier(**params).fit(X_host, Y)
    reference_reg = MLPRegressor(**params).fit(X_host, X_host[:, 0])
    with sklearn.config_context(array_api_dispatch=True):
        clf = MLPClassifier(**params, device=device).fit(X_in, y_class)
        reg = MLPRegressor(**params, device=device).fit(X_in, y_reg)
        assert clf.model_.device == xpnet.backend.resolve_device(device)
        for result in (clf.predict(X_in), clf.predict_proba(X_in), clf.predict_log_proba(X_in), reg.predict(X_in)):
            _same_place(result, X_in)
        assert_allclose(xpnet.to_numpy(clf.predict_proba(X_in)), reference_clf.predict_proba(X_host), rtol=1e-9)
        assert_allclose(xpnet.to_numpy(reg.predict(X_in)), reference_reg.predict(X_host), rtol=1e-9)
        assert float(clf.score(X_in, y_class)) == pytest.approx(reference_clf.score(X_host, Y))
    assert isinstance(clf.coefs_[0], np.ndarray)  # fitted attributes stay NumPy, as scikit-learn's
    assert isinstance(clf.predict(X), np.ndarray)  # without dispatch: NumPy in, NumPy out
