"""Fused, in-place optimizer updates for the CUDA-graph step (CuPy ElementwiseKernels).

Reached through :func:`xpnet.backend.fused_update`; opt-in (``XPNET_FUSED_UPDATE=1``)
until a GPU benchmark shows it pays (issue 6).

The eager SGD and Adam updates are 2 to 12 separate kernels per parameter, each a pass
over it, and the CUDA-graph step then copies each new parameter and state array into
the graph's static arrays. Here one kernel per parameter reads the gradient and
updates the parameter and its state in place.

Each kernel's body is made from a few assignment lines (:func:`sgd_lines`,
:func:`adam_lines`) that are valid both as CUDA C and as Python over NumPy arrays: the
tests run the same lines with NumPy against the optimizers' own ``_update`` and require
equal bits (``tests/test_fused_update.py``). On the GPU they compile with fused
multiply-add off, so every product and sum rounds on its own, as in the separate
kernels of the eager step. Hyperparameters go in as scalars of the parameter's dtype
(as NumPy and CuPy cast a Python float against a float32 array); lr-dependent
coefficients as the optimizer's own 0-d arrays of that dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: NVRTC options: no contraction of a * b + c into one rounding (see the module docstring)
OPTIONS = ("--fmad=false",)


def sgd_lines(decay: bool, momentum: bool, nesterov: bool) -> list[str]:
    """``SGD._update`` as assignments: gradient ``g``, parameter ``w`` and velocity
    ``vel`` (updated in place), scalars ``wd``, ``mu`` and the 0-d ``neg_lr``."""
    lines = ["gg = g"]
    if decay:
        lines.append("gg = gg + wd * w")
    if momentum:
        lines.append("vel = mu * vel + gg")
        lines.append("gg = gg + mu * vel" if nesterov else "gg = vel")
    lines.append("w = gg * neg_lr + w")
    return lines


def adam_lines(decay: bool) -> list[str]:
    """``Adam._update`` as assignments: ``w``, ``m`` and ``v`` updated in place,
    scalars ``wd``, ``b1``, ``omb1`` (1 - beta1), ``b2``, ``omb2``, and the 0-d
    ``step`` and ``eps``."""
    lines = ["gg = g"]
    if decay:
        lines.append("gg = gg + wd * w")
    lines += ["m = b1 * m + omb1 * gg",
              "v = b2 * v + omb2 * (gg * gg)",
              "w = w - step * m / (sqrt(v) + eps)"]
    return lines


def cuda_source(lines: list[str]) -> str:
    """The lines as an ElementwiseKernel body: the temporary ``gg`` declared of type T."""
    first, *rest = lines
    assert first == "gg = g"
    return "\n".join(["T gg = g;", *(line + ";" for line in rest)])


SGD_IN, SGD_OUT, SGD_PLAIN_OUT = "T g, T neg_lr, T wd, T mu", "T w, T vel", "T w"
ADAM_IN, ADAM_OUT = "T g, T step, T eps, T wd, T b1, T omb1, T b2, T omb2", "T w, T m, T v"


def make(cupy: Any) -> Callable[[Any], None]:
    """The fused update for CuPy: ``update(optimizer)`` does what ``optimizer.step()``
    does for an SGD or Adam optimizer whose parameters and state are CuPy arrays,
    in place."""
    kernels: dict[tuple, Any] = {}

    def kernel(name: str, lines: list[str], params_in: str, params_out: str) -> Any:
        key = (name, tuple(lines), params_in, params_out)
        if key not in kernels:
            kernels[key] = cupy.ElementwiseKernel(params_in, params_out, cuda_source(lines),
                                                  f"xpnet_{name}_{len(kernels)}", options=OPTIONS)
        return kernels[key]

    return lambda optimizer: update(optimizer, kernel)


def update(optimizer: Any, kernel: Callable[[str, list[str], str, str], Any]) -> None:
    """``optimizer.step()`` for SGD or Adam, one fused kernel per parameter, in place;
    ``kernel(name, lines, in_params, out_params)`` gives the compiled kernel (or, in
    tests, a NumPy stand-in that runs the same lines). The optimizer's own checks
    (missing gradient, a gradient of another shape, which a kernel would broadcast),
    step count and per-step coefficients are its ``_step``'s."""
    from . import optim

    sgd = type(optimizer) is optim.SGD

    def apply(p: Any, w: Any, g: Any, state: dict[str, Any]) -> None:
        decay = bool(optimizer.weight_decay and p.decay)
        wd = optimizer.weight_decay if decay else 0.0
        if sgd:
            momentum = bool(optimizer.momentum)
            lines = sgd_lines(decay, momentum, optimizer.nesterov)
            outputs = (w, state["velocity"]) if momentum else (w,)
            kernel("sgd", lines, SGD_IN, SGD_OUT if momentum else SGD_PLAIN_OUT)(
                g, optimizer._neg_lr(g), wd, optimizer.momentum, *outputs)
        else:
            step, eps = optimizer._step_and_eps(w)
            kernel("adam", adam_lines(decay), ADAM_IN, ADAM_OUT)(
                g, step, eps, wd, optimizer.beta1, 1.0 - optimizer.beta1, optimizer.beta2,
                1.0 - optimizer.beta2, w, state["m"], state["v"])

    optimizer._step(apply)
