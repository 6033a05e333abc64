"""xpnet: neural-network layers with hand-written forward and backward passes, written
once against the Python Array API standard, trained on NumPy (CPU), CuPy (CUDA GPU),
JAX, PyTorch or array-api-strict.

>>> import xpnet
>>> xpnet.use("auto")            # a GPU if one works, else the CPU; or "cpu", "cuda", "jax", "torch", "strict"
>>> model = xpnet.nn.Sequential(xpnet.nn.Linear(64, 32), xpnet.nn.ReLU(), xpnet.nn.Linear(32, 10))
"""

from __future__ import annotations

from . import callbacks, data, distributed, functional, gradcheck, init, io, losses, metrics, nn, optim
from ._compile import compile_step
from .backend import (
    Device,
    asarray,
    current_device,
    default_dtype,
    device_of,
    gpu_available,
    to_numpy,
    use,
    using,
)
from .history import History
from .io import load, save
from .random import seed
from .training import evaluate, fit, fit_optimizer
from .variable import Variable

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Device",
    "use",
    "using",
    "current_device",
    "default_dtype",
    "gpu_available",
    "asarray",
    "to_numpy",
    "device_of",
    "seed",
    "functional",
    "nn",
    "losses",
    "init",
    "optim",
    "gradcheck",
    "metrics",
    "callbacks",
    "fit",
    "evaluate",
    "fit_optimizer",
    "compile_step",
    "distributed",
    "History",
    "Variable",
    "save",
    "load",
    "data",
    "io",
    "plot",
    "sklearn",
    "testing",
]


def __getattr__(name: str):
    # Optional parts load on first use: plot needs matplotlib, sklearn needs
    # scikit-learn, testing needs pytest for its fixture.
    if name in ("plot", "sklearn", "testing"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'xpnet' has no attribute {name!r}")
