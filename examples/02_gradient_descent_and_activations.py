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
# # Gradient descent, activations and a binary classifier
#
# *After the Radboud deep-learning exercises.* Part 1 minimises
# f(x, y) = x² + y² + x(y + 2) + cos(3x) with xpnet's optimizers and learning-rate schedules: a fixed
# step, then exponential decay η_t = η₀·dᵗ, the paths on a contour plot, and a tuned run that reaches
# the global minimum (f < −2). Part 2 checks sigmoid, ReLU and binary cross-entropy against finite
# differences, and part 3 compares three small networks on digits 0–4 versus 5–9.
#
# [Open in Colab](https://colab.research.google.com/github/xpnet/xpnet/blob/main/examples/02_gradient_descent_and_activations.ipynb)

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
# ## Part 1: gradient descent on a function of two variables
# The point (x, y) is an `xpnet.Variable`: one array that optimizers update like a model's weights.
# Its gradient is written by hand, as every gradient in xpnet is:
# ∂f/∂x = 2x + y + 2 − 3 sin 3x and ∂f/∂y = 2y + x.

# %%
from xpnet import functional as F
from xpnet import nn
from xpnet.optim import SGD, Adam, ExponentialDecay


def f(x, y):
    return x**2 + y**2 + x * (y + 2) + np.cos(3 * x)


def gradient(point):
    x, y = point[0], point[1]
    return [2 * x + y + 2 - 3 * np.sin(3 * x), 2 * y + x]


def descend(optimizer_class, lr, decay=None, start=(2.0, -1.0), steps=100, **options):
    """Run an xpnet optimizer on f from ``start``; return the path as an (steps + 1, 2) array."""
    point = xpnet.Variable(start, dtype="float64", device="cpu")
    optimizer = optimizer_class([point], lr=lr, **options)
    schedule = ExponentialDecay(optimizer, decay=decay) if decay is not None else None
    path = [point.numpy()]
    for _ in range(steps):
        point.grad = gradient(point.value)
        optimizer.step()
        if schedule is not None:
            schedule.step()  # lr_t = lr_0 * decay**t
        path.append(point.numpy())
    path = np.stack(path)
    label = f"{optimizer_class.__name__}(lr={lr})" + (f" decaying by {decay}" if decay is not None else "")
    print(f"{label:<30} ends at {path[-1].round(3)}, f = {f(*path[-1]):.3f}")
    return path


fixed = descend(SGD, lr=0.1)
too_slow_decay = descend(SGD, lr=0.5, decay=0.99)

# %% [markdown]
# A fixed step of 0.1 walks into the nearest dip that cos(3x) carves into the bowl and stays there
# (f ≈ 1.24). A large first step jumps over it, but with d = 0.99 the step is still large when the path
# reaches the valley, so it bounces out again and settles in another local minimum.

# %%
fig = xpnet.plot.plot_contour_path(f, fixed, xlim=(-3, 3), ylim=(-2, 2.5), levels=40)
fig.axes[0].set_title("fixed step 0.1: stuck in a local minimum")
fig

# %% [markdown]
# ### A tuned run
# A large first step (η₀ = 0.5) to escape the first dip, decaying fast enough (d = 0.95) to settle in
# the global minimum near (−1.09, 0.54), where f ≈ −2.28. Adam with a decaying rate finds it too.

# %%
tuned = descend(SGD, lr=0.5, decay=0.95)
adam = descend(Adam, lr=0.3, decay=0.98)
assert f(*tuned[-1]) < -2 and f(*adam[-1]) < -2

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
xpnet.plot.plot_contour_path(f, too_slow_decay, ax=axes[0], xlim=(-3, 3), ylim=(-2, 2.5), levels=40)
axes[0].set_title("η₀ = 0.5, d = 0.99: decays too slowly")
xpnet.plot.plot_contour_path(f, tuned, ax=axes[1], xlim=(-3, 3), ylim=(-2, 2.5), levels=40)
axes[1].set_title(f"η₀ = 0.5, d = 0.95: f = {f(*tuned[-1]):.2f}")
plt.show()

# %% [markdown]
# ## Part 2: sigmoid, ReLU and binary cross-entropy against finite differences
# Each backward function is compared with central differences of the forward function,
# `xpnet.gradcheck.numerical_gradient`, in float64.

# %%
rng = np.random.default_rng(0)
x = xpnet.asarray(rng.normal(size=(5, 4)) * 3, dtype="float64")
g = xpnet.asarray(rng.normal(size=(5, 4)), dtype="float64")  # an upstream gradient
numerical = xpnet.gradcheck.numerical_gradient
xp = xpnet.backend.array_namespace(x)  # the device's array namespace: xp.sum works on every backend

checks = {
    "sigmoid": (F.sigmoid_backward(g, F.sigmoid(x)), numerical(lambda v: xp.sum(F.sigmoid(v) * g), x)),
    "relu": (F.relu_backward(g, x), numerical(lambda v: xp.sum(F.relu(v) * g), x)),
}
probabilities = F.sigmoid(x)
targets = xpnet.asarray(rng.integers(0, 2, size=(5, 4)), dtype="float64")
checks["binary cross-entropy"] = (
    F.binary_cross_entropy_backward(probabilities, targets),
    numerical(lambda p: F.binary_cross_entropy(p, targets), probabilities),
)
for name, (analytic, numeric) in checks.items():
    error = np.max(np.abs(xpnet.to_numpy(analytic) - numeric))
    print(f"{name:<21} max |backprop - finite differences| = {error:.2e}")
    assert error < 1e-6

# %% [markdown]
# The stable sigmoid stays exact far out, where `1 / (1 + exp(-x))` overflows:

# %%
print(xpnet.to_numpy(F.sigmoid(xpnet.asarray([-800.0, -30.0, 0.0, 30.0, 800.0], dtype="float64"))))

# %% [markdown]
# ## Part 3: digits 0–4 versus 5–9, three architectures
# One sigmoid output and binary cross-entropy; the same data and optimizer for each network.

# %%
X, digits = xpnet.data.load_digits()
y = (digits >= 5).astype(np.int64)  # 1 for 5..9
X_train, X_test, y_train, y_test = xpnet.data.train_test_split(X, y, test_size=0.25, seed=0)
EPOCHS = 15 if SMOKE else 60

architectures = {
    "Linear-ReLU-Linear-Sigmoid": lambda: nn.Sequential(nn.Linear(64, 32, init="he_normal"), nn.ReLU(),
                                                        nn.Linear(32, 1), nn.Sigmoid()),
    "Linear-Sigmoid": lambda: nn.Sequential(nn.Linear(64, 1), nn.Sigmoid()),
    "Linear-Linear-Sigmoid": lambda: nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 1), nn.Sigmoid()),
}
histories = {}
for name, build in architectures.items():
    xpnet.seed(0)
    model = build()
    histories[name] = xpnet.fit(model, "binary_cross_entropy", X_train, y_train, epochs=EPOCHS, batch_size=32,
                                optimizer=SGD(model.parameters(), lr=0.1, momentum=0.9),
                                validation_data=(X_test, y_test), progress=False)
    print(f"{name:<28} test accuracy {histories[name]['val_accuracy'][-1]:.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
for name, history in histories.items():
    epochs = range(1, history.epochs + 1)
    (line,) = axes[0].plot(epochs, history["loss"], label=name)
    axes[0].plot(epochs, history["val_loss"], "--", color=line.get_color())
    axes[1].plot(epochs, history["val_accuracy"], label=name)
axes[0].set(title="loss (solid: train, dashed: test)", xlabel="epoch")
axes[1].set(title="test accuracy", xlabel="epoch")
axes[1].legend()
plt.show()

# %% [markdown]
# Two linear layers without a nonlinearity between them compose to one linear map, so
# Linear-Linear-Sigmoid can represent no more than Linear-Sigmoid (both draw a straight decision
# boundary); a small difference between their numbers above comes from optimisation, not capacity.
# The ReLU is what lets the first network bend its decision boundary.
