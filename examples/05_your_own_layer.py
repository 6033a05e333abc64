# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your own layer: LeakyReLU, checked on every backend
#
# A new layer is a `forward` and a `backward` written once against the Python Array API standard.
# Here is LeakyReLU, `y = x` for x > 0 and `y = slope * x` otherwise, checked the way xpnet checks
# its own layers: finite differences with `xpnet.gradcheck`, then every available backend (NumPy,
# array-api-strict, JAX, PyTorch, CuPy) against NumPy float64 with `xpnet.testing`.
#
# [Open in Colab](https://colab.research.google.com/github/xpnet/xpnet/blob/main/examples/05_your_own_layer.ipynb)

# %% [markdown]
# **Setup.** The next cell installs xpnet only if this kernel cannot import it yet, so it is safe to
# re-run. It works on Colab (CuPy is not one of xpnet's dependencies, so Colab's preinstalled
# `cupy-cuda12x` is left alone and used), in a fresh local Jupyter, and before xpnet is on PyPI:
#
# - inside a source checkout it installs that checkout (for development use
#   `pip install -e ".[plot,sklearn]"` in a terminal instead);
# - elsewhere it tries `pip install "xpnet[plot,sklearn]"` (PyPI, after a release), then the GitHub
#   repository;
# - to use a wheel you built (`python -m build` in a checkout), run
#   `pip install "dist/xpnet-0.1.0-py3-none-any.whl[plot,sklearn]"` before starting the kernel.
#
# On a local NVIDIA GPU add CuPy yourself: `pip install "xpnet[cuda12x]"` (or `cuda13x`).

# %%
import importlib.util
import os
import subprocess
import sys
from pathlib import Path


def pip_install(*requirements):
    return subprocess.run([sys.executable, "-m", "pip", "install", "-q", *requirements]).returncode == 0


if importlib.util.find_spec("xpnet") is None:
    if os.environ.get("XPNET_EXAMPLES_SMOKE") == "1":
        raise RuntimeError("xpnet is not importable, and XPNET_EXAMPLES_SMOKE=1 runs offline: install xpnet first")
    EXTRAS = "[plot,sklearn]"
    checkout = next((d for d in (Path.cwd(), *Path.cwd().parents) if (d / "xpnet" / "__init__.py").is_file()), None)
    if checkout is not None:
        installed = pip_install(f"{checkout}{EXTRAS}")
    else:
        installed = pip_install(f"xpnet{EXTRAS}") or pip_install(f"xpnet{EXTRAS} @ git+https://github.com/xpnet/xpnet")
    if not installed:
        raise RuntimeError("could not install xpnet; see the pip messages above and the setup notes")
    importlib.invalidate_caches()

# %%
import numpy as np

import xpnet

device = xpnet.use("auto")  # a CUDA GPU if one answers, else the CPU; every later cell uses it
print(f"xpnet {xpnet.__version__} on {device} (GPU available: {xpnet.gpu_available()})")
# XPNET_EXAMPLES_SMOKE=1: CI's quick run, no network, small generated data and short training.
SMOKE = os.environ.get("XPNET_EXAMPLES_SMOKE") == "1"

# %% [markdown]
# ## The layer
# The rules that make it run everywhere: take the namespace `xp` from the input instead of importing
# NumPy; no in-place changes to inputs or incoming gradients; no `float()` or `if` on array values
# (each would force a GPU to synchronise); hyperparameters stay Python floats, so a float32 input stays
# float32. `backward` returns dL/dx (a layer with parameters would also store `self.grads[...]`).

# %%
from typing import Any

from xpnet.backend import array_namespace


class LeakyReLU(xpnet.nn.Module):
    """``y = x`` where x > 0, else ``slope * x``. Shapes: x (N, ...) -> y (N, ...)."""

    def __init__(self, slope: float = 0.01):
        super().__init__()
        self.slope = float(slope)
        self._x = None

    def forward(self, x: Any) -> Any:
        xp = array_namespace(x)
        self._x = x  # backward needs the sign of the input
        return xp.where(x > 0, x, x * self.slope)

    def backward(self, grad_out: Any) -> Any:
        if self._x is None:
            raise RuntimeError("LeakyReLU.backward() called before forward()")
        xp = array_namespace(grad_out, self._x)
        return xp.where(self._x > 0, grad_out, grad_out * self.slope)

    def _clear_cache(self) -> None:
        self._x = None

    def get_config(self) -> dict[str, Any]:
        return {"slope": self.slope}  # lets xpnet.save / xpnet.load rebuild it

    def extra_repr(self) -> str:
        return f"slope={self.slope}"


layer = LeakyReLU(0.1)
print(layer, layer.forward(xpnet.asarray([-2.0, -0.5, 0.5, 2.0])))

# %% [markdown]
# ## Gradient check
# `check_layer` compares `backward` with central differences of `sum(forward(x) * g)` for a random
# upstream gradient `g`, on a float64 copy of the layer. Inputs are kept away from 0, where the kink
# makes finite differences meaningless.

# %%
rng = np.random.default_rng(0)
x = rng.normal(size=(8, 5))
x = np.where(np.abs(x) < 0.1, 0.5, x)
print(xpnet.gradcheck.check_layer(LeakyReLU(0.1), x).raise_if_failed())

# %% [markdown]
# A bug is caught: a backward that forgets the slope on the negative side fails, and the report
# says where.


# %%
class BrokenLeakyReLU(LeakyReLU):
    def backward(self, grad_out):
        xp = array_namespace(grad_out, self._x)
        return xp.where(self._x > 0, grad_out, grad_out * 0.0)


report = xpnet.gradcheck.check_layer(BrokenLeakyReLU(0.1), x)
print(report)
assert not report.passed

# %% [markdown]
# ## Every backend
# `check_layer_parity` builds the layer on each available device, in float64 and float32, runs it
# forward and backward, and compares output and gradients with NumPy float64, checks dtypes and devices,
# and that neither the input nor the upstream gradient was modified. Devices that are not available here
# are left out (`xpnet.testing.available_devices()` lists the rest).

# %%
print("devices here:", ", ".join(str(d) for d in xpnet.testing.available_devices()))
print(xpnet.testing.check_layer_parity(lambda: LeakyReLU(0.1), x))

# %% [markdown]
# ## In a network
# It trains like any built-in layer, and `xpnet.save` / `xpnet.load` rebuild it from `get_config`.

# %%
X, y = xpnet.data.load_digits()
X_train, X_test, y_train, y_test = xpnet.data.train_test_split(X, y, test_size=0.25, seed=0)
xpnet.seed(0)
model = xpnet.nn.Sequential(xpnet.nn.Linear(64, 32, init="he_normal"), LeakyReLU(0.1), xpnet.nn.Linear(32, 10))
history = xpnet.fit(model, "cross_entropy", X_train, y_train, epochs=5 if SMOKE else 20, batch_size=32,
                    optimizer=xpnet.optim.Adam(model.parameters(), lr=3e-3),
                    validation_data=(X_test, y_test), progress=False)
print(f"test accuracy {history['val_accuracy'][-1]:.3f}")
history.plot()

# %% [markdown]
# ## As pytest tests
# In your own project, two files run the same checks as tests, once per backend, skipping unavailable
# ones with the reason (see `examples/check_my_layer.py` and `examples/test_my_layer.py`):
#
# ```python
# # conftest.py
# pytest_plugins = ["xpnet.testing"]
#
# # test_leaky_relu.py
# import numpy as np
# import xpnet
# from my_layers import LeakyReLU
#
# X = np.random.default_rng(0).normal(size=(8, 5)) + 0.2
#
# def test_parity(xp_device):
#     xpnet.testing.check_layer_parity(lambda: LeakyReLU(0.1), X, devices=[xp_device])
#
# def test_gradcheck(xp_device):
#     xpnet.gradcheck.check_layer(LeakyReLU(0.1), X).raise_if_failed()
# ```
