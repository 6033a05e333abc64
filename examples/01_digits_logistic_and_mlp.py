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
# # Digits: logistic regression and a two-layer network
#
# *After the TUM deep-learning exercise.* We build an affine layer, ReLU and the softmax
# cross-entropy loss from xpnet's layers, look at why softmax and logsumexp need a max shift, check
# the gradients against finite differences, and train with plain full-batch gradient descent
# (learning rate 1e-2, 500 epochs), first a logistic-regression classifier, then a two-layer network.
# Everything runs on the CPU or a GPU, unchanged.
#
# [Open in Colab](https://colab.research.google.com/github/xpnet/xpnet/blob/main/examples/01_digits_logistic_and_mlp.ipynb)

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
# ## Data
# scikit-learn's 1,797 handwritten digits, 8x8 pixels scaled to [0, 1], bundled (no download).

# %%
from xpnet import functional as F
from xpnet import nn

xpnet.seed(0)
X, y, images = xpnet.data.load_digits(return_images=True)
X_train, X_test, y_train, y_test = xpnet.data.train_test_split(X, y, test_size=0.25, seed=0)
print("train", X_train.shape, "test", X_test.shape)
xpnet.plot.plot_images(images[:16], y[:16])

# %% [markdown]
# ## Stable softmax and logsumexp
# `exp(1000)` overflows, so the textbook formulas return `nan`. Subtracting the row maximum first
# changes nothing mathematically (it cancels) and keeps every exponent at most 0.

# %%
z = np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]])
with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
    naive_softmax = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    naive_logsumexp = np.log(np.exp(z).sum(axis=1))
print("naive softmax:   ", naive_softmax.round(4).tolist())
print("stable softmax:  ", xpnet.to_numpy(F.softmax(xpnet.asarray(z, dtype="float64"))).round(4).tolist())
print("naive logsumexp: ", naive_logsumexp.tolist())
print("stable logsumexp:", xpnet.to_numpy(F.logsumexp(xpnet.asarray(z, dtype="float64"))).round(4).tolist())

# %% [markdown]
# ## Gradient check
# Logistic regression is one affine layer `scores = X W + b` followed by softmax cross-entropy. Its
# backward pass is written by hand; `check_model` compares it with central finite differences of the
# loss, on a float64 copy of the model.

# %%
loss = xpnet.losses.SoftmaxCrossEntropy()
logistic = nn.Sequential(nn.Linear(64, 10, init="normal", rng=0))
print(xpnet.gradcheck.check_model(logistic, loss, X_train[:20], y_train[:20]).raise_if_failed())
two_layer = nn.Sequential(nn.Linear(64, 32, init="he_normal", rng=1), nn.ReLU(), nn.Linear(32, 10, rng=2))
print(xpnet.gradcheck.check_model(two_layer, loss, X_train[:20], y_train[:20]).raise_if_failed())

# %% [markdown]
# ## Full-batch gradient descent
# One step per epoch on the whole training set: forward, loss, backward, update. The loop is the one
# `xpnet.fit` runs (with `batch_size=None`); here it is written out.

# %%
EPOCHS = 100 if SMOKE else 500
Xd, yd = xpnet.asarray(X_train), xpnet.asarray(y_train)  # onto the device, float32 and int64


def gradient_descent(model, lr=1e-2, epochs=EPOCHS):
    optimizer = xpnet.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for epoch in range(epochs):
        value = loss.forward(model.forward(Xd), yd)
        model.backward(loss.backward())
        optimizer.step()
        losses.append(float(value))
        if epoch % 50 == 0 or epoch == epochs - 1:
            print(f"epoch {epoch:3d}  loss {losses[-1]:.4f}")
    return losses


def test_accuracy(model):
    return xpnet.metrics.accuracy(y_test, model.predict_classes(X_test))


# Zero weights are a fine start for logistic regression (its loss is convex), and then the
# templates plotted below are exactly what training learned, with no random start mixed in.
logistic = nn.Sequential(nn.Linear(64, 10, init="zeros"))
logistic_losses = gradient_descent(logistic)
print(f"logistic regression: test accuracy {test_accuracy(logistic):.3f}")

# %%
two_layer = nn.Sequential(nn.Linear(64, 32, init="he_normal", rng=1), nn.ReLU(), nn.Linear(32, 10, rng=2))
two_layer_losses = gradient_descent(two_layer)
print(f"two-layer network:   test accuracy {test_accuracy(two_layer):.3f}")

# %% [markdown]
# With this small learning rate both are still improving after 500 epochs; try `lr=0.5`, or
# `xpnet.fit` with mini-batches and Adam, and compare.

# %%
xpnet.plot.plot_history({"logistic regression": logistic_losses, "two-layer network": two_layer_losses},
                        title="training loss, full-batch GD, lr 1e-2")

# %% [markdown]
# The logistic-regression weights, one 8x8 template per class: bright pixels raise that class's score.
# They started at zero, so each template is what gradient descent learned for its digit.

# %%
xpnet.plot.plot_weights(logistic, image_shape=(8, 8))
