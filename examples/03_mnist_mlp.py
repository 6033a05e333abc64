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
# # A multi-layer perceptron on MNIST
#
# *After the Freiburg deep-learning exercise.* First a gradient check of a ReLU/tanh/ReLU stack on
# random data, then a 784-80-70-10 network trained with mini-batch SGD (batch size 64), its learning
# curves, and a test error in the 1-3 % range. To train on a GPU, the only line to change is
# `xpnet.use(...)` below (`"auto"` already picks a GPU when one answers; `"cuda"` insists on one).
#
# [Open in Colab](https://colab.research.google.com/github/xpnet/xpnet/blob/main/examples/03_mnist_mlp.ipynb)

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
# ## Gradient check on random data
# A small stack with every kind of layer used below, in float64, against central finite differences
# of the softmax cross-entropy.

# %%
from xpnet import nn

rng = np.random.default_rng(0)
stack = nn.Sequential(nn.Linear(15, 12, rng=0), nn.ReLU(), nn.Linear(12, 8, rng=1), nn.Tanh(),
                      nn.Linear(8, 6, rng=2), nn.ReLU(), nn.Linear(6, 3, rng=3))
report = xpnet.gradcheck.check_model(stack, xpnet.losses.SoftmaxCrossEntropy(), rng.normal(size=(10, 15)),
                                     rng.integers(0, 3, size=10))
print(report.raise_if_failed())

# %% [markdown]
# ## Data
# `xpnet.data.load_mnist()` downloads the four MNIST files once (SHA-256 checked) into
# `~/.cache/xpnet` or `$XPNET_DATA_DIR`. In CI's smoke run, generated stand-ins of the same shapes
# and dtypes replace them: each class is a fixed random pattern plus noise, so there is something
# to learn.


# %%
def standin(n, shape, seed):
    """n uint8 images of ``shape`` and int64 labels 0..9, shaped like the real data set."""
    templates = np.random.default_rng(1234).random((10, *shape))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n)
    images = 0.3 * templates[labels] + 0.7 * rng.random((n, *shape))
    return (images * 255).astype(np.uint8), labels.astype(np.int64)


if SMOKE:
    (train_images, y_train), (test_images, y_test) = standin(3000, (28, 28), 1), standin(500, (28, 28), 2)
else:
    (train_images, y_train), (test_images, y_test) = xpnet.data.load_mnist()
print("train", train_images.shape, train_images.dtype, "test", test_images.shape)
xpnet.plot.plot_images(train_images[:16], y_train[:16])

# %% [markdown]
# Flatten to 784 features in [0, 1], and keep the last 10,000 training images for validation.

# %%
X_train = train_images.reshape(len(train_images), -1) / 255.0
X_test = test_images.reshape(len(test_images), -1) / 255.0
n_val = len(X_train) // 6
X_train, X_val = X_train[:-n_val], X_train[-n_val:]
y_train, y_val = y_train[:-n_val], y_train[-n_val:]
print(X_train.shape, X_val.shape, X_test.shape)

# %% [markdown]
# ## 784-80-70-10 with SGD, batch size 64

# %%
xpnet.seed(0)
model = nn.Sequential(nn.Linear(784, 80, init="he_normal"), nn.ReLU(),
                      nn.Linear(80, 70, init="he_normal"), nn.ReLU(),
                      nn.Linear(70, 10))
print(model)
history = xpnet.fit(model, "cross_entropy", X_train, y_train, epochs=3 if SMOKE else 20, batch_size=64,
                    optimizer=xpnet.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                    validation_data=(X_val, y_val))

# %%
history.plot()

# %%
test = xpnet.evaluate(model, "cross_entropy", X_test, y_test)
print(f"test error: {100 * (1 - test['accuracy']):.2f} %")

# %% [markdown]
# Each first-layer unit responds to a 28x28 pattern; here are the first 20.

# %%
xpnet.plot.plot_weights(model[0].params["W"][:, :20], image_shape=(28, 28), ncols=10)
