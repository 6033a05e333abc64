"""Finite-difference gradient checking, on the layer's own backend, in float64.

>>> report = xpnet.gradcheck.check_layer(xpnet.nn.Linear(5, 3), x)
>>> print(report)            # a table: tensor, shape, max abs error, max rel error
>>> report.raise_if_failed() # AssertionError with the table if any tensor is off

Relative error is the course's ``|a - n| / max(|a| + |n|, 1e-8)``. A tensor passes
when every element of the analytic gradient ``a`` and the numerical one ``n`` has
``|a - n| <= atol + floor + rtol * max(|a|, |n|)``. ``floor`` is what central
differences cannot resolve: ``f(x + h)`` and ``f(x - h)`` each carry a rounding error
of about ``eps * F``, where ``F`` is the size of the objective's terms, so their
difference quotient is off by about ``eps * F / h`` (``eps`` is float64's 2.2e-16).
The check takes ten times that, so a correct model with outputs of order 100 or 1000
(unscaled regression targets) passes, while for outputs of order 1 the floor is below
``atol`` and a 1 % error in a gradient still fails.

The layer's ``forward`` and ``backward`` each get their own copy of ``x`` and
``grad_out``: one that modifies its argument in place fails the check (the
``Module`` contract forbids it, and ``g *= mask`` in a backward corrupts the gradient
of whatever layer handed ``g`` over).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import random as _random
from .backend import device_of, to_numpy
from .errors import DtypeMismatchError

__all__ = ["numerical_gradient", "check_layer", "check_model", "default_grad_out", "GradcheckReport", "TensorCheck"]


@dataclass
class TensorCheck:
    """Comparison of one tensor's analytic and numerical gradient."""

    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    passed: bool
    note: str = ""
    #: Index of the element with the largest absolute error (``None`` when the
    #: gradient is missing or misshapen), and the analytic and numerical values there.
    worst_index: tuple[int, ...] | None = None
    analytic_value: float = float("nan")
    numerical_value: float = float("nan")


@dataclass
class GradcheckReport:
    """Result of a gradient check: one :class:`TensorCheck` per input and parameter,
    plus a failed ``"x in place"`` / ``"g in place"`` entry when the layer modified its
    input or ``grad_out``.

    ``bool(report)`` is True when every entry passed.
    """

    subject: str
    device: str
    checks: list[TensorCheck] = field(default_factory=list)
    #: Absolute error finite differences cannot resolve at this objective's scale
    #: (see the module docstring); added to ``atol``.
    floor: float = 0.0

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
        rows = [f"gradient check of {self.subject} in float64 on {self.device}: "
                f"{'passed' if self.passed else 'FAILED'}"]
        if self.floor > _FLOOR_SHOWN:
            rows.append(f"  (errors below {self.floor:.1e} are finite-difference rounding at this output scale)")
        rows.append(f"  {'tensor':<12} {'shape':<14} {'max abs err':>12} {'max rel err':>12}")
        for c in self.checks:
            mark = "" if c.passed else "  <-- FAILED" + (f": {c.note}" if c.note else "")
            rows.append(f"  {c.name:<12} {str(c.shape):<14} {c.max_abs_error:12.3e} {c.max_rel_error:12.3e}{mark}")
            if not c.passed and c.worst_index is not None:
                rows.append(f"  {'':<12} worst at {list(c.worst_index)}: analytic {c.analytic_value:.6g}, "
                            f"numerical {c.numerical_value:.6g}")
        return "\n".join(rows)

    def raise_if_failed(self) -> GradcheckReport:
        """Raise ``AssertionError`` (with the table) unless every tensor passed."""
        if not self.passed:
            raise AssertionError(str(self))
        return self


def numerical_gradient(f: Callable[[Any], Any], x: Any, h: float = 1e-6) -> np.ndarray:
    """Central differences ``(f(x + h e_i) - f(x - h e_i)) / 2h`` for every element.

    The quotient divides by the step actually taken, ``(x + h) - (x - h)`` as
    rounded in float64, not by ``2h``: for large ``|x|`` the two differ.

    Args:
        f: maps an array shaped like ``x`` (on x's device) to a scalar (0-d array or
            float).
        x: the point, on any backend. ``f`` is always evaluated at float64 points:
            a float32 ``x`` (xpnet's default dtype) would round a step of 1e-6 away
            and give gradients about 10% off.
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
        try:
            fp = float(f(dev.asarray(plus, dtype="float64")))
        except DtypeMismatchError as exc:
            raise DtypeMismatchError(
                f"numerical_gradient evaluates f at float64 points (finite differences in float32 are about "
                f"10% off), and f refused them: {exc}. Convert the model with model.to(dtype='float64')"
            ) from None
        fm = float(f(dev.asarray(minus, dtype="float64")))
        flat[i] = (fp - fm) / (plus.reshape(-1)[i] - minus.reshape(-1)[i])
    return grad


#: Safety factor on the rounding error ``eps * F / h`` of a central difference; the
#: largest error seen on correct models (MSE, outputs of order 1 to 1e4) was 0.8x.
_ROUNDING_SAFETY = 10.0
#: The floor is mentioned in the report only when it is larger than this (default atol).
_FLOOR_SHOWN = 1e-7


def _rounding_floor(scale: float, h: float) -> float:
    """The absolute error of a central difference of an objective whose terms have
    total magnitude ``scale`` (see the module docstring)."""
    return _ROUNDING_SAFETY * float(np.finfo(np.float64).eps) * scale / h


def _compare(name: str, analytic: Any, numeric: np.ndarray, rtol: float, atol: float) -> TensorCheck:
    a = to_numpy(analytic).astype(np.float64)
    if a.shape != numeric.shape:
        whose = "the input's" if name == "input" else "the parameter's"
        return TensorCheck(name, tuple(numeric.shape), float("inf"), float("inf"), False,
                           f"gradient has shape {a.shape}, expected {whose} {tuple(numeric.shape)}")
    diff = np.abs(a - numeric)
    rel = diff / np.maximum(np.abs(a) + np.abs(numeric), 1e-8)
    # NaN never compares <=, so a NaN in either gradient fails
    ok = bool(np.all(diff <= atol + rtol * np.maximum(np.abs(a), np.abs(numeric))))
    check = TensorCheck(name, tuple(a.shape), float(diff.max(initial=0.0)), float(rel.max(initial=0.0)), ok)
    if diff.size:
        # a NaN is the worst error there is; np.argmax would skip past it only by luck
        worst = int(np.argmax(np.where(np.isnan(diff), np.inf, diff)))
        index = np.unravel_index(worst, diff.shape)
        check.worst_index = tuple(int(i) for i in index)
        check.analytic_value, check.numerical_value = float(a[index]), float(numeric[index])
    return check


def _copy(array: Any) -> Any:
    """A new array equal to ``array``, on its device: what a layer may modify freely."""
    return device_of(array).asarray(to_numpy(array), dtype=array.dtype)


def _argument_problems(module: Any, x_given: Any, x_host: np.ndarray, g_given: Any,
                       g_host: np.ndarray) -> list[Any]:
    """Rows for a forward or backward that wrote into its input or its grad_out."""
    name = type(module).__name__
    inner = " (or a layer in it)" if list(module.children()) else ""
    return [
        _in_place_check("x in place", "input", x_given, x_host, f"{name}.forward or .backward{inner}",
                        "compute new arrays from x instead of writing into it"),
        _in_place_check("g in place", "grad_out", g_given, g_host, f"{name}.backward{inner}",
                        "write g = g * mask, not g *= mask (the caller still needs its gradient)"),
    ]


def _in_place_check(entry: str, what: str, given: Any, original: np.ndarray, culprit: str,
                    fix: str) -> TensorCheck | None:
    """A failed check named ``entry`` when ``given`` (``culprit``'s argument ``what``) no
    longer equals ``original``."""
    after = to_numpy(given)
    if np.array_equal(after, original, equal_nan=True):
        return None
    after = after.astype(np.float64)
    change = np.abs(after - original)
    rel = change / np.maximum(np.abs(after) + np.abs(original), 1e-8)
    return TensorCheck(entry, tuple(original.shape), float(np.max(change, initial=0.0)),
                       float(np.max(rel, initial=0.0)), False, f"{culprit} modified its {what} in place; {fix}")


def _subject(module: Any) -> str:
    """A one-line name: the repr of a plain layer, ``Sequential(Linear(4→3), ReLU())``
    for a module with children (whose multi-line repr names the original's dtype)."""
    children = module.children()
    if not children:
        text = repr(module)
        return text if "\n" not in text else type(module).__name__
    return f"{type(module).__name__}({', '.join(_subject(c) for c in children)})"


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


def _device_for(net: Any, x: Any) -> Any:
    # A module without parameters has no device of its own: it is checked where x lives
    # (the default device for host data), not silently on the default device.
    return net.device or (device_of(x) if not isinstance(x, np.ndarray) else None)


def _perturbing(param: Any, evaluate: Callable[[], float]) -> Callable[[Any], float]:
    def f(value: Any) -> float:
        saved = param.value
        param.value = value
        try:
            return evaluate()
        finally:
            param.value = saved

    return f


#: Mixed into ``seed`` for the default ``grad_out``: ``default_rng(0)`` is how the docs,
#: the notebooks and most users build ``x``, and a ``g`` equal to ``x`` (the output of a
#: shape-preserving layer has x's shape) lets every mistake symmetric in x and g pass,
#: a transposed weight gradient in a square Linear or a ReLU mask taken from g.
_GRAD_OUT_STREAM = 0x9E3779B9


def default_grad_out(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """The upstream gradient :func:`check_layer` uses when none is given.

    Standard normal values from ``np.random.default_rng([seed, 0x9E3779B9])``, a
    stream no user draws from by accident, so ``g`` never equals an ``x`` built with
    ``default_rng(seed)``.

    Args:
        shape: the layer's output shape (N, ...).
        seed: an int.

    Returns:
        A NumPy float64 array of ``shape``.
    """
    return np.random.default_rng([seed, _GRAD_OUT_STREAM]).standard_normal(shape)


#: Two evaluations of a forward at the same input may differ by this much (relative)
#: before the forward counts as not reproducible.
_REPRODUCIBLE_RTOL = 1e-9
_NOT_REPRODUCIBLE = ("forward is not reproducible: two evaluations at the same input differ; draw random numbers "
                     "from xpnet.random.generator()/xpnet.init and keep no state across calls")


def _differs(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two evaluations of the same forward at the same input disagree."""
    if first.shape != second.shape:
        return True
    scale = np.maximum(np.abs(first), np.abs(second))
    return not bool(np.all((np.abs(first - second) <= _REPRODUCIBLE_RTOL * scale) | (first == second)))


def _not_reproducible(subject: str, device: str, first: np.ndarray, second: np.ndarray) -> GradcheckReport:
    """A report whose only (failed) entry says the forward gave two answers: finite
    differences of such a function say nothing about its backward."""
    check = _compare("forward", second, first, 0.0, 0.0)
    check.passed, check.note = False, _NOT_REPRODUCIBLE
    return GradcheckReport(subject, device, [check])


def check_layer(layer: Any, x: Any, *, grad_out: Any = None, h: float = 1e-6, rtol: float = 1e-5,
                atol: float = 1e-7, seed: int = 0) -> GradcheckReport:
    """Compare a layer's backward with finite differences of ``sum(forward(x) * g)``.

    The check runs on a float64 copy of ``layer`` on the layer's own device (the
    layer itself is untouched). Dropout draws the same mask in every evaluation.
    ``forward`` and ``backward`` get their own copies of ``x`` and ``g``; one that
    modifies its argument in place fails (entry ``"x in place"`` or ``"g in place"``).
    A forward that gives two answers at the same input (it draws from ``np.random``
    or keeps state across calls) fails with a single entry ``"forward"`` saying so:
    take random numbers from ``xpnet.random.generator()`` or ``xpnet.init``.

    Args:
        layer: any :class:`xpnet.nn.Module`.
        x: input (N, ...), host data or an array; moved to the layer's device.
        grad_out: upstream gradient g, of the output's shape (N, ...); default
            :func:`default_grad_out` (never equal to an ``x`` drawn from
            ``default_rng(seed)``).
        h: finite-difference step.
        rtol: relative tolerance.
        atol: absolute tolerance (the rounding floor of the module docstring is
            added to it).
        seed: an int, seed for the default ``grad_out``.

    Returns:
        A :class:`GradcheckReport` with entries ``"input"`` and each parameter name
        (qualified, ``"0.W"``, for a module with children). A failed entry says why
        where it can: backward returned None, never stored a parameter's gradient,
        or added to the stored one instead of overwriting it.

    Raises:
        ShapeError: ``grad_out`` does not have the output's shape.
    """
    from . import _validate
    from .backend import asarray
    from .errors import ShapeError

    _module("check_layer", layer)
    _tolerances("check_layer", h, rtol, atol)
    seed = _validate.integer("check_layer", "seed", seed)
    net = _float64_copy(layer)
    dev = _device_for(net, x)
    xd = asarray(x, dtype="float64", device=dev)
    x_host, x_given = to_numpy(xd).copy(), _copy(xd)
    with _random.preserved_state():
        first = to_numpy(net.forward(_copy(xd))).astype(np.float64)
    with _random.preserved_state():
        out = net.forward(x_given)
    second = to_numpy(out).astype(np.float64)
    if _differs(first, second):
        return _not_reproducible(_subject(layer), str(device_of(xd)), first, second)
    if grad_out is None:
        g_host = default_grad_out(tuple(out.shape), seed)
    else:
        g_host = to_numpy(grad_out).astype(np.float64)
        if g_host.shape != tuple(out.shape):
            raise ShapeError(f"check_layer: grad_out has shape {g_host.shape}, expected the output's shape "
                             f"{tuple(out.shape)} for input {tuple(xd.shape)}; pass grad_out=None for a random one")
    g = device_of(out).asarray(g_host, dtype="float64")
    # the terms of sum(y * g), whose size sets the rounding error of each evaluation
    scale = float(np.sum(np.abs(to_numpy(out) * g_host)))

    def scalar(inp: Any) -> float:
        with _random.preserved_state():
            y = net.forward(inp)
        return float(device_of(y).xp.sum(y * g))

    markers = _unset_gradients(net)
    g_given = _copy(g)  # a backward that scales g in place must not change the objective too
    dx = net.backward(g_given)
    problems = _argument_problems(layer, x_given, x_host, g_given, g_host)
    return _report(_subject(layer), net, xd, dx, scalar, h, rtol, atol, markers, scale, problems)


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


def _unstored(layer: str, key: str, analytic: Any, marker: Any, numeric: np.ndarray) -> str | None:
    """Why a parameter's gradient after backward is not one, or None when it may be.

    Values decide, not identity: a backward that writes the right values into the
    stored buffer (``self.grads['W'][...] = ...``) has stored its gradient."""
    if analytic is None:
        return f"{layer}.backward never stored grads[{key!r}]"
    values = to_numpy(analytic)
    if values.size == 0 or not np.all(np.isnan(values.astype(np.float64))) or np.all(np.isnan(numeric)):
        return None
    if analytic is marker:
        return f"{layer}.backward never stored grads[{key!r}] (it still holds the NaN placed there before backward)"
    return (f"grads[{key!r}] is NaN: {layer}.backward added to the stored gradient instead of overwriting it "
            f"(the check stores NaN there first); write self.grads[{key!r}] = ..., not += ...")


def _returned_none(shape: tuple[int, ...]) -> TensorCheck:
    return TensorCheck("input", shape, float("inf"), float("inf"), False,
                       f"backward returned None: it must return dL/dx of shape {shape}")


def _report(subject: str, net: Any, xd: Any, dx: Any, scalar: Callable[[Any], float], h: float, rtol: float,
            atol: float, markers: dict[str, Any], scale: float,
            problems: list[TensorCheck | None]) -> GradcheckReport:
    analytic = {name: p.module.grads.get(p.name) for name, p in net.named_parameters()}
    floor = _rounding_floor(scale, h)
    report = GradcheckReport(subject, str(device_of(xd)), floor=floor)
    if dx is None:
        report.checks.append(_returned_none(tuple(xd.shape)))
    else:
        report.checks.append(_compare("input", dx, numerical_gradient(scalar, xd, h), rtol, atol + floor))
    for name, p in net.named_parameters():
        numeric = numerical_gradient(_perturbing(p, lambda: scalar(xd)), p.value, h)
        why = _unstored(type(p.module).__name__, p.name, analytic[name], markers[name], numeric)
        if why is not None:
            report.checks.append(TensorCheck(name, tuple(numeric.shape), float("inf"), float("inf"), False, why))
            continue
        report.checks.append(_compare(name, analytic[name], numeric, rtol, atol + floor))
    report.checks += [c for c in problems if c is not None]
    return report


def check_model(model: Any, loss: Any, x: Any, y: Any, *, h: float = 1e-6, rtol: float = 1e-5,
                atol: float = 1e-7) -> GradcheckReport:
    """Compare a model's backward (through ``loss``) with finite differences of the loss.

    As in :func:`check_layer`, the check runs on a float64 copy, and a model whose
    forward modifies its input, or whose backward modifies the loss gradient it is
    given, fails (entry ``"x in place"`` or ``"g in place"``); so does a forward that
    is not reproducible (entry ``"forward"``).

    Args:
        model: a :class:`xpnet.nn.Module` (e.g. a Sequential).
        loss: an :class:`xpnet.losses.Loss` or a name, as :func:`xpnet.fit` takes
            (``"cross_entropy"``, ``"bce"``, ``"mse"``).
        x: inputs (N, ...), moved to the model's device (for a model without
            parameters, checked where x lives); y: targets (labels (N,) or (N, K)).
        h: finite-difference step.
        rtol: relative tolerance.
        atol: absolute tolerance (the rounding floor of the module docstring is
            added to it).

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
    dev = _device_for(net, x)
    xd = asarray(x, dtype="float64", device=dev)
    yd = asarray(y, device=dev) if not np.issubdtype(to_numpy(y).dtype, np.floating) else asarray(
        y, dtype="float64", device=dev)

    def scalar(inp: Any) -> float:
        with _random.preserved_state():
            return float(loss.forward(net.forward(inp), yd))

    x_host, x_given = to_numpy(xd).copy(), _copy(xd)
    with _random.preserved_state():
        first = to_numpy(net.forward(_copy(xd))).astype(np.float64)
    with _random.preserved_state():
        pred = net.forward(x_given)
        value = float(loss.forward(pred, yd))
    second = to_numpy(pred).astype(np.float64)
    if _differs(first, second):
        return _not_reproducible(f"{_subject(model)} with {loss!r}", str(device_of(xd)), first, second)
    markers = _unset_gradients(net)
    g_given = loss.backward()
    g_host = to_numpy(g_given).copy()
    # |L| plus the first-order effect of rounding each prediction: sum |pred * dL/dpred|
    scale = abs(value) + float(np.sum(np.abs(to_numpy(pred) * g_host)))
    dx = net.backward(g_given)
    problems = _argument_problems(model, x_given, x_host, g_given, g_host)
    return _report(f"{_subject(model)} with {loss!r}", net, xd, dx, scalar, h, rtol, atol, markers, scale,
                   problems)
