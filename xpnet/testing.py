"""The backend parity harness xpnet tests itself with, for your own layers too.

In your ``conftest.py``::

    pytest_plugins = ["xpnet.testing"]

and then in a test::

    def test_my_layer(xp_device):
        xpnet.testing.check_layer_parity(lambda: MyLayer(4, 3), np.random.rand(8, 4),
                                         devices=[xp_device])

The ``xp_device`` fixture runs a test once per backend/device: ``cpu`` (NumPy),
``strict`` and ``strict:device1`` (array-api-strict pinned to the standard revision
xpnet targets, with boolean indexing and data-dependent shapes off, so a missing
``device=`` or a NumPy-only idiom fails on a CPU-only machine), ``jax`` (x64),
``torch`` (CPU) when installed, and ``cuda`` (CuPy) and ``torch:cuda``, marked
``cuda`` and skipped with the reason when no GPU answers. ``XPNET_TEST_DEVICES``
(comma-separated, e.g. ``cpu,strict``) selects a subset; a name xpnet does not know
stops pytest with a usage error, so a typo in a CI setting cannot turn into skips.
``@pytest.mark.parametrize("device", device_params())`` skips the devices that do not
work here in the same way.

A parity check never passes having compared nothing: empty ``devices``/``dtypes`` are
a ``ValueError``, and no working device among the selected ones (``XPNET_TEST_DEVICES=cuda``
on a runner whose CuPy does not load) is a ``BackendUnavailableError``: a GPU job that
cannot see its GPU turns red. To skip a device instead, take it from ``xp_device``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import backend as _backend
from . import gradcheck as _gradcheck
from . import random as _random
from .backend import Device, device_of, dtype_name, to_numpy

__all__ = [
    "ARRAY_API_VERSION",
    "TEST_DEVICES",
    "CUDA_DEVICES",
    "TOLERANCES",
    "available_devices",
    "device_params",
    "check_layer_parity",
    "check_loss_parity",
    "assert_close",
]

#: The revision of the Array API standard xpnet's code is written against.
ARRAY_API_VERSION = "2024.12"

#: Every device the parity suite knows, in order.
TEST_DEVICES = ("cpu", "strict", "strict:device1", "jax", "torch", "cuda", "torch:cuda")
CUDA_DEVICES = frozenset({"cuda", "torch:cuda"})

#: (rtol, atol) per dtype against a NumPy float64 reference.
TOLERANCES = {"float64": (1e-10, 1e-12), "float32": (1e-4, 1e-5)}


def _configure_strict() -> None:
    import array_api_strict

    array_api_strict.set_array_api_strict_flags(
        api_version=ARRAY_API_VERSION, boolean_indexing=False, data_dependent_shapes=False
    )


def _selected() -> list[str]:
    """The devices ``XPNET_TEST_DEVICES`` names (default: all of :data:`TEST_DEVICES`).

    A name xpnet does not know is an error, not a device to skip: a typo in a CI
    configuration must turn the build red, not quietly skip every test it meant to run.
    """
    env = os.environ.get("XPNET_TEST_DEVICES", "").strip()
    if not env:
        return list(TEST_DEVICES)
    names = [n.strip() for n in env.split(",") if n.strip()]
    unknown = [n for n in names if not _known(n)]
    if unknown or not names:
        raise _backend.UnknownDeviceError(
            f"XPNET_TEST_DEVICES={env!r} names {'unknown devices ' + repr(unknown) if unknown else 'no device'}; "
            f"use a comma-separated subset of {','.join(TEST_DEVICES)} (or a GPU index such as cuda:1), "
            f"or unset it to test every device"
        )
    return names


def _known(name: str) -> bool:
    if name in TEST_DEVICES:
        return True
    try:
        device = _backend._parse(name)
    except _backend.UnknownDeviceError:
        return False
    if device.backend == "strict" and device._impl.installed():
        return name in device._impl.devices()  # a typo in a device name is not a device to skip
    return True


def _try(name: str) -> tuple[Device | None, str | None]:
    try:
        dev = _backend.resolve_device(name)
    except Exception as exc:  # noqa: BLE001 - becomes the skip reason
        return None, f"{name} unavailable: {type(exc).__name__}: {exc}"
    if dev.backend == "strict":
        _configure_strict()
    return dev, None


def available_devices(include: Sequence[str] | None = None) -> list[Device]:
    """The devices among ``include`` (default: ``XPNET_TEST_DEVICES`` or all of
    :data:`TEST_DEVICES`) that work on this machine.

    Raises :class:`~xpnet.errors.UnknownDeviceError` when ``include`` or
    ``XPNET_TEST_DEVICES`` names a device xpnet does not know: a misspelt name is
    a mistake to fix, not a device to leave out."""
    if include is not None:
        _device_names("available_devices", "include", include)
        unknown = [n for n in include if isinstance(n, str) and not _known(n)]
        if unknown:
            raise _backend.UnknownDeviceError(
                f"available_devices: include names unknown devices {unknown}; use names from "
                f"{', '.join(TEST_DEVICES)} (or a GPU index such as cuda:1)")
    found = []
    for name in include if include is not None else _selected():
        dev, _ = _try(name)
        if dev is not None:
            found.append(dev)
    return found


def device_params() -> list[Any]:
    """``pytest.param`` objects, one per selected device name, with the ``cuda`` mark on
    GPU ones; use with ``@pytest.mark.parametrize`` or a fixture's ``params``.

    With the plugin loaded (``pytest_plugins = ["xpnet.testing"]``), a test that got
    a device that does not work here (no GPU, jax or torch not installed) is skipped
    with the reason, as the ``xp_device`` fixture does; ``-m "not cuda"`` deselects
    the GPU ones."""
    import pytest

    return [pytest.param(n, id=n, marks=[pytest.mark.xpnet_device(n)] + ([pytest.mark.cuda] if _is_gpu(n) else []))
            for n in _selected()]


def _is_gpu(name: str) -> bool:
    return name in CUDA_DEVICES or _backend._parse(name).is_gpu


def pytest_configure(config: Any) -> None:
    import pytest

    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (skipped with the reason when none answers)")
    config.addinivalue_line("markers", "xpnet_device(name): a device_params() parameter (skipped with the "
                                       "reason when the device does not work here)")
    try:
        _selected()
    except _backend.UnknownDeviceError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_runtest_setup(item: Any) -> None:
    """Skip a test whose :func:`device_params` device does not work here, with the reason."""
    import pytest

    for mark in item.iter_markers("xpnet_device"):
        _, reason = _try(mark.args[0])
        if reason is not None:
            pytest.skip(reason)


def _fixture() -> Any:
    import pytest

    try:
        params = device_params()
    except _backend.UnknownDeviceError:
        params = []  # pytest_configure stops the run with the message

    @pytest.fixture(params=params)
    def xp_device(request: Any) -> Device:
        """A working :class:`xpnet.Device`, once per backend/device; skips with the
        reason when the device is not available here."""
        dev, reason = _try(request.param)
        if dev is None:
            pytest.skip(reason)
        with _backend.using(dev):
            yield dev

    return xp_device


try:
    xp_device = _fixture()
except ImportError:  # pytest not installed: the harness functions still work
    pass


# ----------------------------------------------------------------------- comparing
def assert_close(actual: Any, expected: Any, *, dtype: Any, device: Device | None = None, what: str = "",
                 rtol: float | None = None, atol: float | None = None) -> None:
    """Assert ``actual`` (any backend, any shape) has ``dtype``, lives on ``device``, and
    equals the NumPy ``expected`` (the same shape) within ``rtol``/``atol``.

    Args:
        actual: the array to check.
        expected: the NumPy reference, compared in float64.
        dtype: the dtype ``actual`` must have.
        device: the device ``actual`` must live on (None: any).
        what: a label for the message, e.g. ``"cpu/float32 output"``.
        rtol: relative tolerance; None takes the dtype's entry in :data:`TOLERANCES`.
        atol: absolute tolerance; None takes the dtype's entry in :data:`TOLERANCES`.
    """
    from . import _validate

    _validate.real("assert_close", "rtol", rtol, low=0.0, allow_none=True)
    _validate.real("assert_close", "atol", atol, low=0.0, allow_none=True)
    name = dtype_name(dtype)
    label = f"{what}: " if what else ""
    if dtype_name(actual.dtype) != name:
        raise AssertionError(f"{label}dtype {dtype_name(actual.dtype)}, expected {name}")
    if device is not None and device_of(actual) != device:
        raise AssertionError(f"{label}on {device_of(actual)}, expected {device}")
    default_rtol, default_atol = TOLERANCES.get(name, (1e-4, 1e-5))
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    hint = ""
    if name != "float64":
        hint = (f"; {name} rounds every sum to about {float(np.finfo(name).eps):.0e} of the size of its terms, so "
                f"inputs of large magnitude (raw pixels 0..255) need scaling or a looser tolerance: pass "
                f"rtol=/atol= (now {rtol:g}/{atol:g})")
    got = to_numpy(actual).astype(np.float64)
    np.testing.assert_allclose(got, np.asarray(expected, dtype=np.float64), rtol=rtol, atol=atol,
                               err_msg=f"{label}values differ from the NumPy float64 reference{hint}")


@dataclass
class ParityReport:
    """What :func:`check_layer_parity` / :func:`check_loss_parity` compared: one
    ``"device/dtype"`` entry per pair, never empty."""

    checked: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "parity passed on: " + ", ".join(self.checked)


def _as_tuple(inputs: Any) -> tuple[np.ndarray, ...]:
    if isinstance(inputs, tuple):
        return tuple(np.asarray(a) for a in inputs)
    return (np.asarray(inputs),)


def _to(dev: Device, host: np.ndarray, dtype: str) -> Any:
    kind = dtype if np.issubdtype(host.dtype, np.floating) else host.dtype
    return dev.asarray(host, dtype=kind)


def _device_names(owner: str, name: str, value: Any) -> None:
    """Refuse a single name where a list of names is expected: ``"torch"`` would be
    read as the devices ``t``, ``o``, ``r``, ...."""
    if isinstance(value, (str, Device)) or not isinstance(value, Sequence):
        raise TypeError(f"{owner}: {name} must be a list, e.g. [{value!r}], got the {type(value).__name__} "
                        f"{value!r}")


def _pairs(owner: str, devices: Any, dtypes: Any) -> list[Device]:
    """The devices to compare on, after checking that some (device, dtype) pair will be
    compared: a parity check that compared nothing must not pass."""
    if devices is not None:
        _device_names(owner, "devices", devices)
    _device_names(owner, "dtypes", dtypes)
    if not dtypes:
        raise ValueError(f"{owner}: dtypes is empty, so nothing would be compared; pass e.g. ['float64', 'float32']")
    if devices is not None and not devices:
        raise ValueError(f"{owner}: devices is empty, so nothing would be compared; pass e.g. ['cpu'], or leave "
                         f"devices out to compare on every device that works here")
    resolved = _resolve(devices)
    if not resolved:
        reasons = "; ".join(reason for name in _selected() if (reason := _try(name)[1]) is not None)
        raise _backend.BackendUnavailableError(
            f"{owner}: none of the selected devices works here, so nothing would be compared ({reasons}); "
            f"set XPNET_TEST_DEVICES to devices this machine has, or pass devices=[...]")
    return resolved


def _resolve(devices: Sequence[str | Device] | None) -> list[Device]:
    if devices is None:
        return available_devices()
    out = []
    for d in devices:
        dev = _backend.resolve_device(d)
        if dev.backend == "strict":
            _configure_strict()
        out.append(dev)
    return out


def _factory(owner: str, name: str, factory: Any, kind: type, example: str) -> None:
    what = "layer" if kind.__name__ == "Module" else kind.__name__.lower()
    if isinstance(factory, kind) or not callable(factory):
        raise TypeError(f"{owner}: {name} must be a callable that builds the {what} "
                        f"({example}), got a {type(factory).__name__} instance")


#: What each tool calls on what the factory built: a duck-typed loss wrapper is fine.
_LAYER_METHODS = ("forward", "backward", "train", "modules", "named_parameters")
_LOSS_METHODS = ("forward", "backward")


def _built(owner: str, name: str, made: Any, methods: tuple[str, ...], expected: str) -> Any:
    from . import _validate

    missing = [m for m in methods if not callable(getattr(made, m, None))]
    if missing:
        raise TypeError(f"{owner}: {name} returned {_validate._what(made)}, expected {expected} "
                        f"(it has no {', '.join(missing)})")
    return made


def _backward(owner: str, where: str, layer: Any, g: Any, shape: tuple[int, ...]) -> Any:
    """``layer.backward(g)``, with the two commonest backward mistakes named."""
    try:
        dx = layer.backward(g)
    except KeyError as exc:
        key = exc.args[0] if exc.args else None
        owners = [type(p.module).__name__ for _, p in layer.named_parameters() if p.name == key]
        if not owners:
            raise
        raise AssertionError(f"{where}: {owners[0]}.backward read self.grads[{key!r}] before storing it "
                             f"({owner} clears grads first): overwrite, don't accumulate "
                             f"(self.grads[{key!r}] = ..., not += ...)") from exc
    if dx is None:
        raise AssertionError(f"{where}: {type(layer).__name__}.backward returned None: it must return dL/dx "
                             f"of shape {shape}")
    return dx


def check_layer_parity(
    layer_factory: Callable[[], Any],
    inputs: Any,
    *,
    devices: Sequence[str | Device] | None = None,
    dtypes: Sequence[str] = ("float64", "float32"),
    grad_out: np.ndarray | None = None,
    seed: int = 0,
    training: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
) -> ParityReport:
    """Run a layer forward and backward on each device and dtype and compare with NumPy
    float64.

    The factory is called after ``xpnet.seed(seed)`` inside ``xpnet.using(device,
    dtype)``, so every backend starts from bit-identical weights (and dropout masks).
    Checks: output, input gradient and the gradient of every parameter, by qualified
    name (``"0.W"`` in a Sequential, children of your own modules too) (values within
    :data:`TOLERANCES`, dtype, device), and that neither the input nor ``grad_out``
    was modified. The NumPy reference runs twice: a layer that draws from
    ``np.random`` or keeps state across calls fails with "forward is not
    reproducible".

    Args:
        layer_factory: builds the layer, e.g. ``lambda: xpnet.nn.Linear(4, 3)`` (a
            callable, not a layer).
        inputs: host input (N, ...) (a NumPy array).
        devices: a list of devices to check (default: every available one).
        dtypes: a list of float dtypes to check.
        grad_out: upstream gradient of the output's shape (N, ...); default seeded
            normal.
        seed: an int, seed for weights, masks and the default ``grad_out``.
        training: run in training mode (dropout active) or eval mode.
        rtol: relative tolerance for every dtype; None takes :data:`TOLERANCES`.
        atol: absolute tolerance for every dtype; None takes :data:`TOLERANCES`.

    Returns:
        A :class:`ParityReport` listing the (device, dtype) pairs compared.

    Raises:
        AssertionError: on the first mismatch.
        ValueError: ``devices`` or ``dtypes`` is empty.
        BackendUnavailableError: ``devices`` is None and no selected device works here
            (``XPNET_TEST_DEVICES=cuda`` without a GPU): a check that compared nothing
            fails rather than passes. Use the ``xp_device`` fixture to skip instead.
    """
    from . import _validate
    from .nn import Module

    owner = "check_layer_parity"
    _factory(owner, "layer_factory", layer_factory, Module, "lambda: Linear(4, 3)")
    seed = _validate.integer(owner, "seed", seed)
    training = _validate.boolean(owner, "training", training)
    _validate.real(owner, "rtol", rtol, low=0.0, allow_none=True)
    _validate.real(owner, "atol", atol, low=0.0, allow_none=True)
    targets = _pairs(owner, devices, dtypes)
    (x,) = _as_tuple(inputs)

    def run(dev: Device, dtype: str, g_host: np.ndarray | None) -> tuple[Any, ...]:
        where = f"{dev.name}/{dtype}"
        with _backend.using(dev, dtype):
            _random.seed(seed)
            layer = _built(owner, "layer_factory", layer_factory(), _LAYER_METHODS, "an xpnet.nn.Module").train(training)
            xd = _to(dev, x, dtype)
            out = layer.forward(xd)
            if g_host is None:
                g_host = np.random.default_rng(seed + 1).standard_normal(tuple(out.shape))
            g = dev.asarray(g_host, dtype=dtype)
            for module in layer.modules():
                module.grads.clear()  # a gradient left from __init__ (zero_grad) must not stand in for one
            dx = _backward(owner, where, layer, g, tuple(xd.shape))
            return xd, g, out, dx, _parameter_grads(layer, where), g_host

    _, _, ref_out, ref_dx, ref_grads, g_host = run(Device("numpy"), "float64", grad_out)
    again = to_numpy(run(Device("numpy"), "float64", g_host)[2])
    if again.shape != tuple(ref_out.shape) or not np.array_equal(again, to_numpy(ref_out)):
        raise AssertionError(f"{owner}: {_gradcheck._NOT_REPRODUCIBLE}")
    ref_grads = {k: to_numpy(v) for k, v in ref_grads.items()}
    report = ParityReport()
    for dev in targets:
        for dtype in dtypes:
            where = f"{dev.name}/{dtype}"
            xd, g, out, dx, grads, _ = run(dev, dtype, g_host)
            tol = {"rtol": rtol, "atol": atol}
            assert_close(out, ref_out, dtype=dtype, device=dev, what=f"{where} output", **tol)
            assert_close(dx, ref_dx, dtype=dtype, device=dev, what=f"{where} input gradient", **tol)
            if set(grads) != set(ref_grads):
                raise AssertionError(f"{where}: parameters {sorted(grads)}, expected {sorted(ref_grads)} as on "
                                     f"numpy/float64; the factory must build the same layer on every device")
            for k, v in grads.items():
                if tuple(v.shape) != ref_grads[k].shape:
                    raise AssertionError(f"{where} grad {k}: shape {tuple(v.shape)}, expected "
                                         f"{ref_grads[k].shape} (the parameter's)")
                assert_close(v, ref_grads[k], dtype=dtype, device=dev, what=f"{where} grad {k}", **tol)
            _assert_unchanged(xd, x, dtype, f"{where} input")
            _assert_unchanged(g, g_host, dtype, f"{where} grad_out")
            report.checked.append(where)
    return report


def _parameter_grads(layer: Any, where: str) -> dict[str, Any]:
    """Every parameter's gradient after a backward, by qualified name (``"0.W"``): the
    top module's own ``grads`` miss those of a Sequential's layers and any child's."""
    grads = {}
    for name, p in layer.named_parameters():
        grad = p.module.grads.get(p.name)
        if grad is None:
            owner = type(p.module).__name__
            raise AssertionError(f"{where}: no gradient for parameter {name} after backward; "
                                 f"{owner}.backward must store self.grads[{p.name!r}]")
        grads[name] = grad
    return grads


def check_loss_parity(
    loss_factory: Callable[[], Any],
    pred: np.ndarray,
    target: np.ndarray,
    *,
    devices: Sequence[str | Device] | None = None,
    dtypes: Sequence[str] = ("float64", "float32"),
    rtol: float | None = None,
    atol: float | None = None,
) -> ParityReport:
    """Like :func:`check_layer_parity` for a loss: compares the 0-d loss value and
    ``backward()`` with NumPy float64 on each device and dtype, checks dtype, device,
    shape ``()`` of the value, and that pred and target were not modified.

    Args:
        loss_factory: builds the loss, e.g. ``xpnet.losses.SoftmaxCrossEntropy`` (a
            callable, not a loss).
        pred: host predictions (N, ...); target: host targets (labels or floats).
        devices: a list of devices to check (default: every available one).
        dtypes: a list of float dtypes to check.
        rtol: relative tolerance for every dtype; None takes :data:`TOLERANCES`.
        atol: absolute tolerance for every dtype; None takes :data:`TOLERANCES`.

    Returns:
        A :class:`ParityReport` listing the (device, dtype) pairs compared.

    Raises:
        AssertionError: a value differs, as in :func:`check_layer_parity`.
        ValueError: bad arguments, or nothing to compare, as in :func:`check_layer_parity`.
        BackendUnavailableError: no selected device works, as in :func:`check_layer_parity`.
    """
    from . import _validate
    from .losses import Loss

    owner = "check_loss_parity"
    _factory(owner, "loss_factory", loss_factory, Loss, "xpnet.losses.MeanSquaredError")
    _validate.real(owner, "rtol", rtol, low=0.0, allow_none=True)
    _validate.real(owner, "atol", atol, low=0.0, allow_none=True)
    targets = _pairs(owner, devices, dtypes)
    pred, target = np.asarray(pred), np.asarray(target)

    def run(dev: Device, dtype: str) -> tuple[Any, ...]:
        with _backend.using(dev, dtype):
            loss = _built(owner, "loss_factory", loss_factory(), _LOSS_METHODS, "an xpnet.losses.Loss")
            p, t = _to(dev, pred, dtype), _to(dev, target, dtype)
            value = loss.forward(p, t)
            return p, t, value, loss.backward()

    _, _, ref_value, ref_grad = run(Device("numpy"), "float64")
    report = ParityReport()
    for dev in targets:
        for dtype in dtypes:
            where = f"{dev.name}/{dtype}"
            p, t, value, grad = run(dev, dtype)
            if tuple(value.shape) != ():
                raise AssertionError(f"{where}: loss has shape {tuple(value.shape)}, expected ()")
            tol = {"rtol": rtol, "atol": atol}
            assert_close(value, ref_value, dtype=dtype, device=dev, what=f"{where} loss", **tol)
            assert_close(grad, ref_grad, dtype=dtype, device=dev, what=f"{where} gradient", **tol)
            _assert_unchanged(p, pred, dtype, f"{where} prediction")
            _assert_unchanged(t, target, dtype if np.issubdtype(target.dtype, np.floating) else target.dtype,
                              f"{where} target")
            report.checked.append(where)
    return report


def _assert_unchanged(array: Any, host: np.ndarray, dtype: Any, what: str) -> None:
    if not np.array_equal(to_numpy(array), host.astype(dtype_name(dtype)), equal_nan=True):
        raise AssertionError(f"{what} was modified in place; compute new arrays from a layer's arguments "
                             f"(g = g * mask, not g *= mask): the caller still needs them")
