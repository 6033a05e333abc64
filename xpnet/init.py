"""Weight initializers.

Each draws on the host from xpnet's seeded NumPy generator (or ``rng``), casts on the
host, then moves the result to the device: every backend starts from bit-identical
weights. A weight matrix has shape ``(fan_in, fan_out)``, as :class:`xpnet.nn.Linear`
stores it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import _validate
from . import random as _random
from .backend import Device, _float_dtype_name, default_dtype, resolve_device

__all__ = ["xavier_uniform", "xavier_normal", "he_normal", "he_uniform", "normal", "zeros", "get"]

Shape = tuple[int, ...]


class _AllocationRefused(ValueError):
    """An initializer was asked for more values than ``_allocation_limit`` allows."""


class _Budget:
    remaining: int | None = None


_budget = _Budget()


@contextlib.contextmanager
def _allocation_limit(total: int) -> Iterator[None]:
    """Refuse, before drawing anything, initializers that would create more than
    ``total`` values in all inside this block (``_AllocationRefused``).

    ``xpnet.io.load`` rebuilds a model whose parameters must match the arrays stored
    in the file; a header claiming ``Linear(60000, 60000)`` beside a few stored values
    must fail here instead of drawing 3.6e9 random numbers first.
    """
    previous = _budget.remaining
    _budget.remaining = int(total)
    try:
        yield
    finally:
        _budget.remaining = previous


def _reserve(shape: Shape) -> None:
    if _budget.remaining is None:
        return
    size = math.prod(int(s) for s in shape)
    if size > _budget.remaining:
        raise _AllocationRefused(
            f"a parameter of shape {tuple(shape)} ({size:,} values) exceeds the {_budget.remaining:,} values "
            f"left to allocate"
        )
    _budget.remaining -= size


def _fans(shape: Shape) -> tuple[int, int]:
    if len(shape) == 1:
        return shape[0], shape[0]
    return shape[0], shape[1]


def _place(host: np.ndarray, dtype: Any, device: str | Device | None) -> Any:
    # int64 weights would be silently truncated initial values, float16 ones train to
    # NaN (Adam's eps underflows): parameters are float32 or float64, as in use()
    name = _float_dtype_name(dtype) if dtype is not None else default_dtype()
    return resolve_device(device).asarray(host.astype(name), dtype=name)


def xavier_uniform(shape: Shape, *, dtype: Any = None, device: str | Device | None = None, rng: Any = None) -> Any:
    """Glorot/Xavier uniform: U(-a, a) with ``a = sqrt(6 / (fan_in + fan_out))``.

    Args:
        shape: (fan_in, fan_out) for a weight matrix.
        dtype: float dtype (default ``xpnet.default_dtype()``).
        device: target device (default the current one).
        rng: an int seed or ``numpy.random.Generator``; default xpnet's global one.
    """
    _reserve(shape)
    fan_in, fan_out = _fans(shape)
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return _place(_random.generator(rng).uniform(-bound, bound, size=shape), dtype, device)


def xavier_normal(shape: Shape, *, dtype: Any = None, device: str | Device | None = None, rng: Any = None) -> Any:
    """Glorot/Xavier normal: N(0, std²) with ``std = sqrt(2 / (fan_in + fan_out))``.
    Arguments as :func:`xavier_uniform`."""
    _reserve(shape)
    fan_in, fan_out = _fans(shape)
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return _place(_random.generator(rng).normal(0.0, std, size=shape), dtype, device)


def he_normal(shape: Shape, *, dtype: Any = None, device: str | Device | None = None, rng: Any = None) -> Any:
    """He/Kaiming normal for ReLU nets: N(0, std²) with ``std = sqrt(2 / fan_in)``.
    Arguments as :func:`xavier_uniform`."""
    _reserve(shape)
    fan_in, _ = _fans(shape)
    return _place(_random.generator(rng).normal(0.0, math.sqrt(2.0 / fan_in), size=shape), dtype, device)


def he_uniform(shape: Shape, *, dtype: Any = None, device: str | Device | None = None, rng: Any = None) -> Any:
    """He/Kaiming uniform: U(-a, a) with ``a = sqrt(6 / fan_in)``. Arguments as
    :func:`xavier_uniform`."""
    _reserve(shape)
    fan_in, _ = _fans(shape)
    bound = math.sqrt(6.0 / fan_in)
    return _place(_random.generator(rng).uniform(-bound, bound, size=shape), dtype, device)


def normal(
    shape: Shape, std: float = 0.01, *, dtype: Any = None, device: str | Device | None = None, rng: Any = None
) -> Any:
    """N(0, std²), the course exercises' ``weight_scale * randn(...)``.
    Arguments as :func:`xavier_uniform`, plus ``std``."""
    _reserve(shape)
    return _place(_random.generator(rng).normal(0.0, float(std), size=shape), dtype, device)


def zeros(shape: Shape, *, dtype: Any = None, device: str | Device | None = None, rng: Any = None) -> Any:
    """All zeros (biases). ``rng`` is accepted and ignored, so every initializer
    has one signature."""
    _reserve(shape)
    return _place(np.zeros(shape), dtype, device)


_BY_NAME: dict[str, Callable[..., Any]] = {
    "xavier_uniform": xavier_uniform,
    "glorot_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "glorot_normal": xavier_normal,
    "he_normal": he_normal,
    "kaiming_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_uniform": he_uniform,
    "normal": normal,
    "zeros": zeros,
}


def get(init: str | float | Callable[..., Any]) -> Callable[..., Any]:
    """Resolve an ``init=`` argument: a name (``"xavier_uniform"``, ``"he_normal"``,
    ...), a float (the std of :func:`normal`, the course's ``weight_scale``), or a
    callable ``f(shape, *, dtype, device, rng)``."""
    if callable(init):
        return init
    if isinstance(init, (int, float)) and not isinstance(init, bool):
        std = _validate.real("init", "a float init (the weights' standard deviation)", init, low=0.0)
        return lambda shape, **kw: normal(shape, std, **kw)
    if isinstance(init, str) and init in _BY_NAME:
        return _BY_NAME[init]
    raise ValueError(f"unknown init {init!r}; use one of {', '.join(_BY_NAME)}, a float std, or a callable")
