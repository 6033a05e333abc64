"""scikit-learn's :class:`MLPClassifier` and :class:`MLPRegressor`, trained by xpnet on any device.

A drop-in for ``sklearn.neural_network``: the same parameters (solvers ``"adam"``,
``"sgd"`` with the ``"constant"``, ``"invscaling"`` and ``"adaptive"`` learning
rates, and ``"lbfgs"`` through :func:`scipy.optimize.minimize`), the same fitted
attributes, the same update rules, weight initialisation, shuffling, early stopping
and warnings. With the same ``random_state`` on float64 data, an xpnet estimator on
``device="cpu"`` follows scikit-learn's run to rounding. Two parameters are added::

    from xpnet.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64,), device="cuda", dtype="float32").fit(X, y)
    clf.predict_proba(X_test)        # NumPy in, NumPy out

- ``device``: where the network trains and predicts (any xpnet device: ``"cpu"``,
  ``"cuda"``, ``"cuda:1"``, ``"jax"``, ``"torch:cuda"``, ...). The training data
  moves there once per ``fit``; only the shuffled indices (once per epoch) and the
  epoch's loss (once per epoch) cross between host and device. L-BFGS moves one flat
  parameter buffer to the device and one flat gradient buffer back per evaluation.
  Sparse ``X`` (CSR/CSC) is densified one minibatch at a time, on the device.
- ``dtype``: ``None`` (default) follows ``X`` as scikit-learn does (float32 ``X``
  gives float32 parameters); ``"float32"`` or ``"float64"`` forces one (``"float32"``
  is the usual choice on a GPU). Predictions come back in scikit-learn's dtype, the
  predicted ``X``'s promoted with the parameters' (float32 parameters, float64 ``X``:
  float64), cast on the host.

With ``sklearn.set_config(array_api_dispatch=True)`` the estimators accept arrays of
any Array API library (CuPy, PyTorch, JAX, array-api-strict) and return predictions
in the input's namespace and on its device. Fitted attributes (``coefs_``,
``intercepts_``, ``loss_curve_``, ...) are NumPy, as in scikit-learn.

A fitted estimator pickles with its state on the host (no device arrays, no
caches), so it loads on a machine without the device it trained on; there, call
``set_params(device="cpu")`` before predicting.

The network is ``model_``, an :class:`xpnet.nn.Sequential` of ``Linear`` layers
and hidden activations that maps ``X`` to the output layer's pre-activation; the
output function is named by ``out_activation_``. ``coefs_[i]`` (n_in, n_out) and
``intercepts_[i]`` are its parameters: on ``device="cpu"`` the very arrays (writing
into them changes the predictions, as in scikit-learn), elsewhere host copies;
assigning a new list to ``coefs_`` or ``intercepts_`` loads it on any device.

Losses are xpnet's, weighted by ``sample_weight`` (:mod:`xpnet.losses`): softmax
cross-entropy, binary cross-entropy on logits, half the squared error summed over
outputs, and :class:`xpnet.losses.PoissonLoss`. Like scikit-learn, the regressor
reports the squared error's mean over outputs in ``loss_`` and ``loss_curve_`` (and
hands that value to L-BFGS) while stepping on the gradient of the sum. Negative
``sample_weight`` is refused (scikit-learn divides by ``sum(w)`` whatever its sign).
"""

from __future__ import annotations

import copy
import math
import warnings
from functools import cache
from itertools import pairwise
from numbers import Integral, Real
from typing import Any

import array_api_extra as xpx
import numpy as np
import scipy.optimize
import scipy.sparse
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d, gen_batches
from sklearn.utils import shuffle as _shuffle
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import backend as _backend
from . import functional as F
from . import losses as _losses
from . import nn
from .errors import BackendUnavailableError

__all__ = ["MLPClassifier", "MLPRegressor"]

_STOCHASTIC_SOLVERS = ("sgd", "adam")
_HIDDEN = {"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid, "identity": nn.Identity}
_PREDICT_CHUNK = 4096  # rows of sparse X densified at once when predicting


# ---------------------------------------------------------------- the optimizers
class _SGD:
    """scikit-learn's SGD: ``v = momentum v - lr g``; the step is ``v`` or, with
    Nesterov, ``momentum v - lr g``; ``learning_rate`` follows the schedule."""

    def __init__(self, params: list[Any], learning_rate_init: float, lr_schedule: str, momentum: float,
                 nesterov: bool, power_t: float):
        # Python floats: a NumPy scalar (a grid from np.logspace) is a strong type under
        # NumPy 2 and CuPy 14 (NEP 50), and np.float64 * a float32 array is float64.
        self.learning_rate_init = float(learning_rate_init)
        self.learning_rate = float(learning_rate_init)
        self.lr_schedule, self.nesterov = lr_schedule, nesterov
        self.momentum, self.power_t = float(momentum), float(power_t)
        self.state = {"velocities": [_zeros_like(p.value) for p in params]}

    def update_params(self, params: list[Any], grads: list[Any]) -> None:
        velocities = self.state["velocities"]
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            velocities[i] = self.momentum * velocities[i] - self.learning_rate * g
            step = self.momentum * velocities[i] - self.learning_rate * g if self.nesterov else velocities[i]
            p.value = p.value + step

    def iteration_ends(self, time_step: int) -> None:
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg: str, verbose: bool) -> bool:
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(f"{msg} Setting learning rate to {self.learning_rate:f}")
        return False


class _Adam:
    """scikit-learn's Adam: the bias corrections folded into the step size,
    ``lr_t = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)``, and ``epsilon`` added to
    ``sqrt(v)`` unscaled (the "epsilon hat" of Kingma & Ba, section 2)."""

    def __init__(self, params: list[Any], learning_rate_init: float, beta_1: float, beta_2: float, epsilon: float):
        self.learning_rate_init = float(learning_rate_init)  # Python floats, as in _SGD
        self.learning_rate = float(learning_rate_init)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.t = 0
        self.state = {"ms": [_zeros_like(p.value) for p in params], "vs": [_zeros_like(p.value) for p in params]}

    def update_params(self, params: list[Any], grads: list[Any]) -> None:
        self.t += 1
        ms, vs = self.state["ms"], self.state["vs"]
        self.learning_rate = (self.learning_rate_init * math.sqrt(1 - self.beta_2**self.t)
                              / (1 - self.beta_1**self.t))
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            xp = _backend.array_namespace(g)
            ms[i] = self.beta_1 * ms[i] + (1 - self.beta_1) * g
            vs[i] = self.beta_2 * vs[i] + (1 - self.beta_2) * (g * g)
            p.value = p.value - self.learning_rate * ms[i] / (xp.sqrt(vs[i]) + self.epsilon)

    def iteration_ends(self, time_step: int) -> None:
        pass

    def trigger_stopping(self, msg: str, verbose: bool) -> bool:
        if verbose:
            print(msg + " Stopping.")
        return True


def _zeros_like(a: Any) -> Any:
    return _backend.array_namespace(a).zeros_like(a)


def _copy(a: Any) -> Any:
    return _backend.array_namespace(a).asarray(a, copy=True)


def _move(value: Any, device: _backend.Device | None) -> Any:
    """Arrays inside lists, dicts and xpnet optimizers moved to ``device``; ``None``
    means the host (NumPy). Other values are returned as they are."""
    if isinstance(value, list):
        return [_move(v, device) for v in value]
    if isinstance(value, dict):
        return {k: _move(v, device) for k, v in value.items()}
    if isinstance(value, (_SGD, _Adam)):
        moved = copy.copy(value)
        moved.state = _move(value.state, device)
        return moved
    if isinstance(value, nn.Module):
        moved = copy.deepcopy(value.clear_cache()) if device is None else value
        return moved.to("cpu" if device is None else device).clear_cache()
    if isinstance(value, (np.ndarray, np.generic)) and device is None:
        return value
    if _is_array(value):
        return _backend.to_numpy(value) if device is None else _backend.asarray(value, dtype=value.dtype,
                                                                               device=device)
    return value


def _is_array(value: Any) -> bool:
    try:
        _backend.device_of(value)
    except TypeError:
        return False
    return True


# ------------------------------------------------------------- inputs and outputs
def _host_input(X: Any) -> tuple[Any, _backend.Device | None]:
    """(X for scikit-learn's validation, the device predictions go back to).

    With ``array_api_dispatch`` on, an array of any Array API library goes to the
    host for validation and its device is remembered; otherwise X is left as it is
    (scikit-learn then converts it with NumPy, or refuses it, as its own MLP does).
    """
    if not get_config()["array_api_dispatch"] or isinstance(X, np.ndarray) or not _is_array(X):
        return X, None
    return _backend.to_numpy(X), _backend.device_of(X)


def _to_input_device(result: Any, where: _backend.Device | None) -> Any:
    """A result (host or device array) on the input's device, or on the host."""
    if where is None:
        return _backend.to_numpy(result)
    if isinstance(result, np.ndarray) and not np.issubdtype(result.dtype, np.number) \
            and result.dtype != np.bool_:
        return result  # string or object labels have no Array API form
    return _backend.asarray(result, dtype=result.dtype, device=where)


@cache
def _can_scatter(xp: Any) -> bool:
    """Whether the namespace assigns through integer-array indices (array-api-strict
    does not: it follows the standard, which leaves that out)."""
    try:
        xpx.at(xp.zeros(2))[xp.asarray([1])].set(xp.ones(1))
    except (IndexError, TypeError, NotImplementedError):
        return False
    return True


def _densify(block: Any, device: _backend.Device, dtype: str) -> Any:
    """A sparse block (n, d) as a dense array on ``device``: only its nonzeros cross
    to the device, where they are scattered into zeros."""
    n, d = block.shape
    xp = device.xp
    if not _can_scatter(xp):
        return device.asarray(block.toarray(), dtype=dtype)
    coo = block.tocoo()
    coo.sum_duplicates()
    flat_index = device.asarray(coo.row.astype(np.int64) * d + coo.col)
    dense = xp.zeros(n * d, dtype=device.dtype(dtype), device=device.native)
    dense = xpx.at(dense)[flat_index].set(device.asarray(coo.data, dtype=dtype))
    return xp.reshape(dense, (n, d))


class _Rows:
    """Training or prediction data on the device: dense X moved once, sparse X kept
    on the host in CSR and densified per block of rows."""

    def __init__(self, X: Any, device: _backend.Device, dtype: str):
        self.device, self.dtype = device, dtype
        self.sparse = scipy.sparse.issparse(X)
        self.n = X.shape[0]
        self.data = X.tocsr() if self.sparse else device.asarray(X, dtype=dtype)

    def take(self, index: np.ndarray | slice, device_index: Any = None) -> Any:
        """Rows ``index`` (host indices or a slice); ``device_index`` is the same
        indices already on the device, for dense data."""
        if self.sparse:
            return _densify(self.data[index], self.device, self.dtype)
        if isinstance(index, slice):
            return self.data[index, ...]
        return self.device.xp.take(self.data, device_index, axis=0)

    def blocks(self, size: int) -> Any:
        """Consecutive row blocks of at most ``size`` rows (all rows at once when dense)."""
        if not self.sparse:
            yield self.data
            return
        for start in range(0, self.n, size):
            yield self.take(slice(start, min(start + size, self.n)))


# ------------------------------------------------------------------ the estimators
class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: parameters, the network, the solvers.

    Mirrors scikit-learn's ``BaseMultilayerPerceptron`` method for method, with the
    arithmetic on ``device`` through xpnet's layers and losses.
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "device": [str, _backend.Device],
        "dtype": [StrOptions({"float32", "float64"}), None],
    }

    # -- device and dtype ----------------------------------------------------------
    def _device(self) -> _backend.Device:
        try:
            return _backend.resolve_device(self.device)
        except BackendUnavailableError as exc:
            raise type(exc)(f"{type(self).__name__}(device={str(self.device)!r}) cannot run here: {exc}. "
                            f"A fitted estimator can move: est.set_params(device='cpu')") from exc

    def _place(self) -> _backend.Device:
        """The estimator's device, with the network and the solver state moved there
        (after unpickling, or a ``set_params(device=...)``)."""
        device = self._device()
        if self.model_.device != device:
            for key in ("model_", "_optimizer", "_best_params"):
                if getattr(self, key, None) is not None:
                    setattr(self, key, _move(getattr(self, key), device))
        return device

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        # Host copies: the pickle loads where the training device is missing, and
        # carries no device arrays nor forward caches.
        return {key: _move(value, None) for key, value in state.items()}

    # -- fitted parameters ---------------------------------------------------------
    def _linear_layers(self) -> list[nn.Linear]:
        return [layer for layer in self.model_ if isinstance(layer, nn.Linear)]

    def _get_coefs(self) -> list[np.ndarray]:
        return [_backend.to_numpy(layer.params["W"]) for layer in self._linear_layers()]

    def _get_intercepts(self) -> list[np.ndarray]:
        return [_backend.to_numpy(layer.params["b"]) for layer in self._linear_layers()]

    def _set(self, name: str, values: list[Any]) -> None:
        layers = self._linear_layers()
        if len(values) != len(layers):
            raise ValueError(f"{type(self).__name__} has {len(layers)} layers; got {len(values)} arrays for "
                             f"{'coefs_' if name == 'W' else 'intercepts_'}")
        for layer, value in zip(layers, values, strict=True):
            old = layer.params[name]
            if tuple(np.shape(value)) != tuple(old.shape):
                raise ValueError(f"expected an array of shape {tuple(old.shape)}, got {np.shape(value)}")
            layer.params[name] = _backend.asarray(value, dtype=old.dtype, device=_backend.device_of(old))

    coefs_ = property(_get_coefs, lambda self, v: self._set("W", v),
                      doc="Weights ``coefs_[i]`` of shape (n_in, n_out), as NumPy arrays.")
    intercepts_ = property(_get_intercepts, lambda self, v: self._set("b", v),
                           doc="Biases ``intercepts_[i]`` of shape (n_out,), as NumPy arrays.")

    # -- the network ---------------------------------------------------------------
    def _hidden_layer_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if np.any(np.array(sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return sizes

    def _initialize(self, y: np.ndarray, layer_units: list[int], dtype: str, device: _backend.Device) -> None:
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        self.out_activation_ = self._output_activation()
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(pairwise(layer_units)):
            # Glorot uniform with scikit-learn's factor (2 for sigmoid units), drawn
            # from scikit-learn's RandomState in its order: the same initial weights.
            bound = np.sqrt((2.0 if self.activation == "logistic" else 6.0) / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype, copy=False)
            intercept = self._random_state.uniform(-bound, bound, fan_out).astype(dtype, copy=False)
            layers.append(_linear(coef, intercept, device))
            if i < len(layer_units) - 2:
                layers.append(_HIDDEN[self.activation]())
        self.model_ = nn.Sequential(*layers)
        self._best_params = [_copy(p.value) for p in self.model_.parameters()]
        self._optimizer = None
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _loss(self) -> _losses.Loss:
        """The xpnet loss on the network's output (pre-activation)."""
        kind = self.out_activation_
        if kind == "softmax":
            return _losses.SoftmaxCrossEntropy(validate=False)
        if kind == "logistic":
            return _losses.BinaryCrossEntropy(from_logits=True, validate=False)
        if kind == "exp":
            return _losses.PoissonLoss(validate=False)
        return _losses.MeanSquaredError(validate=False)

    def _activate(self, out: Any) -> Any:
        kind = self.out_activation_
        if kind == "softmax":
            return F.softmax(out, axis=1)
        if kind == "logistic":
            return F.sigmoid(out)
        if kind == "exp":
            return _backend.array_namespace(out).exp(out)
        return out

    def _loss_grad(self, X: Any, y: Any, sample_weight: Any, loss: _losses.Loss) -> Any:
        """Forward and backward on one batch: the penalized loss as a 0-d device array;
        the gradients land in the layers' ``grads``. scikit-learn's objective: the
        (weighted) mean loss plus ``alpha / (2 sum(w)) * sum ||W||²``."""
        out = self.model_.forward(X)
        value = loss.forward(out, y, sample_weight=sample_weight)
        self.model_.backward_params(loss.backward())
        if self.out_activation_ == "identity" and self.n_outputs_ > 1:
            # scikit-learn reports (and L-BFGS minimizes) the squared error's mean over
            # outputs but steps on the gradient of its sum; kept for the same runs.
            value = value / float(self.n_outputs_)
        xp = _backend.array_namespace(out)
        sw_sum = float(X.shape[0]) if sample_weight is None else xp.sum(sample_weight)
        alpha = float(self.alpha)  # not a NumPy scalar, which would make float32 weights float64
        if alpha:
            weights = [layer.params["W"] for layer in self._linear_layers()]
            value = value + (0.5 * alpha) * sum(xp.sum(W * W) for W in weights) / sw_sum
            for layer in self._linear_layers():
                layer.grads["W"] = layer.grads["W"] + (alpha / sw_sum) * layer.params["W"]
        return value

    # -- fitting -------------------------------------------------------------------
    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False) -> _BaseMLP:
        hidden_layer_sizes = self._hidden_layer_sizes()
        first_pass = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        X, _ = _host_input(X)
        y, _ = _host_input(y)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(_host_input(sample_weight)[0], X)
            negative = sample_weight < 0
            if negative.any():
                # scikit-learn's MLP divides by sum(w) whatever its sign; xpnet's losses take a total
                # <= 0 as 1, so a negative batch would step uphill. Refused, as newer estimators do.
                raise ValueError(f"{type(self).__name__}: sample_weight must be >= 0, got {int(negative.sum())} "
                                 f"negative weight(s), the smallest {sample_weight.min():g}. Drop those samples "
                                 f"or clip the weights: np.clip(sample_weight, 0, None)")
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features, *hidden_layer_sizes, self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        device = self._device()
        # CuPy allocates (zeros_like, copies) and launches kernels on its current GPU, not
        # on its inputs' one: "cuda:1" must be current while it trains, as fit() makes it.
        with _backend.using(device):
            if first_pass:
                self._initialize(y, layer_units, self.dtype or X.dtype.name, device)
            else:
                self._place()
            if self.solver in _STOCHASTIC_SOLVERS:
                self._fit_stochastic(X, y, sample_weight, device, incremental)
            else:
                self._fit_lbfgs(X, y, sample_weight, device)
            self.model_.clear_cache()
            xp = device.xp
            finite = [xp.all(xp.isfinite(p.value)) for p in self.model_.parameters()]
            if not bool(xp.all(xp.stack(finite))):
                raise ValueError("Solver produced non-finite parameter weights. The input data may"
                                 " contain large values and need to be preprocessed.")
        return self

    def _fit_lbfgs(self, X: Any, y: np.ndarray, sample_weight: Any, device: _backend.Device) -> None:
        params = self.model_.parameters()
        dtype = self.model_.dtype
        xp = device.xp
        shapes = [p.shape for p in params]
        sizes = [math.prod(s) for s in shapes]
        X_dev = next(_Rows(X, device, dtype).blocks(max(X.shape[0], 1)))
        y_dev = device.asarray(y, dtype=dtype)
        sw_dev = None if sample_weight is None else device.asarray(sample_weight, dtype=dtype)
        loss = self._loss()

        def unpack(theta: np.ndarray) -> None:
            flat = device.asarray(theta, dtype=dtype)  # the one buffer in
            start = 0
            for p, shape, size in zip(params, shapes, sizes, strict=True):
                p.value = xp.reshape(flat[start:start + size], shape)
                start += size

        def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            unpack(theta)
            value = self._loss_grad(X_dev, y_dev, sw_dev, loss)
            packed = xp.concat([xp.reshape(value, (1,)), *(xp.reshape(p.grad, (-1,)) for p in params)])
            host = _backend.to_numpy(packed).astype(np.float64)  # the one buffer out
            return float(host[0]), host[1:]

        packed = np.concatenate([_backend.to_numpy(p.value).ravel() for p in params]).astype(np.float64)
        opt_res = scipy.optimize.minimize(
            loss_grad, packed, method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        self.loss_ = float(opt_res.fun)
        unpack(opt_res.x)
        for p in params:
            p.value = _copy(p.value)  # own buffers, not views of the last flat one

    def _fit_stochastic(self, X: Any, y: np.ndarray, sample_weight: Any, device: _backend.Device,
                        incremental: bool) -> None:
        params = self.model_.parameters()
        if not incremental or self._optimizer is None:
            if self.solver == "sgd":
                self._optimizer = _SGD(params, self.learning_rate_init, self.learning_rate, self.momentum,
                                       self.nesterovs_momentum, self.power_t)
            else:
                self._optimizer = _Adam(params, self.learning_rate_init, self.beta_1, self.beta_2, self.epsilon)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        dtype = self.model_.dtype
        if early_stopping:
            # Not stratified for multilabel targets.
            stratify = y if is_classifier(self) and self.n_outputs_ == 1 else None
            arrays = (X, y) if sample_weight is None else (X, y, sample_weight)
            split = train_test_split(*arrays, random_state=self._random_state, test_size=self.validation_fraction,
                                     stratify=stratify)
            X_train, X_val, y_train, y_val = split[:4]
            sample_weight_train, sample_weight_val = split[4:] if sample_weight is not None else (None, None)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                                 "or the size of your dataset.")
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
            X_val = _Rows(X_val, device, dtype)
        else:
            X_train, y_train, sample_weight_train = X, y, sample_weight
            X_val = y_val = sample_weight_val = None

        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=int)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                              stacklevel=4)
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        rows = _Rows(X_train, device, dtype)
        y_dev = device.asarray(y_train, dtype=dtype)
        sw_dev = None if sample_weight_train is None else device.asarray(sample_weight_train, dtype=dtype)
        xp = device.xp
        loss = self._loss()
        try:
            self.n_iter_ = 0
            for _ in range(self.max_iter):
                index_dev = None
                if self.shuffle:
                    sample_idx = _shuffle(sample_idx, random_state=self._random_state)
                    index_dev = device.asarray(sample_idx)  # one small transfer per epoch
                accumulated_loss = 0.0
                for batch_slice in gen_batches(n_samples, batch_size):
                    if self.shuffle:
                        batch_dev = index_dev[batch_slice]
                        X_batch = rows.take(sample_idx[batch_slice], batch_dev)
                        y_batch = xp.take(y_dev, batch_dev, axis=0)
                        sw_batch = None if sw_dev is None else xp.take(sw_dev, batch_dev, axis=0)
                    else:
                        X_batch = rows.take(batch_slice)
                        y_batch = y_dev[batch_slice, ...]
                        sw_batch = None if sw_dev is None else sw_dev[batch_slice]
                    batch_loss = self._loss_grad(X_batch, y_batch, sw_batch, loss)
                    accumulated_loss = accumulated_loss + batch_loss * float(batch_slice.stop - batch_slice.start)
                    self._optimizer.update_params(params, [p.grad for p in params])

                self.n_iter_ += 1
                self.loss_ = float(accumulated_loss) / n_samples  # the epoch's one host read
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print(f"Iteration {self.n_iter_:d}, loss = {self.loss_:.8f}")
                self._update_no_improvement_count(early_stopping, X_val, y_val, sample_weight_val)
                self._optimizer.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    what = "Validation score" if early_stopping else "Training loss"
                    msg = (f"{what} did not improve more than tol={self.tol:f} for "
                           f"{self.n_iter_no_change:d} consecutive epochs.")
                    if self._optimizer.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter:d}) reached and the "
                                  "optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=4)
        if early_stopping:
            # scikit-learn restores by aliasing (coefs_ = _best_coefs), so the best weights then *are* the
            # trained ones, and a warm-started fit that never beats best_validation_score_ keeps its last
            # epoch's weights. None stands for that aliasing: the best weights are the current ones.
            if self._best_params is not None:
                for p, best in zip(params, self._best_params, strict=True):
                    p.value = best
            self._best_params = None

    def _update_no_improvement_count(self, early_stopping: bool, X_val: Any, y_val: Any, sample_weight: Any) -> None:
        if early_stopping:
            self.validation_scores_.append(self._score(X_val, y_val, sample_weight=sample_weight))
            if self.verbose:
                print(f"Validation score: {self.validation_scores_[-1]:f}")
            last_valid_score = self.validation_scores_[-1]
            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                self._best_params = [_copy(p.value) for p in self.model_.parameters()]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    # -- predicting ----------------------------------------------------------------
    def _forward_pass_fast(self, X: Any, check_input: bool = True) -> Any:
        """The activated outputs (n_samples, n_outputs) for X, on the estimator's device."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        device = self._place()
        with _backend.using(device):  # CuPy computes on its current GPU (see _fit)
            rows = X if isinstance(X, _Rows) else _Rows(X, device, self.model_.dtype)
            outs = [self.model_.forward(block) for block in rows.blocks(_PREDICT_CHUNK)]
            self.model_.clear_cache()  # do not keep (or pickle) the last batch
            out = outs[0] if len(outs) == 1 else device.xp.concat(outs, axis=0)
            return self._activate(out)

    def _forward_host(self, X: Any, check_input: bool = True) -> np.ndarray:
        """The activated outputs on the host, in the dtype scikit-learn's MLP gives:
        X's promoted with the weights' (float32 weights and float64 X: float64)."""
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        out = _backend.to_numpy(self._forward_pass_fast(X, check_input=False))
        if isinstance(X, _Rows):
            return out
        return out.astype(np.result_type(X.dtype, out.dtype), copy=False)

    def _score_with_function(self, X: Any, y: Any, sample_weight: Any, score_function: Any) -> float:
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _BaseMLP:
        """Fit the model to X (n_samples, n_features), dense or sparse, and y.

        ``sample_weight`` (n_samples,) weights each sample's loss. Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self) -> bool:
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers. {self.solver} is not "
                                 "stochastic.")
        return True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _linear(coef: np.ndarray, intercept: np.ndarray, device: _backend.Device) -> nn.Linear:
    """An xpnet Linear layer holding the given host weights, on ``device``."""
    layer = nn.Linear(coef.shape[0], coef.shape[1], init=lambda shape, **_: coef, dtype=coef.dtype.name,
                      device="cpu")
    layer.params["b"] = intercept
    return layer.to(device)


_COMMON_DOC = """
    Parameters are scikit-learn's (see ``sklearn.neural_network.{name}``), plus:

    Args:
        device: where the network trains and predicts: any xpnet device string
            (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"jax"``, ``"torch:cuda"``,
            ``"strict"``, ...) or :class:`xpnet.Device`.
        dtype: ``None`` (follow ``X``: float32 stays float32, anything else is
            float64), ``"float32"`` or ``"float64"``.

    Attributes: scikit-learn's (``coefs_``, ``intercepts_``, ``n_iter_``, ``t_``,
    ``loss_``, ``loss_curve_``, ``best_loss_``, ``validation_scores_``,
    ``best_validation_score_``, ``n_layers_``, ``n_outputs_``, ``out_activation_``,
    ``n_features_in_``, ``feature_names_in_``{extra}), plus ``model_``, the
    :class:`xpnet.nn.Sequential` from ``X`` to the output pre-activation.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    __doc__ = ("Multi-layer perceptron classifier trained by xpnet: softmax cross-entropy for several "
               "classes, binary cross-entropy for two classes and for multilabel targets.\n"
               + _COMMON_DOC.format(name="MLPClassifier", extra=", ``classes_``"))

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        max_fun: int = 15000,
        device: str = "cpu",
        dtype: str | None = None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.device = device
        self.dtype = dtype

    loss = "log_loss"

    def _output_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, np.ndarray]:
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        # partial_fit's first call fitted the label binarizer on `classes`;
        # a warm start keeps it only for the same classes.
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError("`y` has classes not in `self.classes_`. "
                                 f"`self.classes_` has {self.classes_}. 'y' has {classes}.")
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def predict(self, X: Any) -> Any:
        """Class labels for X (n_samples, n_features): (n_samples,), or (n_samples,
        n_labels) of 0/1 for a multilabel fit; in X's namespace under Array API dispatch."""
        check_is_fitted(self)
        X, where = _host_input(X)
        return _to_input_device(self._predict(X), where)

    def _predict(self, X: Any, check_input: bool = True) -> np.ndarray:
        y_pred = self._forward_host(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        return self._score_with_function(X, y, sample_weight=sample_weight, score_function=accuracy_score)

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y) with the stochastic solver. The first call needs
        ``classes``, every label that can appear. Returns self."""
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_log_proba(self, X: Any) -> Any:
        """``log(predict_proba(X))``, in X's namespace under Array API dispatch."""
        check_is_fitted(self)
        X, where = _host_input(X)
        with np.errstate(divide="ignore"):
            return _to_input_device(np.log(self._proba(X)), where)

    def predict_proba(self, X: Any) -> Any:
        """Probabilities (n_samples, n_classes), columns ordered as ``classes_``; for a
        multilabel fit each label's (n_samples, n_labels). In X's namespace under Array
        API dispatch."""
        check_is_fitted(self)
        X, where = _host_input(X)
        return _to_input_device(self._proba(X), where)

    def _proba(self, X: Any) -> np.ndarray:
        y_pred = self._forward_host(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    __doc__ = ("Multi-layer perceptron regressor trained by xpnet: identity output with half the squared "
               "error, or ``loss=\"poisson\"``: exponential output with :class:`xpnet.losses.PoissonLoss`.\n"
               + _COMMON_DOC.format(name="MLPRegressor", extra=""))

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        max_fun: int = 15000,
        device: str = "cpu",
        dtype: str | None = None,
    ):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.device = device
        self.dtype = dtype

    def _output_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def predict(self, X: Any) -> Any:
        """Predictions (n_samples,) or (n_samples, n_targets) for X, in X's namespace
        under Array API dispatch."""
        check_is_fitted(self)
        X, where = _host_input(X)
        return _to_input_device(self._predict(X), where)

    def _predict(self, X: Any, check_input: bool = True) -> np.ndarray:
        y_pred = self._forward_host(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        return self._score_with_function(X, y, sample_weight=sample_weight, score_function=r2_score)

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple[Any, np.ndarray]:
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y) with the stochastic solver, continuing from the
        current weights. Returns self."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

