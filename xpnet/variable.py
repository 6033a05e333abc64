"""A free-standing array that optimizers update: gradient descent on a plain function.

Optimizers and schedules are written for a model's parameters, but nothing in them
needs a model. A :class:`Variable` is one array plus its gradient, accepted wherever
``model.parameters()`` is:

>>> import xpnet
>>> p = xpnet.Variable([1.0, -1.0], dtype="float64")   # the point (x, y)
>>> opt = xpnet.optim.SGD([p], lr=0.1)
>>> schedule = xpnet.optim.ExponentialDecay(opt, decay=0.99)   # lr_t = 0.1 * 0.99**t
>>> for t in range(100):
...     x, y = p.value[0], p.value[1]
...     p.grad = [2 * x, 2 * y]                           # the gradient of x**2 + y**2
...     opt.step()
...     lr = schedule.step()
>>> bool(abs(xpnet.to_numpy(p.value)).max() < 1e-3)
True
"""

from __future__ import annotations

from typing import Any

from . import backend as _backend
from .nn.module import Parameter

__all__ = ["Variable"]


class _Store:
    """The two dicts a :class:`Parameter` reads and writes, without a layer around them."""

    __slots__ = ("params", "grads", "no_decay")

    def __init__(self, value: Any, decay: bool):
        self.params = {"value": value}
        self.grads = {"value": _backend.array_namespace(value).zeros_like(value)}
        self.no_decay = frozenset() if decay else frozenset({"value"})


class Variable(Parameter):
    """An array that an optimizer updates, with no model around it.

    Args:
        value: the starting point, any shape: a Python number or list, a NumPy array,
            or an array of any backend.
        dtype: ``"float32"``/``"float64"``; default: ``xpnet.default_dtype()`` for
            host data, the array's own dtype for a device array.
        device: where it lives; default: the current device (``xpnet.use``).
        decay: whether an optimizer's ``weight_decay`` applies to it (default True).

    ``value`` is the current point (an array on ``device``); ``grad`` is the gradient
    that the next ``optimizer.step()`` uses. Set it from anything array-like of the
    same shape - an array of any backend, or a list of numbers or 0-d arrays such as
    ``[2 * x, 2 * y]`` - and it is moved to the Variable's device and dtype. It
    starts at zeros.
    ``SGD([x, y], ...)``, ``SGD(x, ...)`` and schedules all accept Variables.

    Raises:
        ValueError: ``value`` is not floating point, or a gradient of another shape is set.
    """

    __slots__ = ()

    def __init__(self, value: Any, dtype: Any = None, device: str | _backend.Device | None = None, *,
                 decay: bool = True):
        array = _backend.asarray(value, dtype=dtype, device=device)
        if not _backend.dtype_name(array.dtype).startswith("float"):
            raise ValueError(
                f"Variable needs a floating-point value to descend on, got dtype {_backend.dtype_name(array.dtype)}; "
                "pass floats (e.g. [1.0, -1.0]) or dtype='float64'"
            )
        super().__init__(_Store(array, decay), "value")

    @property
    def grad(self) -> Any:
        """The gradient the next ``optimizer.step()`` uses (same shape, dtype, device as ``value``)."""
        return self.module.grads["value"]

    @grad.setter
    def grad(self, gradient: Any) -> None:
        value = self.value
        dtype, device = _backend.dtype_name(value.dtype), _backend.device_of(value)
        if isinstance(gradient, (list, tuple)) and any(_backend._is_array(g) for g in gradient):
            # [2 * x, 2 * y] of 0-d device arrays: stacked on the device, not through the host.
            parts = [_backend.asarray(g, dtype=dtype, device=device) for g in gradient]
            array = _backend.array_namespace(*parts).stack(parts)
        else:
            array = _backend.asarray(gradient, dtype=dtype, device=device)
        if tuple(array.shape) != self.shape:
            raise ValueError(
                f"Variable of shape {self.shape} got a gradient of shape {tuple(array.shape)}; "
                "the gradient has one entry per entry of the value"
            )
        self.module.grads["value"] = array

    @property
    def device(self) -> _backend.Device:
        """The device ``value`` lives on."""
        return _backend.device_of(self.value)

    @property
    def dtype(self) -> str:
        """The dtype name of ``value``."""
        return _backend.dtype_name(self.value.dtype)

    def parameters(self) -> list[Parameter]:
        """``[self]``, so that an optimizer accepts a single Variable as it accepts a model."""
        return [self]

    def zero_grad(self) -> None:
        """Set the gradient to zeros."""
        self.module.grads["value"] = _backend.array_namespace(self.value).zeros_like(self.value)

    def numpy(self) -> Any:
        """A host NumPy copy of ``value`` (for printing, plotting, recording a path)."""
        return _backend.to_numpy(self.value).copy()

    def __repr__(self) -> str:
        return f"Variable(shape={self.shape}, dtype={self.dtype}, device={self.device})"
