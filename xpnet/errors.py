"""Exceptions raised by xpnet.

Every error says what was expected, what arrived and how to fix it. The classes
subclass the built-in exception a user would catch anyway (``ValueError`` for bad
input, ``RuntimeError`` for a missing GPU), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "XpnetError",
    "ShapeError",
    "DeviceMismatchError",
    "DtypeMismatchError",
    "LabelError",
    "NonFiniteLossError",
    "MissingGradientError",
    "UnknownDeviceError",
    "BackendUnavailableError",
    "CupyNotInstalledError",
    "CudaDriverError",
    "NoGPUError",
    "DeviceIndexError",
    "ConflictingCupyError",
    "CorruptFileError",
]


class XpnetError(Exception):
    """Base class of every xpnet error."""


class ShapeError(XpnetError, ValueError):
    """An array has the wrong shape or rank for the layer or loss receiving it."""


class DeviceMismatchError(XpnetError, ValueError):
    """Arrays from different backends or devices met in one operation."""


class DtypeMismatchError(XpnetError, TypeError):
    """An input's dtype does not match the parameters' dtype."""


class LabelError(XpnetError, ValueError):
    """Class labels out of range, or one-hot targets of the wrong width."""


class NonFiniteLossError(XpnetError, FloatingPointError):
    """A loss came out NaN or infinite while checking was switched on."""


class MissingGradientError(XpnetError, RuntimeError):
    """A layer's backward did not store the gradient of one of its parameters."""


class UnknownDeviceError(XpnetError, ValueError):
    """A device string that xpnet does not recognise."""


class BackendUnavailableError(XpnetError, RuntimeError):
    """A recognised device whose backend cannot run on this machine."""


class CupyNotInstalledError(BackendUnavailableError, ImportError):
    """CUDA was asked for but CuPy is not installed."""


class CudaDriverError(BackendUnavailableError):
    """CuPy is installed but the CUDA driver is missing or too old."""


class NoGPUError(BackendUnavailableError):
    """The CUDA driver answers but reports no GPU."""


class DeviceIndexError(BackendUnavailableError, IndexError):
    """A device index beyond the number of GPUs present."""


class ConflictingCupyError(BackendUnavailableError):
    """Two CuPy distributions are installed side by side."""


class CorruptFileError(XpnetError, ValueError):
    """A saved model or data file is truncated, corrupted or not what it claims."""
