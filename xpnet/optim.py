"""Optimizers and learning-rate schedules.

Optimizers update parameters through :class:`xpnet.nn.Parameter` handles by
reassignment (``p.value = p.value - step``), so they work on immutable backends
(JAX) as on the others. Hyperparameters stay Python floats, so a float32 model
stays float32. State (momentum, Adam moments) has the parameter's dtype and
device, and follows the parameter if the model is moved with ``model.to``.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from array_api_compat import device as _device

from . import _validate
from .backend import array_namespace, device_of, dtype_name, to_numpy
from .errors import MissingGradientError, ShapeError

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "LRSchedule",
    "ExponentialDecay",
    "StepDecay",
    "InverseTimeDecay",
    "exponential_decay",
]


def _as_parameters(owner: str, params: Any) -> list[Any]:
    from .nn.module import Parameter

    if hasattr(params, "parameters"):
        params = params.parameters()
    if isinstance(params, (str, bytes, dict)) or not hasattr(params, "__iter__"):
        raise TypeError(f"{owner}: params must be model.parameters() (or the model), got {type(params).__name__}")
    params = list(params)
    if not params:
        raise ValueError(f"{owner}: got an empty parameter list; pass model.parameters()")
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"{owner}: params[{i}] is a {type(p).__name__}, not an xpnet.nn.Parameter; "
                            f"pass model.parameters()")
    return params


def _learning_rate(owner: str, lr: Any) -> float:
    return _validate.real(owner, "lr (the learning rate)", lr, low=0.0, low_open=True)


class _Hyperparameter:
    """An optimizer's number, checked whenever it is set: in the constructor and when a
    script changes it between ``fit`` calls (``opt.momentum = 0.9``), so a bad value is
    named where it is made, not found epochs later as a NaN model."""

    def __init__(self, label: str | None = None, **rules: Any):
        self.label, self.rules = label, rules

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.label = self.label or name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return self if obj is None else obj.__dict__[self.name]

    def __set__(self, obj: Any, value: Any) -> None:
        owner = type(obj).__name__
        if self.rules.get("boolean"):
            obj.__dict__[self.name] = _validate.boolean(owner, self.label, value)
        else:
            obj.__dict__[self.name] = _validate.real(owner, self.label, value, **self.rules)


class Optimizer:
    """Base class: ``step()`` updates every parameter from its stored gradient.

    Args:
        params: ``model.parameters()`` (or the model itself).
        lr: learning rate (a Python float; schedules change ``optimizer.lr``).
    """

    _state_names: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any] | Any, lr: float):
        owner = type(self).__name__
        lr = _learning_rate(owner, lr)
        self.params = _as_parameters(owner, params)
        self.lr = lr
        self.initial_lr = lr
        self.t = 0
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    @property
    def lr(self) -> float:
        """The learning rate of the next step (a Python float > 0)."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        # Schedules and LearningRateScheduler functions set it every epoch: a NaN or
        # negative rate is caught where it is made, not epochs later as a NaN model.
        # A decaying schedule may underflow to exactly 0 after many epochs: allowed
        # here (training stands still), while a constructor needs lr > 0.
        self._lr = _validate.real(type(self).__name__, "lr (the learning rate)", value, low=0.0)

    def zero_grad(self) -> None:
        """Zero every parameter's gradient."""
        for p in self.params:
            p.module.grads[p.name] = array_namespace(p.value).zeros_like(p.value)

    def step(self) -> None:
        """Apply one update to every parameter."""

        def apply(p: Any, w: Any, g: Any, state: dict[str, Any]) -> None:
            p.value = self._update(w, g, state, p.decay)

        self._step(apply)

    def _step(self, apply: Callable[[Any, Any, Any, dict[str, Any]], None]) -> None:
        """:meth:`step`'s checks, step count and per-step sharing around
        ``apply(handle, w, g, state)`` for each parameter (the CUDA-graph step's fused
        update applies in place: :mod:`xpnet._cuda_kernels`)."""
        if len(self.state) != len(self.params):
            raise ValueError(f"{type(self).__name__}.step: the optimizer was built over {len(self.state)} "
                             f"parameters and now holds {len(self.params)}; build a new optimizer over "
                             f"model.parameters() after adding or removing layers")
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):
            p = self.params[next(i for i, g in enumerate(grads) if g is None)]
            raise MissingGradientError(
                f"{type(self).__name__}.step: {p!r} has no gradient; a compiled training step (fit's "
                f"default) keeps its gradients inside. Run the model's forward and backward first, or "
                f"train with compile=False to keep every gradient")
        # every gradient checked before anything changes: a bad one found halfway would
        # leave some parameters updated and t counted for a step that never happened
        for p, grad in zip(self.params, grads, strict=True):
            if grad.shape != p.value.shape:
                raise ShapeError(f"{type(self).__name__}: the gradient of {p!r} has shape "
                                 f"{tuple(grad.shape)}; {type(p.module).__name__}.backward must store one of "
                                 f"the parameter's shape")
        self.t += 1
        # what every parameter's update shares this step (Adam's coefficients): with t
        # and lr as device scalars (a CUDA graph) each is a few kernels, so once a step,
        # not once a parameter; dropped after the step (it may hold a trace's values)
        self._shared: dict[Any, Any] | None = {}
        try:
            for p, state, grad in zip(self.params, self.state, grads, strict=True):
                value = p.value
                for key in self._state_names:
                    state[key] = _follow(state.get(key), value)
                apply(p, value, grad, state)
        finally:
            self._shared = None

    def _update(self, w: Any, g: Any, state: dict[str, Any], decay: bool) -> Any:
        raise NotImplementedError

    def _once(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, once per step for the same lr, t and hyperparameters: in a
        compiled step lr and t are device or traced scalars, and every value made of them
        is kernels that would otherwise repeat for each parameter. A subclass that sets
        ``self.lr`` per parameter inside ``_update`` (layer-wise rates) gets its own
        value for each: lr, t and the numbers the coefficient is made of are in the key."""
        shared = getattr(self, "_shared", None)
        if shared is None:  # an update outside step(): nothing to share it with
            return compute()
        key = (key, _scalar_key(self._lr), _scalar_key(self.t), self._hyperparameters())
        if key not in shared:
            shared[key] = compute()
        return shared[key]

    def _hyperparameters(self) -> tuple[Any, ...]:
        """The checked numbers (:class:`_Hyperparameter`) as they are now."""
        return tuple(self.__dict__.get(name) for name in _hyperparameter_names(type(self)))

    def _shared_coefficient(self, name: str, compute: Callable[[], Any], like: Any) -> Any:
        """``_coefficient(compute(), like)``, once per step and dtype of ``like``."""
        return self._once((name, like.dtype), lambda: _coefficient(compute(), like))

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and state as host NumPy arrays and Python numbers (for
        ``xpnet.save(..., optimizer=...)`` and resuming training)."""
        arrays = {f"{i}.{k}": to_numpy(v) for i, s in enumerate(self.state) for k, v in s.items()}
        return {"type": type(self).__name__, "lr": self.lr, "initial_lr": self.initial_lr, "t": self.t,
                "config": self.get_config(), "arrays": arrays}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, onto the parameters' device."""
        owner = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(f"{owner} expects the dict that state_dict() returns, got {type(state).__name__}")
        missing = [k for k in ("type", "lr", "initial_lr", "t", "arrays") if k not in state]
        if missing:
            raise ValueError(f"{owner}: the state lacks {missing}; pass what optimizer.state_dict() returned")
        if state.get("type") != type(self).__name__:
            raise ValueError(f"state is for a {state.get('type')}, not a {type(self).__name__}")
        lr = _validate.real(owner, "lr", state["lr"], low=0.0)
        initial_lr = _learning_rate(owner, state["initial_lr"])
        t = _validate.integer(owner, "t", state["t"], minimum=0)
        parsed = []
        for key, host in state["arrays"].items():
            i, _, name = str(key).partition(".")
            if not i.isdigit() or not name or int(i) >= len(self.params):
                raise ValueError(f"{owner}: state entry {key!r} does not name one of this optimizer's "
                                 f"{len(self.params)} parameters (expected '<index>.<name>', index < {len(self.params)})")
            p = self.params[int(i)]
            if tuple(getattr(host, "shape", ())) != p.shape:
                raise ValueError(f"optimizer state {key!r} has shape {tuple(getattr(host, 'shape', ()))}, "
                                 f"parameter has {p.shape}")
            parsed.append((int(i), name, host))
        self.lr, self.initial_lr, self.t = lr, initial_lr, t
        self.state = [{} for _ in self.params]
        for i, name, host in parsed:
            p = self.params[i]
            self.state[i][name] = device_of(p.value).asarray(host, dtype=p.value.dtype)

    def get_config(self) -> dict[str, Any]:
        """Hyperparameters other than ``lr`` (for ``repr`` and :meth:`state_dict`)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in {"lr": self.lr, **self.get_config()}.items())
        return f"{type(self).__name__}({args})"


def _scalar_key(value: Any) -> Any:
    """``value`` as part of a dict key: a number as itself, an array (a compiled step's
    lr or t) by identity."""
    return value if isinstance(value, numbers.Number) else ("array", id(value))


@functools.cache
def _hyperparameter_names(cls: type) -> tuple[str, ...]:
    return tuple(name for klass in cls.__mro__ for name, v in vars(klass).items() if isinstance(v, _Hyperparameter))


def _follow(state: Any, param: Any) -> Any:
    """State for ``param``: zeros at first; moved/cast if the model was moved since."""
    xp = array_namespace(param)
    if state is None:
        return xp.zeros_like(param)
    if type(state) is type(param) and state.dtype == param.dtype and str(_device(state)) == str(_device(param)):
        return state
    return device_of(param).asarray(to_numpy(state), dtype=dtype_name(param.dtype))


def _coefficient(value: Any, like: Any) -> Any:
    """A step's scalar coefficient for arrays like ``like``. A Python float stays one:
    NumPy 2's rules keep ``like``'s dtype, after computing the coefficient in float64.
    A compiled step passes ``lr`` and ``t`` as 0-d arrays (CUDA graph: float64 device
    scalars, so that ``1 - beta2**t`` keeps its digits); such a coefficient is cast to
    ``like``'s dtype, as the float would be, or a 0-d float64 array would turn float32
    parameters into float64 ones."""
    if type(value) in (int, float):
        return value
    if isinstance(value, numbers.Real):
        # a NumPy scalar (``opt.t = np.int64(...)`` set by hand): as a Python float, which
        # NumPy 2 treats as weak (a float64 scalar would make float32 parameters float64)
        # and which every backend multiplies
        return float(value)
    return array_namespace(like).astype(value, like.dtype)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay.

    ``g = grad + weight_decay * w`` (weights only, not biases: L2 regularization
    ``weight_decay / 2 * ||W||²``); with momentum ``v = momentum * v + g``;
    ``w = w - lr * v`` (PyTorch's formulation; ``nesterov=True`` uses
    ``g + momentum * v`` as the step).
    """

    momentum = _Hyperparameter(low=0.0, high=1.0, high_open=True)
    weight_decay = _Hyperparameter(low=0.0)
    nesterov = _Hyperparameter(boolean=True)

    def __init__(self, params: Any, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False):
        super().__init__(params, lr)
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.nesterov = nesterov
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("SGD: nesterov=True needs momentum > 0, got momentum=0.0")

    @property
    def _state_names(self) -> tuple[str, ...]:  # type: ignore[override]
        # follows momentum, which a script may turn on between fit calls (the velocity
        # then starts from zeros, as at the first step); with momentum 0, Nesterov's
        # step is the plain one
        return ("velocity",) if self.momentum else ()

    def _update(self, w, g, state, decay):
        if self.weight_decay and decay:
            g = g + self.weight_decay * w
        if self.momentum:
            v = self.momentum * state["velocity"] + g
            state["velocity"] = v
            g = g + self.momentum * v if self.nesterov else v
        step = g * self._neg_lr(g)  # fresh: add w in place instead of allocating w - lr * g
        step += w
        return step

    def _neg_lr(self, like: Any) -> Any:
        """-lr as the coefficient of gradients like ``like`` (once per step and dtype)."""
        return self._shared_coefficient("-lr", lambda: -self.lr, like)

    def get_config(self):
        return {"momentum": self.momentum, "weight_decay": self.weight_decay, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba, Algorithm 1) with bias correction; ``weight_decay`` adds L2
    to the gradient of weights (not biases), as scikit-learn's ``alpha``.

    With ``g`` the gradient at step ``t`` (1, 2, ...)::

        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        w = w - lr * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + eps)

    This is Algorithm 1 of the paper and ``torch.optim.Adam``: the numbers students
    compare against. ``eps_hat=True`` instead adds ``eps`` before the bias
    correction, ``w = w - lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) +
    eps)`` (the paper's "epsilon hat" remark in Section 2, used by Keras and
    scikit-learn's ``MLPClassifier``). The two differ only while ``sqrt(v)`` is
    comparable to ``eps``.

    Args:
        params: ``model.parameters()``.
        lr: step size, > 0.
        betas: decay rates of the moment estimates, each in [0, 1). ``beta2 = 1``
            would never update ``v`` from zero, so ``1 - beta2**t`` is 0 and nothing
            trains.
        eps: added to the denominator; must be > 0, because a parameter whose
            gradient is exactly zero so far (a dead ReLU's weights, an unused class'
            bias) has ``v = 0`` and ``eps = 0`` would make its step 0/0 = NaN.
        weight_decay: L2 coefficient, >= 0.
        eps_hat: use the epsilon-hat form above instead of Algorithm 1.
    """

    _state_names = ("m", "v")
    beta1 = _Hyperparameter("betas[0]", low=0.0, high=1.0, high_open=True)
    beta2 = _Hyperparameter("betas[1]", low=0.0, high=1.0, high_open=True)
    eps = _Hyperparameter(low=0.0, low_open=True)
    weight_decay = _Hyperparameter(low=0.0)
    eps_hat = _Hyperparameter(boolean=True)

    def __init__(self, params: Any, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, eps_hat: bool = False):
        super().__init__(params, lr)
        self.beta1, self.beta2 = _validate.pair("Adam", "betas", betas)
        self.eps = eps
        self.weight_decay = weight_decay
        self.eps_hat = eps_hat

    def _update(self, w, g, state, decay):
        xp = array_namespace(w)
        if self.weight_decay and decay:
            g = g + self.weight_decay * w
        m = self.beta1 * state["m"] + (1.0 - self.beta1) * g
        v = self.beta2 * state["v"] + (1.0 - self.beta2) * (g * g)
        state["m"], state["v"] = m, v
        step, eps = self._step_and_eps(w)
        return w - step * m / (xp.sqrt(v) + eps)

    def _step_and_eps(self, like: Any) -> tuple[Any, Any]:
        """The step size and epsilon of this step for parameters like ``like`` (once per
        step and dtype)."""
        step = self._shared_coefficient("step", lambda: self.lr * self._c2() / (1.0 - self.beta1**self.t), like)
        eps = self._shared_coefficient("eps", lambda: self.eps if self.eps_hat else self.eps * self._c2(), like)
        return step, eps

    def _c2(self) -> Any:
        """sqrt(1 - beta2**t). Algorithm 1's  lr * m_hat / (sqrt(v_hat) + eps)  equals
        lr * c2 / (1 - beta1**t) * m / (sqrt(v) + eps * c2): the epsilon-hat form with eps
        scaled, so both forms cost the same array ops. A compiled step passes t (and lr)
        as traced or device scalars: ``** 0.5`` then stays on the device; eager Python
        floats keep math.sqrt's exact rounding."""
        def compute() -> Any:
            correction = 1.0 - self.beta2**self.t
            return math.sqrt(correction) if isinstance(correction, float) else correction**0.5

        return self._once("c2", compute)

    def get_config(self):
        return {"betas": (self.beta1, self.beta2), "eps": self.eps, "weight_decay": self.weight_decay,
                "eps_hat": self.eps_hat}


# ------------------------------------------------------------------------ schedules
class LRSchedule:
    """Sets ``optimizer.lr`` from the epoch number: call ``step()`` once per epoch.

    Subclasses define ``lr_at(t)`` for epoch ``t`` = 0, 1, 2, ... from the base rate
    ``lr0``, which is the optimizer's ``lr`` when the schedule is made (as in PyTorch):
    a rate you lowered by hand is where the schedule starts, and the built-in schedules
    leave ``optimizer.lr`` as it is until the first ``step()``.

    To resume training, restore the schedule with the optimizer:
    :meth:`state_dict` holds the epoch count ``t`` and ``lr0``, and
    :class:`~xpnet.callbacks.ModelCheckpoint` saves it in the checkpoint.
    """

    def __init__(self, optimizer: Optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: optimizer must be an xpnet.optim.Optimizer, "
                            f"got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.lr0 = optimizer.lr
        self.t = 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, t: int) -> float:
        """The learning rate of epoch ``t`` (0 is the first)."""
        raise NotImplementedError

    def step(self) -> float:
        """Advance one epoch; returns the new learning rate."""
        self.t += 1
        self.optimizer.lr = self.lr_at(self.t)
        return self.optimizer.lr

    def state_dict(self) -> dict[str, Any]:
        """``{"type", "t", "lr0"}``: the epochs stepped so far and the base rate, as
        Python numbers (JSON-serialisable, saved by ``xpnet.save(..., schedule=...)``)."""
        return {"type": type(self).__name__, "t": self.t, "lr0": self.lr0}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from what :meth:`state_dict` returned: restores ``t`` and ``lr0``
        and sets ``optimizer.lr`` to ``lr_at(t)``, the rate of the next epoch."""
        owner = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(f"{owner} expects the dict that state_dict() returns, got {type(state).__name__}")
        missing = [k for k in ("type", "t", "lr0") if k not in state]
        if missing:
            raise ValueError(f"{owner}: the state lacks {missing}; pass what schedule.state_dict() returned "
                             f"(a checkpoint's schedule_state)")
        if state["type"] != type(self).__name__:
            raise ValueError(f"{owner}: the state is for a {state['type']}, not a {type(self).__name__}; "
                             f"build the schedule the checkpoint was trained with")
        t = _validate.integer(owner, "t", state["t"], minimum=0)
        lr0 = _learning_rate(owner, state["lr0"])
        self.t, self.lr0 = t, lr0
        self.optimizer.lr = self.lr_at(t)


class ExponentialDecay(LRSchedule):
    """``lr_t = lr_0 * decay**t`` (the course's gradient descent with decay)."""

    def __init__(self, optimizer: Optimizer, decay: float):
        self.decay = _validate.real("ExponentialDecay", "decay", decay, low=0.0, high=1.0, low_open=True)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.lr0 * self.decay**t


class StepDecay(LRSchedule):
    """``lr_t = lr_0 * gamma**(t // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.step_size = _validate.integer("StepDecay", "step_size", step_size, minimum=1)
        self.gamma = _validate.real("StepDecay", "gamma", gamma, low=0.0, high=1.0, low_open=True)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.lr0 * self.gamma ** (t // self.step_size)


class InverseTimeDecay(LRSchedule):
    """``lr_t = lr_0 / (1 + rate * t)``."""

    def __init__(self, optimizer: Optimizer, rate: float):
        self.rate = _validate.real("InverseTimeDecay", "rate", rate, low=0.0)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.lr0 / (1.0 + self.rate * t)


def exponential_decay(lr0: float, decay: float, t: int | Any) -> Any:
    """``lr0 * decay**t`` for a step count ``t`` (int or array of ints); ``lr0 > 0``,
    ``decay`` in (0, 1]."""
    _learning_rate("exponential_decay", lr0)
    _validate.real("exponential_decay", "decay", decay, low=0.0, high=1.0, low_open=True)
    return lr0 * decay**t
