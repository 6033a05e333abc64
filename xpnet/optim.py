"""Optimizers and learning-rate schedules.

Optimizers update parameters through :class:`xpnet.nn.Parameter` handles by
reassignment (``p.value = p.value - step``), so they work on immutable backends
(JAX) as on the others. Hyperparameters stay Python floats, so a float32 model
stays float32. State (momentum, Adam moments) has the parameter's dtype and
device, and follows the parameter if the model is moved with ``model.to``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from array_api_compat import device as _device

from .backend import array_namespace, device_of, dtype_name, to_numpy

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


def _as_parameters(params: Any) -> list[Any]:
    if hasattr(params, "parameters"):
        params = params.parameters()
    params = list(params)
    if not params:
        raise ValueError("optimizer got an empty parameter list; pass model.parameters()")
    return params


class Optimizer:
    """Base class: ``step()`` updates every parameter from its stored gradient.

    Args:
        params: ``model.parameters()`` (or the model itself).
        lr: learning rate (a Python float; schedules change ``optimizer.lr``).
    """

    _state_names: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Any] | Any, lr: float):
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.params = _as_parameters(params)
        self.lr = float(lr)
        self.initial_lr = float(lr)
        self.t = 0
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        """Zero every parameter's gradient."""
        for p in self.params:
            p.module.grads[p.name] = array_namespace(p.value).zeros_like(p.value)

    def step(self) -> None:
        """Apply one update to every parameter."""
        self.t += 1
        for p, state in zip(self.params, self.state, strict=False):
            value, grad = p.value, p.grad
            for key in self._state_names:
                state[key] = _follow(state.get(key), value)
            p.value = self._update(value, grad, state, p.decay)

    def _update(self, w: Any, g: Any, state: dict[str, Any], decay: bool) -> Any:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and state as host NumPy arrays and Python numbers (for
        ``xpnet.save(..., optimizer=...)`` and resuming training)."""
        arrays = {f"{i}.{k}": to_numpy(v) for i, s in enumerate(self.state) for k, v in s.items()}
        return {"type": type(self).__name__, "lr": self.lr, "initial_lr": self.initial_lr, "t": self.t,
                "config": self.get_config(), "arrays": arrays}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, onto the parameters' device."""
        if state.get("type") != type(self).__name__:
            raise ValueError(f"state is for a {state.get('type')}, not a {type(self).__name__}")
        self.lr, self.initial_lr, self.t = float(state["lr"]), float(state["initial_lr"]), int(state["t"])
        self.state = [{} for _ in self.params]
        for key, host in state["arrays"].items():
            i, name = key.split(".", 1)
            p = self.params[int(i)]
            if tuple(host.shape) != p.shape:
                raise ValueError(f"optimizer state {key!r} has shape {tuple(host.shape)}, parameter has {p.shape}")
            self.state[int(i)][name] = device_of(p.value).asarray(host, dtype=p.value.dtype)

    def get_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in {"lr": self.lr, **self.get_config()}.items())
        return f"{type(self).__name__}({args})"


def _follow(state: Any, param: Any) -> Any:
    """State for ``param``: zeros at first; moved/cast if the model was moved since."""
    xp = array_namespace(param)
    if state is None:
        return xp.zeros_like(param)
    if type(state) is type(param) and state.dtype == param.dtype and str(_device(state)) == str(_device(param)):
        return state
    return device_of(param).asarray(to_numpy(state), dtype=dtype_name(param.dtype))


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay.

    ``g = grad + weight_decay * w`` (weights only, not biases: L2 regularization
    ``weight_decay / 2 * ||W||²``); with momentum ``v = momentum * v + g``;
    ``w = w - lr * v`` (PyTorch's formulation; ``nesterov=True`` uses
    ``g + momentum * v`` as the step).
    """

    _state_names = ()

    def __init__(self, params: Any, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False):
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = float(momentum), float(weight_decay), nesterov
        if self.momentum:
            self._state_names = ("velocity",)

    def _update(self, w, g, state, decay):
        if self.weight_decay and decay:
            g = g + self.weight_decay * w
        if self.momentum:
            v = self.momentum * state["velocity"] + g
            state["velocity"] = v
            g = g + self.momentum * v if self.nesterov else v
        step = g * -self.lr  # fresh: add w in place instead of allocating w - lr * g
        step += w
        return step

    def get_config(self):
        return {"momentum": self.momentum, "weight_decay": self.weight_decay, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` adds L2 to the
    gradient of weights (not biases), as scikit-learn's ``alpha``."""

    _state_names = ("m", "v")

    def __init__(self, params: Any, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.beta1, self.beta2 = float(betas[0]), float(betas[1])
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def _update(self, w, g, state, decay):
        xp = array_namespace(w)
        if self.weight_decay and decay:
            g = g + self.weight_decay * w
        m = self.beta1 * state["m"] + (1.0 - self.beta1) * g
        v = self.beta2 * state["v"] + (1.0 - self.beta2) * (g * g)
        state["m"], state["v"] = m, v
        # a compiled step passes t (and lr) as traced or device scalars: `** 0.5` then
        # stays on the device; eager Python floats keep math.sqrt's exact rounding
        correction = 1.0 - self.beta2**self.t
        root = math.sqrt(correction) if isinstance(correction, float) else correction**0.5
        step = self.lr * root / (1.0 - self.beta1**self.t)
        return w - step * m / (xp.sqrt(v) + self.eps)

    def get_config(self):
        return {"betas": (self.beta1, self.beta2), "eps": self.eps, "weight_decay": self.weight_decay}


# ------------------------------------------------------------------------ schedules
class LRSchedule:
    """Sets ``optimizer.lr`` from the epoch number: call ``step()`` once per epoch.

    Subclasses define ``lr_at(t)`` for epoch ``t`` = 0, 1, 2, ...
    """

    def __init__(self, optimizer: Optimizer):
        self.optimizer = optimizer
        self.lr0 = optimizer.initial_lr
        self.t = 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, t: int) -> float:
        raise NotImplementedError

    def step(self) -> float:
        """Advance one epoch; returns the new learning rate."""
        self.t += 1
        self.optimizer.lr = self.lr_at(self.t)
        return self.optimizer.lr


class ExponentialDecay(LRSchedule):
    """``lr_t = lr_0 * decay**t`` (the course's gradient descent with decay)."""

    def __init__(self, optimizer: Optimizer, decay: float):
        self.decay = float(decay)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.lr0 * self.decay**t


class StepDecay(LRSchedule):
    """``lr_t = lr_0 * gamma**(t // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.lr0 * self.gamma ** (t // self.step_size)


class InverseTimeDecay(LRSchedule):
    """``lr_t = lr_0 / (1 + rate * t)``."""

    def __init__(self, optimizer: Optimizer, rate: float):
        self.rate = float(rate)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.lr0 / (1.0 + self.rate * t)


def exponential_decay(lr0: float, decay: float, t: int | Any) -> Any:
    """``lr0 * decay**t`` for a step count ``t`` (int or array of ints)."""
    return lr0 * decay**t
