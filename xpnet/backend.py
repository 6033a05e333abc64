"""Devices and backends: the one module that knows NumPy, CuPy, JAX, PyTorch and
array-api-strict by name.

Everything else in xpnet gets its array namespace from its inputs
(``array_api_compat.array_namespace``) and moves data through the small
:class:`Device` interface defined here: ``device.xp``, ``device.asarray(host)``,
``device.to_numpy(array)``, ``device.synchronize()``.

Device strings accepted by :func:`use`:

| device string | backend |
| --- | --- |
| ``"cpu"`` | NumPy (also ``"numpy"``) |
| ``"cuda"`` | CuPy on GPU 0 (also ``"gpu"``, ``"cupy"``) |
| ``"cuda:N"`` | CuPy on GPU N (also ``"gpu:N"``, ``"cupy:N"``) |
| ``"auto"`` | ``"cuda"`` if a GPU answers an allocation, else ``"cpu"`` |
| ``"jax"`` | JAX on its default device; ``"jax:cpu"``, ``"jax:gpu[:N]"`` |
| ``"torch"`` | PyTorch on the CPU; ``"torch:cpu"``, ``"torch:cuda[:N]"`` |
| ``"strict"`` | array-api-strict; ``"strict:device1"`` is its second device |

The selected device and default dtype are plain module-level settings, so a
choice made in one notebook cell holds in the next.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import importlib.metadata
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from .errors import (
    BackendUnavailableError,
    ConflictingCupyError,
    CudaDriverError,
    CupyNotInstalledError,
    DeviceIndexError,
    DeviceMismatchError,
    NoGPUError,
    UnknownDeviceError,
)

__all__ = [
    "Device",
    "use",
    "using",
    "current_device",
    "default_dtype",
    "gpu_available",
    "asarray",
    "to_numpy",
    "device_of",
    "dtype_name",
    "resolve_device",
    "array_namespace",
    "FLOAT_DTYPES",
]

FLOAT_DTYPES = ("float32", "float64")
_DTYPE_NAMES = FLOAT_DTYPES + (
    "float16",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
)

VALID_DEVICE_STRINGS = (
    "cpu",
    "numpy",
    "cuda",
    "cuda:N",
    "gpu",
    "gpu:N",
    "cupy",
    "cupy:N",
    "auto",
    "jax",
    "jax:cpu",
    "jax:gpu",
    "jax:gpu:N",
    "torch",
    "torch:cpu",
    "torch:cuda",
    "torch:cuda:N",
    "strict",
    "strict:device1",
)

_CUPY_FIX = 'install CuPy with `pip install "xpnet[cuda12x]"` (CUDA 12) or `pip install "xpnet[cuda13x]"` (CUDA 13)'
# Every CUDA error ends with this: a student without a GPU should learn that the CPU works.
_CPU_ALTERNATIVE = (
    'Or run on the CPU: xpnet.use("auto") picks the GPU when one works and the CPU otherwise, xpnet.use("cpu") '
    "always the CPU"
)


# --------------------------------------------------------------------------- dtypes
_DTYPE_NAME_CACHE: dict[Any, str] = {}


def dtype_name(dtype: Any) -> str:
    """Canonical name (``"float32"``, ``"int64"``, ...) of a dtype given as a string,
    a NumPy/CuPy/JAX dtype or scalar type, a torch dtype or an array-api-strict dtype.

    Raises ``TypeError`` for anything else.
    """
    # Keyed by (type, dtype) so a lookup never compares dtypes of two libraries
    # (array-api-strict warns on that).
    key = (type(dtype), dtype)
    try:
        return _DTYPE_NAME_CACHE[key]
    except (KeyError, TypeError):  # TypeError: an unhashable dtype-like
        pass
    name = _dtype_name(dtype)
    try:
        _DTYPE_NAME_CACHE[key] = name
    except TypeError:
        pass
    return name


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, str):
        name = dtype
    else:
        text = str(dtype)
        match = re.search(r"(?:^|[.'\s])((?:float|int|uint)\d+|bool)'?>?$", text)
        if match:
            name = match.group(1)
        else:
            try:
                name = np.dtype(dtype).name
            except TypeError:
                name = text
    if name not in _DTYPE_NAMES:
        raise TypeError(f"unknown dtype {dtype!r}; expected one of {', '.join(_DTYPE_NAMES)}")
    return name


def _float_dtype_name(dtype: Any) -> str:
    name = dtype_name(dtype)
    if name not in FLOAT_DTYPES:
        raise TypeError(f"xpnet parameters must be float32 or float64, got {name}")
    return name


# ------------------------------------------------------------------------- backends
class _Backend:
    """What xpnet needs from one array library. Subclasses override what differs."""

    name = ""
    module = ""  # the importable module whose presence means "installed"

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def version(self) -> str | None:
        try:
            return importlib.import_module(self.module).__version__
        except Exception:  # noqa: BLE001 - reporting only
            return None

    def namespace(self) -> Any:
        raise NotImplementedError

    def native(self, device: Device) -> Any:
        """The backend's own device object, as passed to ``device=``."""
        raise NotImplementedError

    def canonical(self, device: Device) -> Device:
        """The same device spelled as :func:`device_of` reports it."""
        return device

    def check(self, device: Device) -> None:
        """Raise a BackendUnavailableError subclass unless ``device`` really works."""
        if not self.installed():
            raise BackendUnavailableError(
                f"device {device.name!r} needs {self.module}, which is not installed; "
                f"install it with `pip install \"xpnet[{self.name}]\"`"
            )

    def activate(self, device: Device) -> None:
        """Make ``device`` the library's current device, where the library has one."""

    def devices(self) -> list[str]:
        raise NotImplementedError

    def from_host(self, data: np.ndarray, device: Device) -> Any:
        return device.xp.asarray(data, device=device.native)

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)

    def synchronize(self, device: Device) -> None:
        """Wait for queued work on ``device`` (a no-op on eager CPU backends)."""

    def owns(self, array: Any) -> bool:
        raise NotImplementedError

    def device_of(self, array: Any) -> Device:
        raise NotImplementedError


class _NumpyBackend(_Backend):
    name = module = "numpy"

    def namespace(self):
        import array_api_compat.numpy as xp

        return xp

    def native(self, device):
        return "cpu"

    def devices(self):
        return ["cpu"]

    def from_host(self, data, device):
        return data

    def owns(self, array):
        return array_api_compat.is_numpy_array(array)

    def device_of(self, array):
        return Device("numpy")


def _cupy_distributions() -> list[str]:
    names = set()
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if re.fullmatch(r"cupy(-cuda\d+x?|-rocm-[\w-]+)?", name):
            names.add(name)
    return sorted(names)


class _CupyBackend(_Backend):
    name = "cuda"
    module = "cupy"
    _probed: dict[int, BaseException | None] = {}
    _auto_explained = False

    def namespace(self):
        import array_api_compat.cupy as xp

        return xp

    def native(self, device):
        import cupy

        return cupy.cuda.Device(device.index)

    def check(self, device):
        if device.index in self._probed:
            error = self._probed[device.index]
        else:
            error = self._probe(device.index)
            if error is not None:
                error.args = (f"{error.args[0].rstrip('. ')}. {_CPU_ALTERNATIVE}",)
            self._probed[device.index] = error
        if error is not None:
            raise error

    def _probe(self, index: int) -> BaseException | None:
        dists = _cupy_distributions()
        if len(dists) > 1:
            keep = "cupy-cuda12x" if "cupy-cuda12x" in dists else dists[0]
            drop = " ".join(d for d in dists if d != keep)
            return ConflictingCupyError(
                f"several CuPy packages are installed side by side ({', '.join(dists)}); they "
                f"overwrite each other's files. Fix: `pip uninstall -y {drop} {keep}` then "
                f"`pip install {keep}` (on Colab keep the preinstalled cupy-cuda12x)"
            )
        try:
            import cupy
        except ImportError as exc:
            if dists:
                return CudaDriverError(
                    f"{dists[0]} is installed but `import cupy` failed ({exc}); the CUDA "
                    f"libraries it needs are missing or do not match it"
                )
            return CupyNotInstalledError(f"device 'cuda:{index}' needs CuPy, which is not installed: {_CUPY_FIX}")
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # noqa: BLE001 - classified below
            return self._classify(exc)
        if count == 0:
            return NoGPUError("the CUDA driver is present but reports no GPU")
        if index >= count:
            return DeviceIndexError(
                f"device 'cuda:{index}' does not exist: this machine has {count} GPU(s), "
                f"cuda:0 to cuda:{count - 1}"
            )
        try:  # `import cupy` proves nothing: run a real kernel on the device
            with cupy.cuda.Device(index):
                probe = cupy.arange(4, dtype=cupy.float32)
                float((probe * 2).sum())
        except Exception as exc:  # noqa: BLE001
            return self._classify(exc)
        return None

    @staticmethod
    def _classify(exc: BaseException) -> BaseException:
        text = f"{type(exc).__name__}: {exc}"
        if "InsufficientDriver" in text or "driver" in text.lower():
            err: BaseException = CudaDriverError(
                f"CuPy cannot use the GPU: the CUDA driver is missing or too old ({text}). "
                f"Install or update the NVIDIA driver, or install the CuPy build for your CUDA "
                f"version (`pip install \"xpnet[cuda12x]\"` for CUDA 12, `[cuda13x]` for 13)"
            )
        elif "NoDevice" in text or "no CUDA-capable device" in text:
            err = NoGPUError(f"no GPU found ({text})")
        else:
            err = BackendUnavailableError(f"CuPy failed to run on the GPU: {text}")
        err.__cause__ = exc
        return err

    def activate(self, device):
        # array-api-compat's CuPy wrapper ignores `device=` in zeros/arange/...: CuPy
        # allocates and launches on its *current* device, so selecting cuda:N must make
        # N current, or a model meant for cuda:1 would quietly land on cuda:0.
        import cupy

        cupy.cuda.Device(device.index).use()

    def devices(self):
        import cupy

        try:
            return [f"cuda:{i}" for i in range(cupy.cuda.runtime.getDeviceCount())]
        except Exception:  # noqa: BLE001 - no driver: no devices
            return []

    def from_host(self, data, device):
        import cupy

        with cupy.cuda.Device(device.index):
            return cupy.asarray(data)

    def to_host(self, array):
        return array.get()

    def synchronize(self, device):
        import cupy

        with cupy.cuda.Device(device.index):
            cupy.cuda.get_current_stream().synchronize()

    def owns(self, array):
        return array_api_compat.is_cupy_array(array)

    def device_of(self, array):
        return Device("cupy", index=int(array.device.id))


class _JaxBackend(_Backend):
    name = module = "jax"

    def namespace(self):
        import jax.numpy as jnp

        return jnp

    def _configure(self) -> None:
        import jax

        # float64 gradient checks need x64; xpnet always passes dtype= so float32
        # models stay float32. "highest" keeps float32 matmuls exact on GPUs (no TF32).
        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_default_matmul_precision", "highest")

    def canonical(self, device):
        if device.kind is not None:
            return device
        import jax

        default = jax.devices()[0]
        if default.platform == "cpu":
            return Device("jax", kind="cpu")
        return Device("jax", kind="gpu", index=int(default.id))

    def native(self, device):
        import jax

        return jax.devices(device.kind)[device.index]

    def check(self, device):
        super().check(device)
        import jax

        self._configure()
        if device.kind is not None:
            try:
                found = jax.devices(device.kind)
            except RuntimeError as exc:
                raise NoGPUError(f"JAX has no {device.kind} backend here ({exc}); use 'jax:cpu'") from exc
            if device.index >= len(found):
                raise DeviceIndexError(
                    f"device {device.name!r} does not exist: JAX sees {len(found)} {device.kind} device(s)"
                )

    def devices(self):
        import jax

        return [f"jax:{d.platform}:{d.id}" for d in jax.devices()]

    def owns(self, array):
        return array_api_compat.is_jax_array(array)

    def device_of(self, array):
        (dev,) = array.devices()
        kind = "cpu" if dev.platform == "cpu" else "gpu"
        return Device("jax", kind=kind, index=int(dev.id) if kind == "gpu" else 0)


class _TorchBackend(_Backend):
    name = module = "torch"

    def namespace(self):
        import array_api_compat.torch as xp

        return xp

    def native(self, device):
        import torch

        return torch.device("cpu") if device.kind == "cpu" else torch.device("cuda", device.index)

    def check(self, device):
        super().check(device)
        if device.kind == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise NoGPUError("PyTorch sees no CUDA GPU (torch.cuda.is_available() is False); use 'torch'")
            if device.index >= torch.cuda.device_count():
                raise DeviceIndexError(
                    f"device {device.name!r} does not exist: PyTorch sees {torch.cuda.device_count()} GPU(s)"
                )

    def devices(self):
        import torch

        return ["torch:cpu"] + [f"torch:cuda:{i}" for i in range(torch.cuda.device_count())]

    def to_host(self, array):
        return array.detach().cpu().numpy()

    def synchronize(self, device):
        if device.kind == "cuda":
            import torch

            torch.cuda.synchronize(device.index)

    def owns(self, array):
        return array_api_compat.is_torch_array(array)

    def device_of(self, array):
        if array.device.type == "cpu":
            return Device("torch", kind="cpu")
        return Device("torch", kind="cuda", index=int(array.device.index or 0))


class _StrictBackend(_Backend):
    name = "strict"
    module = "array_api_strict"

    def namespace(self):
        import array_api_strict

        return array_api_strict

    def native(self, device):
        import array_api_strict

        return array_api_strict.Device(device.kind or "CPU_DEVICE")

    def check(self, device):
        super().check(device)
        import array_api_strict

        names = [d._device for d in array_api_strict.__array_namespace_info__().devices()]
        if (device.kind or "CPU_DEVICE") not in names:
            raise UnknownDeviceError(f"array-api-strict has no device {device.kind!r}; it has {names}")

    def devices(self):
        import array_api_strict

        return ["strict" if d._device == "CPU_DEVICE" else f"strict:{d._device}"
                for d in array_api_strict.__array_namespace_info__().devices()]

    def to_host(self, array):
        import array_api_strict

        return np.from_dlpack(array.to_device(array_api_strict.Device("CPU_DEVICE")))

    def owns(self, array):
        return type(array).__module__.startswith("array_api_strict")

    def device_of(self, array):
        name = array.device._device
        return Device("strict", kind=None if name == "CPU_DEVICE" else name)


_BACKENDS: dict[str, _Backend] = {
    "numpy": _NumpyBackend(),
    "cupy": _CupyBackend(),
    "jax": _JaxBackend(),
    "torch": _TorchBackend(),
    "strict": _StrictBackend(),
}


# --------------------------------------------------------------------------- Device
@dataclass(frozen=True)
class Device:
    """One place arrays live: a backend plus, where it has several, which device.

    Build one with :func:`resolve_device` or :func:`use`; compare and print by
    :attr:`name` (``"cpu"``, ``"cuda:0"``, ``"jax:cpu"``, ``"torch:cuda:1"``,
    ``"strict:device1"``).
    """

    backend: str
    kind: str | None = None
    index: int = 0

    @property
    def name(self) -> str:
        """The canonical device string, e.g. ``"cpu"``, ``"cuda:0"``, ``"jax:cpu"``."""
        if self.backend == "numpy":
            return "cpu"
        if self.backend == "cupy":
            return f"cuda:{self.index}"
        if self.backend == "strict":
            return "strict" if self.kind is None else f"strict:{self.kind}"
        if self.kind is None:
            return self.backend
        if self.kind in ("gpu", "cuda"):
            return f"{self.backend}:{self.kind}:{self.index}"
        return f"{self.backend}:{self.kind}"

    @property
    def is_gpu(self) -> bool:
        """True when arrays on this device live in GPU memory."""
        return self.backend == "cupy" or self.kind in ("gpu", "cuda")

    @property
    def _impl(self) -> _Backend:
        return _BACKENDS[self.backend]

    @property
    def xp(self) -> Any:
        """The array namespace of this device (array-api-compat's wrapper where needed)."""
        return self._impl.namespace()

    @property
    def native(self) -> Any:
        """The backend's own device object, to pass as ``device=`` to ``xp`` functions."""
        return self._impl.native(self)

    def dtype(self, dtype: Any) -> Any:
        """This backend's dtype object for ``dtype`` (a name or any backend's dtype)."""
        return getattr(self.xp, dtype_name(dtype))

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """Copy host data (NumPy array, list, scalar) onto this device.

        ``dtype`` (name or dtype object) is applied on the host first, so every
        backend receives bit-identical values.
        """
        # Always a copy: the device array never aliases the caller's host array, so
        # neither side can change the other (NumPy would otherwise share memory).
        host = np.array(data, dtype=None if dtype is None else dtype_name(dtype), copy=True)
        return self._impl.from_host(host, self)

    def to_numpy(self, array: Any) -> np.ndarray:
        """Copy an array of this device back to a NumPy array on the host."""
        return self._impl.to_host(array)

    def synchronize(self) -> None:
        """Block until all queued work on this device has finished (for timing)."""
        self._impl.synchronize(self)

    def owns(self, array: Any) -> bool:
        """True if ``array`` lives on exactly this device."""
        return self._impl.owns(array) and self._impl.device_of(array) == self

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Device({self.name!r})"


def _parse(spec: str) -> Device:
    text = spec.strip().lower()
    parts = text.split(":")
    head, rest = parts[0], parts[1:]

    def index(part: str) -> int:
        if not part.isdigit():
            raise _unknown(spec)
        return int(part)

    if head in ("cpu", "numpy") and not rest:
        return Device("numpy")
    if head in ("cuda", "gpu", "cupy") and len(rest) <= 1:
        return Device("cupy", index=index(rest[0]) if rest else 0)
    if head == "jax" and len(rest) <= 2:
        if not rest:
            return Device("jax")
        kind = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu"}.get(rest[0])
        if kind is None or (kind == "cpu" and len(rest) > 1):
            raise _unknown(spec)
        return Device("jax", kind=kind, index=index(rest[1]) if len(rest) > 1 else 0)
    if head == "torch" and len(rest) <= 2:
        if not rest or rest == ["cpu"]:
            return Device("torch", kind="cpu")
        if rest[0] in ("cuda", "gpu"):
            return Device("torch", kind="cuda", index=index(rest[1]) if len(rest) > 1 else 0)
        raise _unknown(spec)
    if head in ("strict", "array_api_strict") and len(rest) <= 1:
        if not rest or rest[0] in ("cpu", "cpu_device"):
            return Device("strict")
        return Device("strict", kind=rest[0])
    raise _unknown(spec)


def _unknown(spec: Any) -> UnknownDeviceError:
    return UnknownDeviceError(
        f"unknown device {spec!r}; valid devices are: {', '.join(VALID_DEVICE_STRINGS)} "
        f"(N is a GPU index, e.g. 'cuda:1')"
    )


def resolve_device(spec: str | Device | None = None) -> Device:
    """Turn a device string (see the module docstring) into a working :class:`Device`.

    ``None`` means the current default. The device is probed: a GPU must answer a
    real allocation. Raises :class:`~xpnet.errors.UnknownDeviceError` for a string
    xpnet does not know, and a :class:`~xpnet.errors.BackendUnavailableError`
    subclass (CuPy not installed, CUDA driver missing, no GPU, index out of range)
    when the device cannot run here.
    """
    if spec is None:
        return current_device()
    if isinstance(spec, Device):
        device = spec
    elif isinstance(spec, str):
        if spec.strip().lower() == "auto":
            if gpu_available():
                return Device("cupy")
            _explain_cpu_fallback()
            return Device("numpy")
        device = _parse(spec)
    else:
        raise _unknown(spec)
    device._impl.check(device)
    return device._impl.canonical(device)


def _explain_cpu_fallback() -> None:
    """Warn once per process when "auto" settles for the CPU although CuPy is there:
    whoever installed CuPy expected the GPU, and the reason is the fix."""
    cupy = _BACKENDS["cupy"]
    reason = cupy._probed.get(0)
    if reason is None or isinstance(reason, CupyNotInstalledError) or cupy._auto_explained:
        return
    type(cupy)._auto_explained = True
    first_line = str(reason).split(f". {_CPU_ALTERNATIVE}")[0]
    warnings.warn(
        f'xpnet.use("auto") chose the CPU: CuPy is installed but cannot use a GPU here '
        f'({type(reason).__name__}: {first_line}). xpnet.use("cpu") says this is intended; '
        f'xpnet.use("cuda") raises the full error',
        UserWarning,
        stacklevel=_outside_xpnet(),
    )


def _outside_xpnet() -> int:
    """The ``stacklevel`` of the first caller outside the xpnet package, so a warning
    points at the user's line whichever xpnet function led to it."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


# ---------------------------------------------------------------------- the setting
class _Settings:
    device: Device | None = None  # resolved lazily from XPNET_DEVICE
    dtype: str = "float32"


_settings = _Settings()

class _Scope:
    """What one :func:`using` block selected, and the module-level setting to put back
    at its end if :func:`use` changed it inside the block."""

    __slots__ = ("device", "dtype", "saved")

    def __init__(self, device: Device, dtype: str):
        self.device, self.dtype = device, dtype
        self.saved: tuple[Device | None, str] | None = None


#: The innermost :func:`using` block of this thread (or asyncio task), over ``_settings``.
#: Context-local, so that a ``fit`` (or a scikit-learn estimator) in one thread, which
#: runs inside ``using(model.device)``, never changes another thread's device: a
#: process-global save-and-restore let two overlapping fits restore each other's
#: "previous" device (a threaded GridSearchCV left the user's default changed).
_scoped: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("xpnet_using", default=None)


def current_device() -> Device:
    """The device new parameters and data go to (``XPNET_DEVICE`` or ``"cpu"`` at start)."""
    scoped = _scoped.get()
    if scoped is not None:
        return scoped.device
    if _settings.device is None:
        _settings.device = resolve_device(os.environ.get("XPNET_DEVICE") or "cpu")
    return _settings.device


def default_dtype() -> str:
    """The default floating dtype name for new parameters and data (``"float32"``)."""
    scoped = _scoped.get()
    return _settings.dtype if scoped is None else scoped.dtype


def use(device: str | Device = "cpu", dtype: Any = None) -> Device:
    """Select the default device (and optionally the default float dtype).

    Args:
        device: a device string such as ``"cpu"``, ``"cuda"``, ``"cuda:1"``,
            ``"auto"``, ``"jax"``, ``"torch:cuda"``, ``"strict"``, or a Device.
        dtype: ``"float32"`` or ``"float64"`` (or a backend dtype object); ``None``
            keeps the current default.

    Returns:
        The resolved :class:`Device`. The choice is a module-level setting for every
        thread: it holds until the next ``use`` (also across notebook cells). Inside a
        :func:`using` block it lasts until the block ends.
    """
    resolved = resolve_device(device)
    name = default_dtype() if dtype is None else _float_dtype_name(dtype)
    resolved._impl.activate(resolved)
    scope = _scoped.get()
    if scope is not None:
        if scope.saved is None:
            scope.saved = (_settings.device, _settings.dtype)
        scope.device, scope.dtype = resolved, name
    _settings.device, _settings.dtype = resolved, name
    return resolved


@contextlib.contextmanager
def using(device: str | Device | None = None, dtype: Any = None) -> Iterator[Device]:
    """Context manager form of :func:`use`: restores the previous device and dtype
    on exit, also when the block raises.

    The block's choice applies to the thread (or asyncio task) that entered it: other
    threads keep theirs, so fits running in parallel threads cannot change each
    other's device (a thread started inside the block starts from :func:`use`'s
    module-level setting).

    >>> with xpnet.using("cpu", dtype="float64") as dev:
    ...     model = xpnet.nn.Linear(3, 2)      # float64 on NumPy
    """
    resolved = resolve_device(current_device() if device is None else device)
    name = default_dtype() if dtype is None else _float_dtype_name(dtype)
    resolved._impl.activate(resolved)
    scope = _Scope(resolved, name)
    token = _scoped.set(scope)
    try:
        yield resolved
    finally:
        _scoped.reset(token)
        if scope.saved is not None:  # use() inside the block: its setting ends here
            _settings.device, _settings.dtype = scope.saved
        outer = _scoped.get()
        active = outer.device if outer is not None else _settings.device
        if active is not None:
            active._impl.activate(active)


def gpu_available() -> bool:
    """True if CuPy is installed and a CUDA GPU answers a real allocation. Never raises."""
    try:
        resolve_device(Device("cupy"))
    except Exception:  # noqa: BLE001 - the answer is simply "no"
        return False
    return True


# ------------------------------------------------------------------ array movement
def device_of(array: Any) -> Device:
    """The :class:`Device` an array lives on. Raises ``TypeError`` for non-arrays."""
    for impl in _BACKENDS.values():
        # Loaded implies installed: no `installed()` here, whose import-system lookup
        # (~0.2 ms a backend) made every to_numpy/asarray pay about a millisecond.
        if _is_loaded(impl) and impl.owns(array):
            return impl.device_of(array)
    raise TypeError(f"expected an array from NumPy, CuPy, JAX, PyTorch or array-api-strict, got {type(array).__name__}")


def _is_loaded(impl: _Backend) -> bool:
    # An array of a library can only exist if the library was imported already;
    # checking sys.modules avoids importing torch or jax just to say "not mine".
    import sys

    return impl.module in sys.modules


def _is_array(obj: Any) -> bool:
    try:
        device_of(obj)
    except TypeError:
        return False
    return True


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy array with the values of ``array``, from any backend or device.

    NumPy arrays are returned as they are; Python lists and scalars go through
    ``numpy.asarray``.
    """
    if isinstance(array, np.ndarray):
        return array
    if _is_array(array):
        return device_of(array).to_numpy(array)
    return np.asarray(array)


def asarray(data: Any, dtype: Any = None, device: str | Device | None = None) -> Any:
    """Put ``data`` on ``device`` (default: the current device).

    Floating data gets the default float dtype (``xpnet.default_dtype()``) unless
    ``dtype`` is given; integer and boolean data (class labels, masks) keep their
    kind. Arrays from another backend or device are copied through the host.

    Args:
        data: array-like of any shape (NumPy array, list, array of any backend).
        dtype: target dtype name or object, or ``None`` for the rule above.
        device: target device, or ``None`` for the current one.

    Returns:
        An array of the same shape on the target device.
    """
    target = resolve_device(device)
    if _is_array(data) and device_of(data) == target:
        # Already there: never a trip through the host (fit evaluates its validation
        # set every epoch through here); a dtype change happens on the device.
        have = dtype_name(data.dtype)
        want = dtype_name(dtype) if dtype is not None else default_dtype() if have.startswith("float") else have
        return data if have == want else target.xp.astype(data, target.dtype(want))
    host = to_numpy(data)
    if dtype is None:
        dtype = default_dtype() if np.issubdtype(host.dtype, np.floating) else host.dtype
    return target.asarray(host, dtype=dtype)


_NAMESPACES: dict[type, Any] = {}


def array_namespace(*arrays: Any) -> Any:
    """``array_api_compat.array_namespace``, remembered per array type.

    Every op of every layer asks for its namespace, and array-api-compat's answer
    depends only on the type of the arrays; caching it removes ~10 us per call from the
    training step. Mixed types go to array-api-compat, which raises its usual error.
    """
    kind = type(arrays[0])
    for other in arrays[1:]:
        if type(other) is not kind:
            return array_api_compat.array_namespace(*arrays)
    xp = _NAMESPACES.get(kind)
    if xp is None:
        xp = _NAMESPACES[kind] = array_api_compat.array_namespace(arrays[0])
    return xp


def check_same_device(where: str, arrays: dict[str, Any]) -> Any:
    """The namespace shared by ``arrays`` (name -> array); a clear error if they mix
    backends or devices. ``where`` names the layer or loss in the message."""
    try:
        xp = array_namespace(*arrays.values())
    except TypeError as exc:
        found = ", ".join(f"{k} on {device_of(v).name}" for k, v in arrays.items())
        raise DeviceMismatchError(
            f"{where} got arrays from different backends ({found}); move the input with "
            f"xpnet.asarray(x, device=...) or the model with model.to(device)"
        ) from exc
    devices = {k: array_api_compat.device(v) for k, v in arrays.items()}
    if len(set(map(str, devices.values()))) > 1:
        found = ", ".join(f"{k} on {device_of(v).name}" for k, v in arrays.items())
        raise DeviceMismatchError(
            f"{where} got arrays on different devices ({found}); move the input with "
            f"xpnet.asarray(x, device=...) or the model with model.to(device)"
        )
    return xp


# --------------------------------------------------------------- compiled training step
#: How :func:`xpnet.compile_step` runs on each backend; ``xpnet/_compile.py`` holds the
#: strategies. NumPy: preallocated buffers and in-place kernels. JAX: the step traced
#: once and ``jax.jit``-ed. CuPy: the step captured as a CUDA graph. torch and
#: array-api-strict run the eager step (strict exists to prove correctness; torch's
#: eager step was not measured to gain from capture on the CPU).
_COMPILE_STRATEGIES = {"numpy": "numpy", "jax": "jax", "cupy": "cuda_graph", "torch": "eager", "strict": "eager"}


def compile_strategy(device: Device) -> str:
    """The compiled-step strategy for ``device``: ``"numpy"``, ``"jax"``,
    ``"cuda_graph"`` or ``"eager"``."""
    return _COMPILE_STRATEGIES[device.backend]


@contextlib.contextmanager
def namespace_override(like: Any, **functions: Callable[..., Any]) -> Iterator[None]:
    """Inside the block, :func:`array_namespace` answers arrays of ``like``'s type with
    their usual namespace, except that ``functions`` (name -> function) replace its
    own: the layers' single Array API code then runs on a backend's fast path (the
    CUDA-graph step swaps in :func:`graph_matmul`). Restored on exit, also on error.
    """
    kind = type(like)
    previous = _NAMESPACES.get(kind)
    base = array_namespace(like)
    _NAMESPACES[kind] = _Overridden(getattr(base, "_base", base), functions)
    try:
        yield
    finally:
        if previous is None:
            _NAMESPACES.pop(kind, None)
        else:
            _NAMESPACES[kind] = previous


class _Overridden:
    """A namespace with a few functions replaced; everything else is the base's."""

    def __init__(self, base: Any, functions: dict[str, Callable[..., Any]]):
        self._base = base
        self.__dict__.update(functions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def __repr__(self) -> str:
        replaced = ", ".join(sorted(set(self.__dict__) - {"_base"}))
        return f"<{getattr(self._base, '__name__', self._base)} with {replaced} replaced>"


def graph_matmul(device: Device) -> Callable[[Any, Any], Any] | None:
    """The matrix product a CUDA graph of ``device`` can capture, or None where the
    backend's own one can (or nothing is captured).

    CuPy refuses cuBLAS calls while a stream captures; :func:`xpnet._cublas.matmul`
    calls the same cuBLAS GEMM through ctypes instead. Shapes: ``(n, k) @ (k, m) ->
    (n, m)``, float32 or float64, as ``xp.matmul`` of two matrices.
    """
    if device.backend != "cupy":
        return None
    from . import _cublas

    return _cublas.matmul


def fused_update(device: Device) -> Callable[[Any], None] | None:
    """The CUDA-graph step's fused optimizer update on ``device``, or None.

    ``update(optimizer)`` does ``optimizer.step()`` for SGD and Adam with one CuPy
    ElementwiseKernel per parameter, updating parameters and state in place
    (:mod:`xpnet._cuda_kernels`). Only on CuPy, and only with ``XPNET_FUSED_UPDATE=1``
    in the environment until a GPU benchmark shows it pays (issue 6); the generic path,
    the optimizers' own Array API code, is the reference it is tested against.
    """
    if device.backend != "cupy" or os.environ.get("XPNET_FUSED_UPDATE") != "1":
        return None
    import cupy

    from . import _cuda_kernels

    return _cuda_kernels.make(cupy)


@functools.cache
def host_blas(dtype_name: str) -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    """BLAS ``(gemm, gemv)`` for host NumPy arrays of ``dtype_name`` (float32 or float64),
    from SciPy; None without SciPy or for other dtypes.

    ``gemm(alpha, a, b, beta, c, trans_b=1, overwrite_c=1)`` computes
    ``c = alpha * a @ b.T + beta * c`` in place when ``c`` is Fortran-ordered (the
    transpose of a C-ordered array) and of this dtype; ``gemv(alpha, a, x, beta, y,
    overwrite_y=1)`` does ``y = alpha * a @ x + beta * y`` in place on a contiguous
    ``y``. NumPy's matmul has no ``alpha``/``beta``: the NumPy compiled step uses these
    to apply a plain SGD update inside the weight-gradient product (SciPy is optional).
    """
    if dtype_name not in ("float32", "float64"):
        return None
    try:
        from scipy.linalg import blas
    except ImportError:
        return None
    gemm, gemv = blas.get_blas_funcs(("gemm", "gemv"), dtype=np.dtype(dtype_name))
    return gemm, gemv

