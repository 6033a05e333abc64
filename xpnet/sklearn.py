"""scikit-learn estimators trained by xpnet: :class:`MLPClassifier` and :class:`MLPRegressor`.

They take scikit-learn's parameters of the same names (the stochastic solvers
``"adam"`` and ``"sgd"``) plus ``device`` and ``dtype``, so they fit into
pipelines, cross-validation and grid searches::

    from xpnet.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64,), device="cuda").fit(X, y)
    clf.predict_proba(X_test)        # NumPy in, NumPy out; the network is clf.model_

Regularization: scikit-learn minimizes, on each minibatch of ``n_b`` samples, the
batch-mean loss plus ``alpha / (2 n_b) * sum ||W||²`` (weights, not biases).
xpnet's optimizers add ``weight_decay * W`` to the gradient of weights, the penalty
``weight_decay / 2 * ||W||²`` on top of a batch-mean loss, so ``alpha`` becomes
``weight_decay = alpha / batch_size``: the same step as scikit-learn's on every full
batch (scikit-learn divides by the smaller ``n_b`` on a last partial batch).
``loss_curve_`` holds each epoch's mean data loss plus ``alpha / (2 batch_size) *
sum ||W||²`` at the end of the epoch, scikit-learn's number up to that same detail.

Losses: softmax cross-entropy for several classes; binary cross-entropy on logits
with one output for two classes and one output per label for multilabel targets;
for regression xpnet's MeanSquaredError, half the squared error summed over outputs
and averaged over samples. That is scikit-learn's loss for one output; with ``k``
outputs scikit-learn reports ``k`` times less but takes the same gradient step.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np
from array_api_compat import array_namespace
from scipy.special import expit, log_expit, log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import backend as _backend
from . import init as _init
from . import losses as _losses
from . import nn, optim
from . import random as _random
from .callbacks import Callback
from .training import fit as _xpnet_fit

__all__ = ["MLPClassifier", "MLPRegressor"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid, "identity": nn.Identity}
_SOLVERS = ("adam", "sgd")
_FLOAT_INPUT = (np.float64, np.float32)


def _glorot_logistic(shape: tuple[int, ...], *, dtype: Any = None, device: Any = None, rng: Any = None) -> Any:
    """Glorot uniform with scikit-learn's factor for sigmoid units: U(-a, a), a = sqrt(2 / (fan_in + fan_out))."""
    return _init.xavier_uniform(shape, dtype=dtype, device=device, rng=rng) * (1.0 / math.sqrt(3.0))


class _EpochEnd(Callback):
    """Hands each epoch's logs to the estimator; stops the run when it reports convergence."""

    def __init__(self, on_epoch: Any):
        self.on_epoch = on_epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.on_epoch(logs):
            self.run.stop_training = True


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: parameters, the network, training.

    Subclasses define ``_encode_targets`` (first pass and later ones), ``_loss``,
    ``_output_activation`` and ``_validation_score``.
    """

    _y_numeric = False  # validate_data's y_numeric: regression targets become floats

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate_init: float = 0.001,
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
        device: str = "cpu",
        dtype: str = "float64",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
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
        self.device = device
        self.dtype = dtype

    # -- parameters ----------------------------------------------------------------
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}")
        return [int(s) for s in sizes]

    def _check_hyperparameters(self) -> None:
        name = type(self).__name__

        def need(ok: bool, param: str, expected: str) -> None:
            if not ok:
                raise ValueError(f"{name}: {param} must be {expected}, got {getattr(self, param)!r}")

        def number(param: str) -> bool:
            value = getattr(self, param)
            return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)

        def integer(param: str) -> bool:
            value = getattr(self, param)
            return isinstance(value, numbers.Integral) and not isinstance(value, bool)

        self._hidden_sizes()
        need(self.activation in _ACTIVATIONS, "activation", f"one of {sorted(_ACTIVATIONS)}")
        need(self.solver in _SOLVERS, "solver", f"one of {list(_SOLVERS)} (lbfgs is not supported)")
        need(number("alpha") and self.alpha >= 0, "alpha", "a number >= 0")
        need(self.batch_size == "auto" or (integer("batch_size") and self.batch_size >= 1), "batch_size",
             "'auto' or a positive integer")
        need(number("learning_rate_init") and self.learning_rate_init > 0, "learning_rate_init", "a number > 0")
        need(integer("max_iter") and self.max_iter >= 1, "max_iter", "a positive integer")
        need(number("tol") and self.tol >= 0, "tol", "a number >= 0")
        need(number("momentum") and 0 <= self.momentum < 1, "momentum", "a number in [0, 1)")
        need(number("validation_fraction") and 0 < self.validation_fraction < 1, "validation_fraction",
             "a number in (0, 1)")
        need(number("beta_1") and 0 <= self.beta_1 < 1, "beta_1", "a number in [0, 1)")
        need(number("beta_2") and 0 <= self.beta_2 < 1, "beta_2", "a number in [0, 1)")
        need(number("epsilon") and self.epsilon > 0, "epsilon", "a number > 0")
        need(integer("n_iter_no_change") and self.n_iter_no_change >= 1, "n_iter_no_change", "a positive integer")
        need(self.dtype in _backend.FLOAT_DTYPES, "dtype", "'float32' or 'float64'")

    def _batch_size(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn(f"batch_size={self.batch_size} is larger than the {n} training samples; using {n}",
                          UserWarning, stacklevel=5)
        return min(self.batch_size, n)

    # -- the network ---------------------------------------------------------------
    def _build(self, n_in: int, n_out: int) -> nn.Sequential:
        sizes = [n_in, *self._hidden_sizes(), n_out]
        init = _glorot_logistic if self.activation == "logistic" else "xavier_uniform"
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1], init=init, rng=self._rng))
            if i < len(sizes) - 2:
                layers.append(_ACTIVATIONS[self.activation]())
        return nn.Sequential(*layers)

    def _make_optimizer(self) -> optim.Optimizer:
        params = self.model_.parameters()
        if self.solver == "adam":
            return optim.Adam(params, lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        return optim.SGD(params, lr=self.learning_rate_init, momentum=self.momentum,
                         nesterov=self.nesterovs_momentum and self.momentum > 0)


    def _outputs(self, X: Any) -> np.ndarray:
        """The network's outputs for validated X, as float64 on the host."""
        out = _backend.to_numpy(self.model_.predict(X))
        self.model_.clear_cache()  # do not keep (or pickle) the last batch
        return np.asarray(out, dtype=np.float64)

    def _predict_outputs(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_FLOAT_INPUT)
        return self._outputs(X)

    # -- training ------------------------------------------------------------------
    def _fit(self, X: Any, y: Any, *, incremental: bool, classes: Any = None) -> _BaseMLP:
        self._check_hyperparameters()
        first = not hasattr(self, "model_") or not (incremental or self.warm_start)
        X, y = validate_data(self, X, y, reset=first, dtype=_FLOAT_INPUT, multi_output=True,
                             y_numeric=self._y_numeric)
        targets = self._encode_targets(y, first=first, incremental=incremental, classes=classes)
        with _backend.using(self.device, self.dtype):
            if first:
                self._rng = np.random.default_rng(check_random_state(self.random_state).randint(2**31 - 1))
                self.model_ = self._build(X.shape[1], self.n_outputs_)
                self.n_layers_ = len(self._hidden_sizes()) + 2
                self.out_activation_ = self._output_activation()
                self._optimizer = self._make_optimizer()
                self.n_iter_ = 0
                self.loss_curve_: list[float] = []
                self.best_loss_ = None if self.early_stopping else math.inf
                self.validation_scores_ = [] if self.early_stopping else None
                self.best_validation_score_ = -math.inf if self.early_stopping else None
                self._no_improvement_count = 0
            elif not incremental:
                self._no_improvement_count = 0
            self._train(X, targets, incremental=incremental)
        return self

    def _train(self, X: np.ndarray, targets: np.ndarray, *, incremental: bool) -> None:
        early_stopping = self.early_stopping and not incremental
        validation = None
        if early_stopping:
            stratify = targets if self._stratify() else None
            X, X_val, targets, y_val = train_test_split(
                X, targets, test_size=self.validation_fraction, stratify=stratify,
                random_state=int(self._rng.integers(2**31 - 1)))
            validation = (_backend.asarray(X_val, dtype=self.model_.dtype, device=self.model_.device), y_val)
            if self.validation_scores_ is None:  # early_stopping switched on for a warm start
                self.validation_scores_, self.best_validation_score_ = [], -math.inf
        elif self.best_loss_ is None:  # early_stopping switched off for a warm start
            self.best_loss_ = math.inf
        self._best_state = None
        batch_size = self._batch_size(X.shape[0])
        self._optimizer.weight_decay = self.alpha / batch_size
        penalty = 0.5 * self.alpha / batch_size
        decayed = [p for p in self.model_.parameters() if p.decay]
        converged = False

        def on_epoch(logs: dict[str, float]) -> bool:
            nonlocal converged
            loss = logs["loss"]
            if penalty:
                loss += penalty * sum(float(array_namespace(p.value).sum(p.value * p.value)) for p in decayed)
            self.n_iter_ += 1
            self.loss_ = loss
            self.loss_curve_.append(loss)
            if validation is not None:
                improved = self._track_validation(self._validation_score(*validation))
            else:
                improved = loss <= self.best_loss_ - self.tol
                self.best_loss_ = min(self.best_loss_, loss)
            self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
            if self._no_improvement_count > self.n_iter_no_change and not incremental:
                converged = True
                if self.verbose:
                    what = "Validation score" if validation is not None else "Training loss"
                    print(f"{what} did not improve more than tol={self.tol} for {self.n_iter_no_change} "
                          f"consecutive epochs. Stopping.")
                return True
            return False

        with _random.preserved_state():
            _xpnet_fit(self.model_, self._loss(), X, targets, optimizer=self._optimizer,
                       epochs=1 if incremental else self.max_iter, batch_size=batch_size, shuffle=self.shuffle,
                       metrics=(), callbacks=[_EpochEnd(on_epoch)], seed=int(self._rng.integers(2**31 - 1)),
                       progress=bool(self.verbose))
        if early_stopping and self._best_state is not None:
            self.model_.load_state_dict(self._best_state)
        self._best_state = None
        self.model_.clear_cache()  # do not keep (or pickle) the last batch
        self.coefs_ = [_backend.to_numpy(layer.params["W"]).copy() for layer in self._linear_layers()]
        self.intercepts_ = [_backend.to_numpy(layer.params["b"]).copy() for layer in self._linear_layers()]
        if not incremental and not converged:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          f"optimization hasn't converged yet.", ConvergenceWarning, stacklevel=4)

    def _track_validation(self, score: float) -> bool:
        """Record a validation score; keep the weights of the best one. True if it improved by tol."""
        self.validation_scores_.append(score)
        improved = score >= self.best_validation_score_ + self.tol
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            self._best_state = {k: array_namespace(v).asarray(v, copy=True)
                                for k, v in self.model_.state_dict().items()}
        return improved

    def _linear_layers(self) -> list[nn.Linear]:
        return [layer for layer in self.model_ if isinstance(layer, nn.Linear)]

    def _stratify(self) -> bool:
        return False


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by xpnet (scikit-learn's API).

    Two classes: one logit and binary cross-entropy; more: one logit per class and
    softmax cross-entropy; a 2-D 0/1 ``y`` (multilabel): one logit per label and
    binary cross-entropy. Labels may be any sortable values (strings too).

    Args:
        hidden_layer_sizes: units of each hidden layer, e.g. ``(100,)`` or ``(64, 32)``.
        activation: hidden activation, ``"relu"``, ``"tanh"``, ``"logistic"`` or ``"identity"``.
        solver: ``"adam"`` or ``"sgd"`` (with ``momentum`` and ``nesterovs_momentum``).
        alpha: L2 penalty on the weights (see the module docstring for the scaling).
        batch_size: minibatch size; ``"auto"`` is ``min(200, n_samples)``.
        learning_rate_init: the constant learning rate.
        max_iter: maximum epochs per ``fit``.
        shuffle: reshuffle the samples every epoch.
        random_state: seed of the initial weights, the shuffling and the validation split.
        tol, n_iter_no_change: converged when the training loss (or the validation
            score with ``early_stopping``) has not improved by ``tol`` for more than
            ``n_iter_no_change`` consecutive epochs.
        early_stopping: hold out ``validation_fraction`` of the data (stratified),
            stop on its accuracy and keep the best epoch's weights.
        beta_1, beta_2, epsilon: Adam's parameters.
        warm_start: ``fit`` continues from the previous weights.
        verbose: print progress.
        device: where the network trains (``"cpu"``, ``"cuda"``, ``"jax"``, ...).
        dtype: ``"float64"`` (default, as scikit-learn's own MLP computes on float64
            input; its estimator checks assume that precision) or ``"float32"``
            (faster, and the usual choice on a GPU).

    Attributes:
        classes_, n_features_in_, n_outputs_, n_layers_, out_activation_, n_iter_,
        loss_, loss_curve_, best_loss_, validation_scores_, best_validation_score_,
        coefs_ / intercepts_ (NumPy copies, ``coefs_[i]`` of shape (n_in, n_out)),
        model_ (the :class:`xpnet.nn.Sequential`).
    """

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train on X (n_samples, n_features) and labels y (n_samples,) or a 0/1 indicator
        matrix (n_samples, n_labels). Returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y). The first call needs ``classes``: every label that will
        ever appear. Returns self."""
        return self._fit(X, y, incremental=True, classes=classes)

    def _encode_targets(self, y: np.ndarray, *, first: bool, incremental: bool, classes: Any) -> np.ndarray:
        name = type(self).__name__
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind == "multiclass-multioutput":
            raise ValueError(f"{name} supports one label per sample or a 0/1 multilabel indicator matrix; "
                             f"got a 2-D y of shape {y.shape} with values other than 0 and 1")
        multilabel = kind == "multilabel-indicator"
        if first and incremental and classes is None:
            raise ValueError(f"{name}.partial_fit needs classes= on its first call: every label that can "
                             f"appear, e.g. classes=np.unique(y_all)")
        if first:
            if multilabel:
                found = np.arange(y.shape[1])
            else:
                found = np.unique(classes if incremental else y)
                if found.shape[0] < 2:
                    raise ValueError(f"{name} needs samples of at least 2 classes to train; got 1 class "
                                     f"({found[0]!r})")
            self.classes_, self._multilabel = found, multilabel
            self._label_dtype = y.dtype
            self.n_outputs_ = y.shape[1] if multilabel else (1 if found.shape[0] == 2 else found.shape[0])
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"{name}.partial_fit got classes={list(classes)}, but the first call had "
                             f"{self.classes_.tolist()}; pass the same classes or none after the first call")
        elif multilabel != self._multilabel or (multilabel and y.shape[1] != self.n_outputs_):
            raise ValueError(f"{name} was fitted on {self._target_description()}; got y of type {kind} "
                             f"and shape {y.shape}")
        if multilabel:
            return y.astype(np.float64)
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            how = "partial_fit's first call" if incremental else "the previous fit (warm_start=True)"
            raise ValueError(f"{name}: y has labels {unknown.tolist()} not among the classes "
                             f"{self.classes_.tolist()} from {how}")
        if not first and not incremental and np.unique(y).shape[0] != self.classes_.shape[0]:
            raise ValueError(f"{name}: warm_start can only be used where y has the same classes as in the "
                             f"previous call to fit ({self.classes_.tolist()})")
        indices = np.searchsorted(self.classes_, y)
        return indices.astype(np.float64) if self.n_outputs_ == 1 else indices.astype(np.int64)

    def _target_description(self) -> str:
        if self._multilabel:
            return f"a multilabel indicator of {self.n_outputs_} labels"
        return f"the classes {self.classes_.tolist()}"

    def _loss(self) -> _losses.Loss:
        if self.out_activation_ == "softmax":
            return _losses.SoftmaxCrossEntropy()
        return _losses.BinaryCrossEntropy(from_logits=True)

    def _output_activation(self) -> str:
        return "logistic" if self.n_outputs_ == 1 or self._multilabel else "softmax"

    def _stratify(self) -> bool:
        return not self._multilabel

    def _validation_score(self, X_val: Any, y_val: np.ndarray) -> float:
        return float(accuracy_score(self._encoded_prediction(y_val, self._outputs(X_val)), y_val))

    def _encoded_prediction(self, like: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Predictions in the encoding of the training targets (0/1 columns or class indices)."""
        if self._multilabel or self.n_outputs_ == 1:
            return (out > 0).astype(like.dtype).reshape(like.shape)
        return np.argmax(out, axis=1).astype(like.dtype)

    def predict(self, X: Any) -> np.ndarray:
        """Labels for X (n_samples, n_features): shape (n_samples,), or (n_samples, n_labels) of 0/1
        for a multilabel fit."""
        out = self._predict_outputs(X)
        if self._multilabel:
            return (out > 0).astype(self._label_dtype)
        index = (out[:, 0] > 0).astype(np.intp) if self.n_outputs_ == 1 else np.argmax(out, axis=1)
        return self.classes_[index]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities (n_samples, n_classes), columns ordered as ``classes_``, rows summing
        to 1; for a multilabel fit, each label's probability (n_samples, n_labels)."""
        out = self._predict_outputs(X)
        if self._multilabel:
            return expit(out)
        if self.n_outputs_ == 1:
            return np.hstack([expit(-out), expit(out)])
        return softmax(out, axis=1)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of :meth:`predict_proba`, computed from the logits without underflow."""
        out = self._predict_outputs(X)
        if self._multilabel:
            return log_expit(out)
        if self.n_outputs_ == 1:
            return np.hstack([log_expit(-out), log_expit(out)])
        return log_softmax(out, axis=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by xpnet (scikit-learn's API): identity
    output and :class:`xpnet.losses.MeanSquaredError`; ``score`` is R².

    Parameters and attributes as :class:`MLPClassifier` (without ``classes_``);
    ``early_stopping`` stops on the validation R². ``y`` may be (n_samples,) or
    (n_samples, n_targets); ``predict`` returns the shape ``y`` had.
    """

    _y_numeric = True

    def fit(self, X: Any, y: Any) -> MLPRegressor:
        """Train on X (n_samples, n_features) and y (n_samples,) or (n_samples, n_targets). Returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over (X, y), continuing from the current weights. Returns self."""
        return self._fit(X, y, incremental=True)

    def _encode_targets(self, y: np.ndarray, *, first: bool, incremental: bool, classes: Any) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        targets = y.reshape(-1, 1) if y.ndim == 1 else y
        if first:
            self.n_outputs_ = targets.shape[1]
            self._one_d = y.ndim == 1
        elif targets.shape[1] != self.n_outputs_:
            raise ValueError(f"{type(self).__name__} was fitted on {self.n_outputs_} target(s); "
                             f"got y of shape {y.shape}")
        return targets

    def _loss(self) -> _losses.Loss:
        return _losses.MeanSquaredError()

    def _output_activation(self) -> str:
        return "identity"

    def _validation_score(self, X_val: Any, y_val: np.ndarray) -> float:
        return float(r2_score(y_val, self._outputs(X_val)))

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for X (n_samples, n_features): (n_samples,) or (n_samples, n_targets),
        as y was in fit."""
        out = self._predict_outputs(X)
        return out[:, 0] if self._one_d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
