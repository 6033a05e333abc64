"""Finite-difference gradient checking, on the layer's own backend, in float64.

>>> report = xpnet.gradcheck.check_layer(xpnet.nn.Linear(5, 3), x)
>>> print(report)            # a table: tensor, shape, max abs error, max rel error
>>> report.raise_if_failed() # AssertionError with the table if any tensor is off

Relative error is the course's ``|a - n| / max(|a| + |n|, 1e-8)``; a tensor passes
when every element has ``|a - n| <= atol + rtol * |n|``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import random as _random
from .backend import device_of, to_numpy

__all__ = ["numerical_gradient", "check_layer", "check_model", "GradcheckReport", "TensorCheck"]


@dataclass
class TensorCheck:
    """Comparison of one tensor's analytic and numerical gradient."""

    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    passed: bool
    note: str = ""


@dataclass
class GradcheckReport:
    """Result of a gradient check: one :class:`TensorCheck` per input and parameter.

    ``bool(report)`` is True when every tensor passed.
    """

    subject: str
    device: str
    checks: list[TensorCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every tensor's gradient matched its finite differences."""
        return all(c.passed for c in self.checks)

    def __bool__(self) -> bool:
        return self.passed

    def __getitem__(self, name: str) -> TensorCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def __str__(self) -> str:
        rows = [f"gradient check of {self.subject} on {self.device}: {'passed' if self.passed else 'FAILED'}",
                f"  {'tensor':<12} {'shape':<14} {'max abs err':>12} {'max rel err':>12}"]
        for c in self.checks:
            mark = "" if c.passed else "  <-- FAILED" + (f": {c.note}" if c.note else "")
            rows.append(f"  {c.name:<12} {str(c.shape):<14} {c.max_abs_error:12.3e} {c.max_rel_error:12.3e}{mark}")
        return "\n".join(rows)

    def raise_if_failed(self) -> GradcheckReport:
        """Raise ``AssertionError`` (with the table) unless every tensor passed."""
        if not self.passed:
            raise AssertionError(str(self))
        return self


def numerical_gradient(f: Callable[[Any], Any], x: Any, h: float = 1e-6) -> np.ndarray:
    """Central differences ``(f(x + h e_i) - f(x - h e_i)) / 2h`` for every element.

    Args:
        f: maps an array shaped like ``x`` (on x's device) to a scalar (0-d array or
            float).
        x: the point, on any backend; use float64.
        h: step.

    Returns:
        A NumPy float64 array of x's shape. ``x`` itself is never modified.
    """
    from . import _validate

    _validate.real("numerical_gradient", "h", h, low=0.0, low_open=True)
    dev = device_of(x)
    base = to_numpy(x).astype(np.float64)
    grad = np.zeros_like(base)
    flat = grad.reshape(-1)
    for i in range(base.size):
        plus, minus = base.copy(), base.copy()
        plus.reshape(-1)[i] += h
        minus.reshape(-1)[i] -= h
        fp = float(f(dev.asarray(plus, dtype=x.dtype)))
        fm = float(f(dev.asarray(minus, dtype=x.dtype)))
        flat[i] = (fp - fm) / (2.0 * h)
    return grad


def _compare(name: str, analytic: Any, numeric: np.ndarray, rtol: float, atol: float) -> TensorCheck:
    a = to_numpy(analytic).astype(np.float64)
    if a.shape != numeric.shape:
        return TensorCheck(name, tuple(numeric.shape), float("inf"), float("inf"), False)
    diff = np.abs(a - numeric)
    rel = diff / np.maximum(np.abs(a) + np.abs(numeric), 1e-8)
    ok = bool(np.all(diff <= atol + rtol * np.abs(numeric)))
    return TensorCheck(name, tuple(a.shape), float(diff.max(initial=0.0)), float(rel.max(initial=0.0)), ok)


def _tolerances(owner: str, h: Any, rtol: Any, atol: Any) -> None:
    from . import _validate

    _validate.real(owner, "h", h, low=0.0, low_open=True)
    _validate.real(owner, "rtol", rtol, low=0.0)
    _validate.real(owner, "atol", atol, low=0.0)


def _module(owner: str, module: Any) -> None:
    from .nn import Module

    if not isinstance(module, Module):
        raise TypeError(f"{owner}: expected an xpnet.nn.Module, got {type(module).__name__}")


def _float64_copy(module: Any) -> Any:
    clone = copy.deepcopy(module)
    return clone.to(dtype="float64") if clone.parameters() else clone


def _perturbing(param: Any, evaluate: Callable[[], float]) -> Callable[[Any], float]:
    def f(value: Any) -> float:
        saved = param.value
        param.value = value
        try:
            return evaluate()
        finally:
            param.value = saved

    return f


def check_layer(layer: Any, x: Any, *, grad_out: Any = None, h: float = 1e-6, rtol: float = 1e-5,
                atol: float = 1e-7, seed: int = 0) -> GradcheckReport:
    """Compare a layer's backward with finite differences of ``sum(forward(x) * g)``.

    The check runs on a float64 copy of ``layer`` on the layer's own device (the
    layer itself is untouched). Dropout draws the same mask in every evaluation.

    Args:
        layer: any :class:`xpnet.nn.Module`.
        x: input (N, ...), host data or an array; moved to the layer's device.
        grad_out: upstream gradient g (output's shape); default seeded normal.
        h: finite-difference step.
        rtol: relative tolerance.
        atol: absolute tolerance.
        seed: seed for the default ``grad_out``.

    Returns:
        A :class:`GradcheckReport` with entries ``"input"`` and each parameter name;
        a parameter whose gradient backward never stored fails, with a note saying so.
    """
    from .backend import asarray

    _module("check_layer", layer)
    _tolerances("check_layer", h, rtol, atol)
    net = _float64_copy(layer)
    dev = net.device or (device_of(x) if not isinstance(x, np.ndarray) else None)
    xd = asarray(x, dtype="float64", device=dev)
    with _random.preserved_state():
        out = net.forward(xd)
    g_host = (np.random.default_rng(seed).standard_normal(tuple(out.shape)) if grad_out is None
              else to_numpy(grad_out))
    g = device_of(out).asarray(g_host, dtype="float64")

    def scalar(inp: Any) -> float:
        with _random.preserved_state():
            y = net.forward(inp)
        return float(device_of(y).xp.sum(y * g))

    with _random.preserved_state():
        net.forward(xd)
    markers = _unset_gradients(net)
    dx = net.backward(g)
    return _report(repr(layer), net, xd, dx, scalar, h, rtol, atol, markers)


def _unset_gradients(net: Any) -> dict[str, Any]:
    """Replace every stored gradient by a NaN-filled marker, so a backward that never
    stores one (or adds to the old one instead of overwriting it) fails the check
    instead of passing with a gradient left from before. Returns the markers."""
    markers = {}
    for name, p in net.named_parameters():
        xp = device_of(p.value).xp
        marker = xp.full_like(p.value, float("nan"))
        p.module.grads[p.name] = marker
        markers[name] = marker
    return markers


def _report(subject: str, net: Any, xd: Any, dx: Any, scalar: Callable[[Any], float], h: float, rtol: float,
            atol: float, markers: dict[str, Any]) -> GradcheckReport:
    analytic = {name: p.module.grads.get(p.name) for name, p in net.named_parameters()}
    report = GradcheckReport(subject, str(device_of(xd)))
    report.checks.append(_compare("input", dx, numerical_gradient(scalar, xd, h), rtol, atol))
    for name, p in net.named_parameters():
        numeric = numerical_gradient(_perturbing(p, lambda: scalar(xd)), p.value, h)
        if analytic[name] is None or analytic[name] is markers[name]:
            layer = type(p.module).__name__
            report.checks.append(TensorCheck(name, tuple(numeric.shape), float("inf"), float("inf"), False,
                                             f"{layer}.backward never stored grads[{p.name!r}]"))
            continue
        report.checks.append(_compare(name, analytic[name], numeric, rtol, atol))
    return report


def check_model(model: Any, loss: Any, x: Any, y: Any, *, h: float = 1e-6, rtol: float = 1e-5,
                atol: float = 1e-7) -> GradcheckReport:
    """Compare a model's backward (through ``loss``) with finite differences of the loss.

    Args:
        model: a :class:`xpnet.nn.Module` (e.g. a Sequential).
        loss: an :class:`xpnet.losses.Loss` or a name, as :func:`xpnet.fit` takes
            (``"cross_entropy"``, ``"bce"``, ``"mse"``).
        x: inputs (N, ...); y: targets (labels (N,) or (N, K)).

    Returns:
        A :class:`GradcheckReport` with ``"input"`` and every qualified parameter
        name (``"0.W"``, ``"0.b"``, ...).
    """
    from . import losses as _losses
    from .backend import asarray

    _module("check_model", model)
    _tolerances("check_model", h, rtol, atol)
    loss = _losses.get(loss)
    net = _float64_copy(model)
    dev = net.device
    xd = asarray(x, dtype="float64", device=dev)
    yd = asarray(y, device=dev) if not np.issubdtype(to_numpy(y).dtype, np.floating) else asarray(
        y, dtype="float64", device=dev)

    def scalar(inp: Any) -> float:
        with _random.preserved_state():
            return float(loss.forward(net.forward(inp), yd))

    with _random.preserved_state():
        loss.forward(net.forward(xd), yd)
    markers = _unset_gradients(net)
    dx = net.backward(loss.backward())
    return _report(f"{type(model).__name__} with {loss!r}", net, xd, dx, scalar, h, rtol, atol, markers)
