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
# # CIFAR-10: a linear softmax classifier and a two-layer network
#
# *After the KAIST deep-learning exercise.* Check for a GPU, train a linear softmax classifier with
# full-batch gradient descent and with mini-batch SGD, look at its weights as one image per class,
# then train a two-layer network with L2 regularization, time the numerical gradient against
# backpropagation, and plot accuracy curves.
#
# [Open in Colab](https://colab.research.google.com/github/xpnet/xpnet/blob/main/examples/04_cifar10.ipynb)
# (*Runtime → Change runtime type → GPU* first: the full data set trains in minutes on a GPU.)

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
# ## Is there a GPU?
# `xpnet.gpu_available()` proves it with a real allocation. Without one everything below runs on the
# CPU, only slower. `python -m xpnet info` tells why a GPU is not used (CuPy missing, no driver, ...).

# %%
import time

import matplotlib.pyplot as plt

from xpnet import nn

print("GPU:", "yes" if xpnet.gpu_available() else "no", "| computing on", xpnet.current_device())

# %% [markdown]
# ## Data
# `xpnet.data.load_cifar10()` downloads the 163 MB archive once (SHA-256 checked). CI's smoke run uses
# generated stand-ins of the same shapes and dtypes instead.

# %%
CLASSES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def standin(n, shape, seed):
    """n uint8 images of ``shape`` and int64 labels 0..9, shaped like the real data set."""
    templates = np.random.default_rng(1234).random((10, *shape))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n)
    images = 0.15 * templates[labels] + 0.85 * rng.random((n, *shape))
    return (images * 255).astype(np.uint8), labels.astype(np.int64)


if SMOKE:
    (train_images, y_train), (test_images, y_test) = standin(2000, (32, 32, 3), 1), standin(500, (32, 32, 3), 2)
else:
    (train_images, y_train), (test_images, y_test) = xpnet.data.load_cifar10()
print("train", train_images.shape, train_images.dtype, "test", test_images.shape)
xpnet.plot.plot_images(train_images[:16], y_train[:16], class_names=CLASSES)

# %% [markdown]
# Flatten each image to 3,072 values in [0, 1] and subtract the mean training image.

# %%
X_train = train_images.reshape(len(train_images), -1).astype(np.float32) / 255
X_test = test_images.reshape(len(test_images), -1).astype(np.float32) / 255
mean_image = X_train.mean(axis=0)
X_train, X_test = X_train - mean_image, X_test - mean_image
n_val = len(X_train) // 10
X_train, X_val, y_train, y_val = X_train[n_val:], X_train[:n_val], y_train[n_val:], y_train[:n_val]

# %% [markdown]
# ## Linear softmax classifier: full-batch gradient descent versus SGD
# Scores `X W + b`, softmax cross-entropy. Full-batch GD takes one step per pass over the data; SGD
# takes one per mini-batch of 256.

# %%
EPOCHS = 4 if SMOKE else 30
linear_runs = {}
for name, batch_size, lr in (("batch GD", None, 0.05), ("SGD, batch 256", 256, 0.01)):
    xpnet.seed(0)
    linear = nn.Sequential(nn.Linear(3072, 10, init="normal"))
    linear_runs[name] = xpnet.fit(linear, "cross_entropy", X_train, y_train, epochs=EPOCHS, batch_size=batch_size,
                                  optimizer=xpnet.optim.SGD(linear.parameters(), lr=lr),
                                  validation_data=(X_val, y_val), progress=False)
    print(f"{name:<15} validation accuracy {linear_runs[name]['val_accuracy'][-1]:.3f}")

# %% [markdown]
# The weights of the SGD run (the last one trained), one 32x32 colour template per class.

# %%
xpnet.plot.plot_weights(linear, image_shape=(32, 32, 3), class_names=CLASSES)

# %% [markdown]
# ## Two-layer network with L2 regularization
# `weight_decay` adds `weight_decay * W` to every weight gradient (not the biases): L2 regularization
# with strength `weight_decay / 2 * ||W||²`.

# %%
HIDDEN = 100
xpnet.seed(0)
net = nn.Sequential(nn.Linear(3072, HIDDEN, init="he_normal"), nn.ReLU(), nn.Linear(HIDDEN, 10))
net_history = xpnet.fit(net, "cross_entropy", X_train, y_train, epochs=EPOCHS, batch_size=128,
                        optimizer=xpnet.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-3),
                        validation_data=(X_val, y_val), progress=False)
test = xpnet.evaluate(net, "cross_entropy", X_test, y_test)
print(f"two-layer net: test accuracy {test['accuracy']:.3f}")

# %% [markdown]
# ## Numerical gradient versus backpropagation
# Central differences need two forward passes per parameter; backpropagation gets every gradient from
# one forward and one backward pass. Timed here on two rows of the second layer's weights (a float64
# copy of the network, 100 images), then extrapolated to all parameters.

# %%
net64 = nn.Sequential(nn.Linear(3072, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10)).to(dtype="float64")
net64.load_state_dict(net.state_dict())
loss = xpnet.losses.SoftmaxCrossEntropy()
Xb, yb = xpnet.asarray(X_train[:100], dtype="float64"), xpnet.asarray(y_train[:100])
W2 = net64[2].params["W"]


def loss_with_rows(rows):
    """The loss with the first two rows of the second layer's W replaced by ``rows``."""
    xp = xpnet.backend.array_namespace(W2)
    net64[2].params["W"] = xp.concat([rows, W2[2:, :]], axis=0)
    try:
        return loss.forward(net64.forward(Xb), yb)
    finally:
        net64[2].params["W"] = W2


start = time.perf_counter()
numeric = xpnet.gradcheck.numerical_gradient(loss_with_rows, W2[:2, :])
numeric_seconds = time.perf_counter() - start

start = time.perf_counter()
loss.forward(net64.forward(Xb), yb)
net64.backward(loss.backward())
backprop = xpnet.to_numpy(net64[2].grads["W"])  # reading it back waits for a GPU to finish
backprop_seconds = time.perf_counter() - start

relative = np.max(np.abs(backprop[:2] - numeric)) / np.max(np.abs(numeric))
per_parameter = numeric_seconds / numeric.size
print(f"max relative difference: {relative:.1e}")
print(f"numerical: {numeric_seconds:.2f} s for {numeric.size} weights, so about "
      f"{per_parameter * net64.num_parameters() / 60:.0f} min for all {net64.num_parameters():,} parameters")
print(f"backprop:  {1000 * backprop_seconds:.1f} ms for all of them")

# %% [markdown]
# ## Accuracy curves

# %%
fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
for name, history in {**{f"linear, {k}": v for k, v in linear_runs.items()}, "two-layer + L2": net_history}.items():
    (line,) = ax.plot(range(1, history.epochs + 1), history["accuracy"], label=f"{name} (train)")
    ax.plot(range(1, history.epochs + 1), history["val_accuracy"], "--", color=line.get_color(),
            label=f"{name} (validation)")
ax.set(xlabel="epoch", ylabel="accuracy", title="CIFAR-10")
ax.legend(fontsize=8)
plt.show()
