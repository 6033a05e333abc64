"""Compiled training steps: forward, loss, backward and update built once, replayed.

The eager step (:class:`EagerStep`) is the readable reference::

    out = model.forward(xb)
    value = loss.forward(out, yb)
    model.backward_params(loss.backward())
    for hook in grad_hooks: hook(optimizer.params)     # e.g. a gradient allreduce
    optimizer.step()

:class:`CompiledStep` runs the same maths with a strategy chosen per backend by
:func:`xpnet.backend.compile_strategy`:

- ``"numpy"``: every activation, gradient and temporary preallocated for the batch
  shape; NumPy called directly with ``out=``; parameters and optimizer state updated
  in place. Same operations in the same order as the eager step, so the results agree
  to the last bits in practice. Plain SGD on batches of at most 256 rows runs inside the
  weight-gradient GEMM (SciPy's BLAS with beta = 1, when SciPy is importable).
- ``"jax"``: the eager step itself (the layers' own Array API code) traced once as a
  pure function of (parameters, optimizer state, accumulators, t, lr, batch, dropout
  masks) and ``jax.jit``-ed, parameters and state donated; under ``fit`` the batch is
  gathered inside the program from the data set and host indices.
- ``"cuda_graph"``: the eager step captured once as a CUDA graph over static buffers
  (batch, masks, lr and t in device memory), replayed with ``graph.launch``. Under
  ``fit`` a second graph, captured on the data set, gathers each minibatch inside the
  graph from a static index buffer, counts t and accumulates loss and metric sums on
  the device: a step costs the host one copy of its indices and the launch. Its matrix
  products go through :func:`xpnet.backend.graph_matmul` (cuBLAS through ctypes), since
  CuPy refuses cuBLAS calls while a stream captures.
- ``"eager"``: the eager step (torch, array-api-strict; and any model with a layer the
  compiled paths do not know, or with gradient hooks on JAX/CuPy).

Every plan is built for one (batch shape, dtype, device, train/eval mode); a second
shape (the last partial batch) gets a second plan. Dropout masks are drawn on the host
from xpnet's seeded generator on every path, exactly as the eager Dropout draws them,
so compiled and eager steps drop the same units.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import backend as _backend
from . import losses as _losses
from . import metrics as _metrics
from . import optim as _optim
from . import random as _random
from ._validate import _outside_xpnet
from .backend import array_namespace, dtype_name
from .errors import ShapeError
from .nn import Dropout, Flatten, Identity, Linear, ReLU, Sequential, Sigmoid, Tanh

__all__ = ["compile_step", "CompiledStep", "EagerStep", "train_step"]

#: Layers every compiled strategy knows. A model with any other layer runs eagerly.
_KNOWN_LAYERS = (Linear, ReLU, Sigmoid, Tanh, Identity, Flatten, Dropout)
_KNOWN_LOSSES = (_losses.SoftmaxCrossEntropy, _losses.BinaryCrossEntropy, _losses.MeanSquaredError)
_KNOWN_OPTIMIZERS = (_optim.SGD, _optim.Adam)

Metric = tuple[str, Callable[..., Any]]
GradHook = Callable[[list[Any]], None]


def _flat_layers(model: Any) -> tuple[list[Any], str | None]:
    """The model as a flat list of known layers, or ([], why not)."""
    if isinstance(model, Sequential) and type(model) is Sequential:
        layers: list[Any] = []
        for layer in model.layers:
            sub, why = _flat_layers(layer)
            if why:
                return [], why
            layers += sub
        return layers, None
    if type(model) in _KNOWN_LAYERS:
        return [model], None
    return [], f"{type(model).__name__} has no compiled kernel"


def _dropout_mask(layer: Dropout, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """The host mask the eager :class:`Dropout` draws, drawn the same way (same
    generator, same order), so every path drops the same units."""
    keep = _random.generator().random(shape) >= layer.p
    return (keep / (1.0 - layer.p)).astype(dtype)


def _active_dropouts(layers: Sequence[Any]) -> list[Dropout]:
    return [m for m in layers if isinstance(m, Dropout) and m.training and m.p > 0.0]


def _take(a: Any, idx: Any) -> Any:
    return a if idx is None else array_namespace(a).take(a, idx, axis=0)


def _fresh_copy(array: Any) -> Any:
    return array_namespace(array).asarray(array, copy=True)


# ----------------------------------------------------------------------- eager step
class EagerStep:
    """The reference step: the layers', loss's and optimizer's own code, op by op.

    ``step(xb, yb)`` returns the loss (0-d array); ``step.accumulate(xb, yb, sums)``
    also adds ``loss * batch`` and each metric's count to ``sums`` (0-d arrays) and
    returns the new sums. (A CUDA-graph step returns its own device accumulators,
    which go on counting while that list is passed back in; once the step is given
    another list, the old one holds copies of its values and no longer changes.)

    ``grad_hooks`` run between backward and update with the optimizer's parameter
    handles (the seam for gradient allreduce). ``seam(model, n)``, a context manager
    around forward and backward (data-parallel fit's: it averages the gradients over
    ranks and agrees on faults when it closes), may see an empty shard (n = 0): the
    step then computes nothing, still updates, and adds nothing to the sums.
    """

    strategy = "eager"

    def __init__(self, model: Any, loss: Any, optimizer: Any, *, metrics: Sequence[Metric] = (),
                 threshold: float = 0.5, grad_hooks: Sequence[GradHook] = (), note: str | None = None,
                 seam: Callable[[Any, int], contextlib.AbstractContextManager[None]] | None = None):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.metric_fns, self.threshold = list(metrics), threshold
        self.grad_hooks = list(grad_hooks)
        self.seam = seam or (lambda model, n: contextlib.nullcontext())
        self.note = note
        self.compile_seconds = 0.0

    def begin(self) -> None:
        """Called by fit before the first step of a run (nothing to prepare here)."""

    def __call__(self, xb: Any, yb: Any) -> Any:
        return self._run(xb, yb, None)[0]

    #: Whether :meth:`accumulate_at` wants host (NumPy) index arrays: then fit slices
    #: each epoch's permutation on the host rather than on the device.
    host_indices = False

    def accumulate(self, xb: Any, yb: Any, sums: list[Any]) -> list[Any]:
        return self._run(xb, yb, sums)[1]

    def accumulate_at(self, X: Any, y: Any, idx: Any, sums: list[Any]) -> tuple[list[Any], int]:
        """:meth:`accumulate` on the minibatch ``X[idx], y[idx]`` (``idx`` an index
        array, or None for the whole set); also returns the batch size."""
        xb, yb = _take(X, idx), _take(y, idx)
        return self.accumulate(xb, yb, sums), xb.shape[0]

    def _run(self, xb: Any, yb: Any, sums: list[Any] | None) -> tuple[Any, Any]:
        model, loss, optimizer = self.model, self.loss, self.optimizer
        nb = xb.shape[0]
        value = None
        with self.seam(model, nb):
            if nb:
                out = model.forward(xb)
                value = loss.forward(out, yb)
                model.backward_params(loss.backward())
        for hook in self.grad_hooks:
            hook(optimizer.params)
        optimizer.step()
        if sums is None or not nb:
            return value, sums
        nb = float(nb)
        sums = [sums[0] + value * nb] + [c + fn(yb, out, self.threshold)
                                          for c, (_, fn) in zip(sums[1:], self.metric_fns, strict=True)]
        return value, sums


# ------------------------------------------------------------------- compiled step
class CompiledStep(EagerStep):
    """A training step built once per (batch shape, dtype, device, mode) and replayed.

    Built with :func:`compile_step`; same call interface as :class:`EagerStep`. Checks
    (shapes, dtypes, devices, label range) run when a plan is built, never per step.
    On NumPy, JAX and CuPy the step owns the parameter and optimizer-state arrays: it
    copies them once when built (arrays you held before stay unchanged) and then
    updates them in place (NumPy, CuPy) or replaces them (JAX, whose old buffers are
    donated). Reassigning parameters between steps (``load_state_dict``) is picked up.
    """

    def __init__(self, model: Any, loss: Any, optimizer: Any, *, strategy: str, layers: list[Any], **kwargs: Any):
        super().__init__(model, loss, optimizer, **kwargs)
        self.strategy = strategy
        self.layers = layers
        self._plans: dict[tuple, Any] = {}
        self._grad_buffers: dict[tuple[int, str], np.ndarray] = {}
        self._owned = False
        #: why the last CUDA graph capture failed, or None: that batch shape trains
        #: eagerly, or (a capture on a data set in ``fit``) its batches are copied in
        self.capture_error: str | None = None
        # JAX gathers the minibatch inside the jitted step, from host indices: an eager
        # device slice and take cost more than the step's own dispatch
        self.host_indices = strategy == "jax"

    def accumulate_at(self, X: Any, y: Any, idx: Any, sums: list[Any]) -> tuple[list[Any], int]:
        # JAX gathers from host indices inside its program, a CUDA graph from device
        # indices (and reads the whole set in place when idx is None)
        gathers = self.strategy == "cuda_graph" or (self.host_indices and idx is not None)
        if not gathers:
            return super().accumulate_at(X, y, idx, sums)
        nb = X.shape[0] if idx is None else idx.shape[0]
        key = (type(X), (nb, *X.shape[1:]), X.dtype, (nb, *y.shape[1:]), y.dtype, self.model.training)
        plan = self._plans.get(key)
        if plan is not None:
            return plan.run_at(X, y, idx, sums)[1], nb
        # build from the gathered batch (checks and shapes), first step gathering in-step
        return self._run(_take(X, idx), _take(y, idx), sums, at=(X, y, idx))[1], nb

    def begin(self) -> None:
        """Take ownership of fresh copies of the parameters and optimizer state."""
        for p in self.model.parameters():
            p.value = _fresh_copy(p.value)
        for p, state in zip(self.optimizer.params, self.optimizer.state, strict=True):
            for key in self.optimizer._state_names:
                state[key] = _fresh_copy(_optim._follow(state.get(key), p.value))
        self._owned = True
        for plan in self._plans.values():
            plan.rebind()

    def _run(self, xb: Any, yb: Any, sums: list[Any] | None, at: tuple[Any, Any, Any] | None = None) -> tuple[Any, Any]:
        key = (type(xb), tuple(xb.shape), xb.dtype, tuple(yb.shape), yb.dtype, self.model.training)
        plan = self._plans.get(key)
        if plan is not None:
            return plan.run(xb, yb, sums) if at is None else plan.run_at(*at, sums)
        # a new shape or mode: check, build, and time the first run (JAX traces and
        # compiles there), which performs a real step
        self._check(xb, yb)
        if not self._owned:
            self.begin()
        start = time.perf_counter()
        try:
            plan = _PLANS[self.strategy](self, xb, yb)
        except Exception as exc:
            if self.strategy != "cuda_graph":
                raise
            # a capture can fail on a driver or CuPy version we have not met: train
            # eagerly rather than not at all, and say so
            self.capture_error = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"CUDA graph capture failed ({self.capture_error}); this batch shape "
                          f"trains with the eager step", RuntimeWarning, stacklevel=_outside_xpnet())
            plan = _EagerPlan(self)
        result = plan.run(xb, yb, sums) if at is None else plan.run_at(*at, sums)
        self.compile_seconds += time.perf_counter() - start
        _forget_caches(self)  # a trace or capture leaves its arrays in the layers' and loss's caches
        self._plans[key] = plan
        return result

    def _grad_buffer(self, layer: Any, name: str) -> np.ndarray:
        """One gradient array per parameter, shared by every NumPy plan of this step."""
        key = (id(layer), name)
        buf = self._grad_buffers.get(key)
        if buf is None:
            value = layer.params[name]
            buf = self._grad_buffers[key] = np.empty(value.shape, value.dtype)
        return buf

    def _check(self, xb: Any, yb: Any) -> None:
        """The eager path's own checks, once: a forward in eval mode gives its shape,
        dtype and device errors; the loss checks targets (label range)."""
        model = self.model
        modes = [m.training for m in model.modules()]
        try:
            if self.strategy == "jax":
                # the same layer code on abstract arrays: the same errors, without
                # compiling every eager op for this shape first
                out = _abstract_forward(model.eval(), xb)
            else:
                out = model.eval().forward(xb)
        finally:
            for m, mode in zip(model.modules(), modes, strict=True):
                m.training = mode
            model.clear_cache()
        n = xb.shape[0]
        if yb.shape[0] != n:
            raise ShapeError(f"the training step got {n} inputs but {yb.shape[0]} targets; "
                             f"inputs and targets need the same batch size N as the first axis")
        if self.loss.validate:  # fit has already checked every target once (and turned this off)
            self.loss.validate_target((n, *tuple(out.shape)[1:]), yb)


@contextlib.contextmanager
def _unvalidated(loss: Any):
    """Skip the per-call label check (a host read) that plan building already did."""
    previous, loss.validate = loss.validate, False
    try:
        yield
    finally:
        loss.validate = previous


class _EagerPlan:
    """The eager step, as a plan (where a compiled one could not be built)."""

    def __init__(self, step: CompiledStep):
        self.step = step

    def rebind(self) -> None:
        pass

    def run(self, xb: Any, yb: Any, sums: list[Any] | None) -> tuple[Any, Any]:
        return EagerStep._run(self.step, xb, yb, sums)

    def run_at(self, X: Any, y: Any, idx: Any, sums: list[Any] | None) -> tuple[Any, Any]:
        return self.run(_take(X, idx), _take(y, idx), sums)


# ----------------------------------------------------------------------- NumPy plan
class _NpLinear:
    def __init__(self, step: CompiledStep, layer: Linear, n: int, dtype: Any, need_dx: bool):
        self.params, self.grads, self.bias = layer.params, layer.grads, layer.bias
        self.out = np.empty((n, layer.out_features), dtype)
        self.dW = step._grad_buffer(layer, "W")
        self.db = step._grad_buffer(layer, "b") if layer.bias else None
        self.dx = np.empty((n, layer.in_features), dtype) if need_dx else None
        self.ones = np.ones(n, dtype)
        self.x: Any = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        np.matmul(x, self.params["W"], out=self.out)
        if self.bias:
            self.out += self.params["b"]
        return self.out

    def backward(self, g: np.ndarray) -> np.ndarray | None:
        np.matmul(self.x.T, g, out=self.dW)
        self.grads["W"] = self.dW
        if self.bias:
            # column sums as a matrix-vector product: BLAS is ~10x faster than
            # np.sum(axis=0) here (it rounds differently in the last bits)
            np.matmul(self.ones, g, out=self.db)
            self.grads["b"] = self.db
        if self.dx is None:
            return None
        return np.matmul(g, self.params["W"].T, out=self.dx)

    def backward_sgd(self, g: np.ndarray, lr: float, blas: tuple[Any, Any]) -> np.ndarray | None:
        """backward, then plain SGD (``W -= lr * x.T @ g``, ``b -= lr * sum(g)``) inside
        BLAS with beta = 1: no gradient array written and read back, no update pass.
        The input gradient is taken first, while W is still the one forward used."""
        gemm, gemv = blas
        dx = None if self.dx is None else np.matmul(g, self.params["W"].T, out=self.dx)
        # on the Fortran-ordered view W.T: (W.T) = -lr * g.T @ x + 1 * W.T, in place
        gemm(-lr, g.T, self.x.T, 1.0, self.params["W"].T, trans_b=1, overwrite_c=1)
        self.grads["W"] = None
        if self.bias:
            gemv(-lr, g.T, self.ones, 1.0, self.params["b"], overwrite_y=1)
            self.grads["b"] = None
        return dx


class _NpReLU:
    def __init__(self, shape: tuple[int, ...], dtype: Any, inplace: bool):
        self.y = None if inplace else np.empty(shape, dtype)
        self.mask = np.empty(shape, bool)

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = x if self.y is None else self.y
        np.maximum(x, 0.0, out=y)
        self.out = y
        return y

    def backward(self, g: np.ndarray) -> np.ndarray:
        # y > 0 exactly where x > 0 (NaN included), so the eager mask is reproduced
        np.greater(self.out, 0.0, out=self.mask)
        return np.multiply(g, self.mask, out=g)


class _NpSigmoid:
    def __init__(self, shape: tuple[int, ...], dtype: Any, inplace: bool):
        self.y = None if inplace else np.empty(shape, dtype)
        self.e, self.t = np.empty(shape, dtype), np.empty(shape, dtype)
        self.pos = np.empty(shape, bool)

    def forward(self, x: np.ndarray) -> np.ndarray:
        # functional.sigmoid's formula, op for op: where(x >= 0, 1/(1+e), e/(1+e)), e = exp(-|x|)
        e, t, y = self.e, self.t, (x if self.y is None else self.y)
        np.greater_equal(x, 0.0, out=self.pos)
        np.abs(x, out=e)
        np.negative(e, out=e)
        np.exp(e, out=e)
        np.add(e, 1.0, out=t)
        np.divide(e, t, out=y)
        np.divide(1.0, t, out=y, where=self.pos)
        self.out = y
        return y

    def backward(self, g: np.ndarray) -> np.ndarray:
        np.multiply(g, self.out, out=g)
        np.subtract(1.0, self.out, out=self.t)
        return np.multiply(g, self.t, out=g)


class _NpTanh:
    def __init__(self, shape: tuple[int, ...], dtype: Any, inplace: bool):
        self.y = None if inplace else np.empty(shape, dtype)
        self.t = np.empty(shape, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = np.tanh(x, out=x if self.y is None else self.y)
        return self.out

    def backward(self, g: np.ndarray) -> np.ndarray:
        np.multiply(self.out, self.out, out=self.t)
        np.subtract(1.0, self.t, out=self.t)
        return np.multiply(g, self.t, out=g)


class _NpDropout:
    def __init__(self, layer: Dropout, shape: tuple[int, ...], dtype: Any, inplace: bool):
        self.p = layer.p
        self.y = None if inplace else np.empty(shape, dtype)
        self.draw, self.keep, self.scale = np.empty(shape), np.empty(shape, bool), np.empty(shape, dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        # _dropout_mask without allocating: same draws, same float64 division, same cast
        _random.generator().random(out=self.draw)
        np.greater_equal(self.draw, self.p, out=self.keep)
        np.divide(self.keep, 1.0 - self.p, out=self.scale)
        return np.multiply(x, self.scale, out=x if self.y is None else self.y)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return np.multiply(g, self.scale, out=g)


class _NpReshape:
    """Flatten (and Identity, with no shape change): views, no copies."""

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        self.in_shape, self.out_shape = in_shape, out_shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(self.out_shape)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g.reshape(self.in_shape)


class _NpSoftmaxCrossEntropy:
    """functional.log_softmax / nll_loss / softmax_cross_entropy_backward, op for op,
    into preallocated buffers. Targets: integer labels (N,) or one-hot (N, K)."""

    def __init__(self, n: int, k: int, dtype: Any, labels: np.ndarray):
        self.n = float(max(n, 1))
        self.m, self.lse = np.empty((n, 1), dtype), np.empty((n, 1), dtype)
        self.s, self.lp, self.g = (np.empty((n, k), dtype) for _ in range(3))
        self.integer = labels.ndim == 1
        self.t = None if self.integer else np.empty((n, k), dtype)
        self.row_starts, self.flat = np.arange(n, dtype=np.intp) * k, np.empty(n, np.intp)
        self.ones = np.ones(k, dtype)

    def forward(self, z: np.ndarray, y: np.ndarray) -> Any:
        if self.integer:
            # integer labels need no one-hot: the loss picks each row's log-probability
            # and backward subtracts 1 there (the labels' range was checked when the plan
            # was built; fit checks every label)
            np.add(self.row_starts, y, out=self.flat)
        else:
            np.copyto(self.t, y)
        m, s, lse, lp = self.m, self.s, self.lse, self.lp
        # NumPy reduces short rows slowly: for few classes the row max is a running
        # maximum over columns (exact), and the row sum a matrix-vector product
        if z.shape[1] <= 16:
            np.copyto(m[:, 0], z[:, 0])
            for j in range(1, z.shape[1]):
                np.maximum(m[:, 0], z[:, j], out=m[:, 0])
        else:
            np.max(z, axis=1, keepdims=True, out=m)
        np.subtract(z, m, out=s)
        np.exp(s, out=s)
        np.matmul(s, self.ones, out=lse[:, 0])
        np.log(lse, out=lse)
        np.add(m, lse, out=lse)
        np.subtract(z, lse, out=lp)
        if self.integer:
            # the sum of t * lp without its zero terms (rounds differently in the last bits)
            return -np.sum(lp.reshape(-1)[self.flat]) / self.n
        np.multiply(self.t, lp, out=s)
        return -np.sum(s) / self.n

    def backward(self) -> np.ndarray:
        np.exp(self.lp, out=self.g)
        if self.integer:
            # exp(lp) - 1 at the labels, exp(lp) - 0 elsewhere: the eager (p - t) bit for bit
            self.g.reshape(-1)[self.flat] -= 1.0
        else:
            self.g -= self.t
        self.g /= self.n
        return self.g


class _NpEagerLoss:
    """Any other loss: its own code (it is small next to the layers). The step's loss
    is read on every call: a cached step may be handed an equal loss object later."""

    def __init__(self, step: CompiledStep):
        self.step = step
        self.grad: np.ndarray | None = None

    @property
    def loss(self) -> Any:
        return self.step.loss

    def forward(self, z: np.ndarray, y: np.ndarray) -> Any:
        loss = self.loss
        previous, loss.validate = loss.validate, False
        try:
            return loss.forward(z, y)
        finally:
            loss.validate = previous

    def backward(self) -> np.ndarray:
        # The kernels below update the gradient in place; a user's loss may hand back
        # an array it keeps (a cached constant), which the eager path never writes to.
        g = self.loss.backward()
        if self.grad is None or self.grad.shape != g.shape or self.grad.dtype != g.dtype:
            self.grad = np.empty_like(g)
        np.copyto(self.grad, g)
        return self.grad


class _NpAccuracy:
    """correct_count for (N, K) scores and integer labels: argmax, compare, count."""

    def __init__(self, n: int):
        self.pred, self.hit = np.empty(n, np.intp), np.empty(n, bool)

    def __call__(self, y: np.ndarray, out: np.ndarray, threshold: float) -> int:
        np.argmax(out, axis=1, out=self.pred)
        np.equal(self.pred, y, out=self.hit)
        return np.count_nonzero(self.hit)


class _NpSGD:
    def __init__(self, opt: _optim.SGD):
        self.opt = opt
        self.tmp = [(np.empty(p.shape, p.value.dtype), np.empty(p.shape, p.value.dtype)) for p in opt.params]

    def step(self) -> None:
        # SGD._update, op for op, in place
        opt = self.opt
        opt.t += 1
        neg_lr, wd, mu = -opt.lr, opt.weight_decay, opt.momentum
        for p, state, (a, b) in zip(opt.params, opt.state, self.tmp, strict=True):
            w, g = p.module.params[p.name], p.module.grads[p.name]
            if wd and p.decay:
                np.multiply(w, wd, out=a)
                g = np.add(g, a, out=a)
            if mu:
                v = state["velocity"]
                np.multiply(v, mu, out=v)
                v += g
                if opt.nesterov:
                    np.multiply(v, mu, out=b)
                    g = np.add(g, b, out=b)
                else:
                    g = v
            np.multiply(g, neg_lr, out=b)
            w += b


class _NpAdam:
    def __init__(self, opt: _optim.Adam):
        self.opt = opt
        self.tmp = [(np.empty(p.shape, p.value.dtype), np.empty(p.shape, p.value.dtype)) for p in opt.params]

    def step(self) -> None:
        # Adam._update, op for op, in place
        opt = self.opt
        opt.t += 1
        b1, b2, eps, wd = opt.beta1, opt.beta2, opt.eps, opt.weight_decay
        c2 = math.sqrt(1.0 - b2**opt.t)
        size = opt.lr * c2 / (1.0 - b1**opt.t)
        if not opt.eps_hat:
            eps = eps * c2  # Algorithm 1 (see Adam._update)
        for p, state, (a, b) in zip(opt.params, opt.state, self.tmp, strict=True):
            w, g = p.module.params[p.name], p.module.grads[p.name]
            if wd and p.decay:
                np.multiply(w, wd, out=a)
                g = np.add(g, a, out=a)
            m, v = state["m"], state["v"]
            np.multiply(m, b1, out=m)
            np.multiply(g, 1.0 - b1, out=b)
            m += b
            np.multiply(v, b2, out=v)
            np.multiply(g, g, out=b)
            np.multiply(b, 1.0 - b2, out=b)
            v += b
            np.multiply(m, size, out=b)
            np.sqrt(v, out=a)
            a += eps
            np.divide(b, a, out=b)
            np.subtract(w, b, out=w)


class _EagerOptimizer:
    def __init__(self, opt: Any):
        self.step = opt.step


#: Largest batch for which the NumPy plan applies plain SGD inside the weight-gradient
#: GEMM. The separate update costs about one pass over W per GEMM of n rows, so fusing
#: pays most for small batches; for n >= 512 SciPy's BLAS build (a different OpenBLAS
#: from NumPy's) was measured slower than the separate update (benchmarks/NOTES.md).
_FUSED_SGD_MAX_ROWS = 256


class _NumpyPlan:
    """One batch shape on NumPy: kernels with their buffers, run in a fixed order."""

    def __init__(self, step: CompiledStep, xb: np.ndarray, yb: np.ndarray):
        self.step = step
        n, dtype = xb.shape[0], xb.dtype
        # owned: x is a buffer of this plan that no backward pass reads (a Linear's or
        # Dropout's output), so the next activation may overwrite it in place
        shape, owned = tuple(xb.shape), False
        self.forward_kernels: list[Any] = []
        # as Sequential.backward_params: nothing before the first layer with parameters
        # runs backward, and that layer skips its input gradient
        first_param = next((i for i, m in enumerate(step.layers) if m.params), None)
        for i, layer in enumerate(step.layers):
            if isinstance(layer, Linear):
                kernel = _NpLinear(step, layer, n, dtype, need_dx=i != first_param)
                shape, owned = (n, layer.out_features), True
            elif isinstance(layer, (Flatten, Identity)):
                out_shape = (n, math.prod(shape[1:])) if isinstance(layer, Flatten) else shape
                kernel = _NpReshape(shape, out_shape)
                shape = out_shape
            elif isinstance(layer, Dropout):
                if not (layer.training and layer.p > 0.0):
                    kernel = _NpReshape(shape, shape)
                else:
                    kernel = _NpDropout(layer, shape, dtype, inplace=owned)
                    owned = True
            else:
                cls = {ReLU: _NpReLU, Sigmoid: _NpSigmoid, Tanh: _NpTanh}[type(layer)]
                kernel = cls(shape, dtype, inplace=owned)
                owned = False
            self.forward_kernels.append(kernel)
        self.backward_kernels = [] if first_param is None else self.forward_kernels[first_param:][::-1]
        loss = step.loss
        if type(loss) is _losses.SoftmaxCrossEntropy and not loss.check_finite and len(shape) == 2:
            self.loss = _NpSoftmaxCrossEntropy(n, shape[1], dtype, yb)
        else:
            self.loss = _NpEagerLoss(step)
        opt = step.optimizer
        self.optimizer = {_optim.SGD: _NpSGD, _optim.Adam: _NpAdam}.get(type(opt), _EagerOptimizer)(opt)
        self.blas = self._sgd_blas(n, dtype)
        self.metrics = []
        for _, fn in step.metric_fns:
            fast = fn is _metrics.correct_count and len(shape) == 2 and shape[1] > 1 and yb.ndim == 1
            self.metrics.append(_NpAccuracy(n) if fast else fn)
        self.nb = float(n)

    def _sgd_blas(self, n: int, dtype: Any) -> tuple[Any, Any] | None:
        """BLAS with alpha and beta, where the optimizer is SGD over exactly the Linear
        layers' parameters (then plain SGD can run inside the weight-gradient GEMM) and
        the batch is small enough for that to pay."""
        opt = self.step.optimizer
        if type(opt) is not _optim.SGD or n > _FUSED_SGD_MAX_ROWS:
            return None
        linear = [(id(k.params), name) for k in self.backward_kernels if isinstance(k, _NpLinear)
                  for name in k.params]
        handles = [(id(p.module.params), p.name) for p in opt.params]
        if len(handles) != len(linear) or set(handles) != set(linear):
            return None
        self.sgd_arrays = [(p.module.params, p.name) for p in opt.params]
        self.dtype = np.dtype(dtype)
        return _backend.host_blas(self.dtype.name)

    def _fused_lr(self) -> float | None:
        """The learning rate when this step can update inside the GEMMs, else None:
        plain SGD now (no momentum, no weight decay, no gradient hooks), and every
        parameter an array BLAS updates in place (C-ordered, writeable, this dtype)."""
        opt = self.step.optimizer
        if self.blas is None or opt.momentum or opt.weight_decay or self.step.grad_hooks:
            return None
        for params, name in self.sgd_arrays:
            w = params[name]
            if type(w) is not np.ndarray or w.dtype != self.dtype or not (w.flags.c_contiguous and w.flags.writeable):
                return None
        return opt.lr

    def rebind(self) -> None:
        """Parameters are read from the modules on every step: nothing to rebind."""

    def run(self, xb: np.ndarray, yb: np.ndarray, sums: list[Any] | None) -> tuple[Any, Any]:
        x = xb
        for kernel in self.forward_kernels:
            x = kernel.forward(x)
        value = self.loss.forward(x, yb)
        g = self.loss.backward()
        lr = self._fused_lr()
        if lr is not None:
            for kernel in self.backward_kernels:
                g = kernel.backward_sgd(g, lr, self.blas) if type(kernel) is _NpLinear else kernel.backward(g)
            self.step.optimizer.t += 1
        else:
            for kernel in self.backward_kernels:
                g = kernel.backward(g)
            for hook in self.step.grad_hooks:
                hook(self.step.optimizer.params)
            self.optimizer.step()
        if sums is None:
            return np.asarray(value), None
        return value, self.add(sums, value, xb, yb, x)

    def add(self, sums: list[Any], value: Any, xb: Any, yb: Any, out: Any) -> list[Any]:
        threshold = self.step.threshold
        return [sums[0] + value * self.nb] + [c + fn(yb, out, threshold)
                                               for c, fn in zip(sums[1:], self.metrics, strict=True)]


# ------------------------------------------------------------------------- JAX plan
class _TracedStep:
    """The eager step as a pure function of arrays, for jax.jit (and the body a CUDA
    graph captures): parameters, optimizer state, t and lr go in, are bound into the
    model and optimizer, the layers' own code runs, and the new values come out."""

    def __init__(self, step: CompiledStep, n: int, update: Callable[[Any], None] | None = None):
        self.step = step
        # every parameter goes in as an argument, also those the optimizer leaves alone:
        # a trace then never mixes its own arrays with concrete ones
        self.params = step.model.parameters()
        self.dropouts = _active_dropouts(step.layers)
        self.nb = float(n)
        #: ``update(optimizer)`` in place of ``optimizer.step()`` (a backend's fused update)
        self.update = update

    def __call__(self, params, states, sums, t, lr, xb, yb, masks):
        step = self.step
        model, loss, opt = step.model, step.loss, step.optimizer
        for p, value in zip(self.params, params, strict=True):
            p.value = value
        opt.state = [dict(s) for s in states]
        # t and lr are traced (JAX) or device (CUDA graph) scalars here: they go into the
        # optimizer's slots directly, past the setter that checks a Python float
        opt.t, opt._lr = t, lr
        out = self.forward(xb, masks)
        value = loss.forward(out, yb)
        model.backward_params(loss.backward())
        if self.update is None:
            opt.step()
        else:
            self.update(opt)
        new_sums = None
        if sums is not None:
            new_sums = [sums[0] + value * self.nb] + [c + fn(yb, out, step.threshold)
                                                       for c, (_, fn) in zip(sums[1:], step.metric_fns, strict=True)]
        return [p.value for p in self.params], [dict(s) for s in opt.state], new_sums, value

    def forward(self, x: Any, masks: Sequence[Any]) -> Any:
        if not self.dropouts:
            return self.step.model.forward(x)
        masks = iter(masks)
        for layer in self.step.layers:
            if layer in self.dropouts:
                # Dropout.forward with the mask handed in rather than drawn (a draw
                # inside the trace would freeze one mask into the program)
                layer._mask = next(masks)
                x = x * layer._mask
            else:
                x = layer.forward(x)
        return x

    def masks(self, shapes: Sequence[tuple[int, ...]], dtype: str) -> list[np.ndarray]:
        return [_dropout_mask(layer, shape, dtype) for layer, shape in zip(self.dropouts, shapes, strict=True)]


def _mask_shapes(step: CompiledStep, xb: Any) -> list[tuple[int, ...]]:
    """Input shapes of the active Dropout layers, from one eval-mode forward pass."""
    dropouts = _active_dropouts(step.layers)
    if not dropouts:
        return []
    shapes, x = [], xb[:1, ...]
    modes = [m.training for m in step.layers]
    try:
        for layer in step.layers:
            if layer in dropouts:
                shapes.append((xb.shape[0], *tuple(x.shape)[1:]))
            layer.training = False
            x = layer.forward(x)
    finally:
        for layer, mode in zip(step.layers, modes, strict=True):
            layer.training = mode
        step.model.clear_cache()
    return shapes


def _abstract_forward(model: Any, xb: Any) -> Any:
    """``model.forward(xb)`` on abstract arrays (shapes and dtypes only)."""
    import jax

    handles = model.parameters()
    saved = [p.value for p in handles]

    def forward(params: list[Any], x: Any) -> Any:
        for p, value in zip(handles, params, strict=True):
            p.value = value
        return model.forward(x)

    try:
        return jax.eval_shape(forward, saved, xb)
    finally:
        for p, value in zip(handles, saved, strict=True):
            p.value = value


def _drop_grads_and_caches(step: CompiledStep) -> None:
    """A trace runs the layers' own code on tracers, and a capture on arrays that every
    replay overwrites; the layers' ``grads`` and caches keep them (a tracer left in a
    module breaks ``model.to``, ``copy.deepcopy`` and pickling long after the trace).
    The gradients live inside the compiled step, so ``p.grad`` is None after it (as
    after the fused SGD step on NumPy)."""
    for m in step.model.modules():
        for name in m.grads:
            m.grads[name] = None
    _forget_caches(step)


def _forget_caches(step: CompiledStep) -> None:
    """Drop what forward left in the layers and the loss (a trace's tracers, a
    capture's graph-pool arrays)."""
    step.model.clear_cache()
    step.loss._cache = None
    if hasattr(step.loss, "_log_probs"):
        step.loss._log_probs = None


class _JaxPlan:
    def __init__(self, step: CompiledStep, xb: Any, yb: Any):
        import jax

        self.step = step
        self.traced = _TracedStep(step, xb.shape[0])
        self.mask_shapes = _mask_shapes(step, xb)
        self.dtype = dtype_name(xb.dtype)
        traced = self.traced

        def direct(params, states, sums, t, lr, xb, yb, masks):
            try:
                return traced(params, states, sums, t, lr, xb, yb, masks)
            finally:
                _drop_grads_and_caches(step)

        def gathered(params, states, sums, t, lr, X, y, idx, masks):
            xp = array_namespace(X)
            try:
                return traced(params, states, sums, t, lr, xp.take(X, idx, axis=0), xp.take(y, idx, axis=0), masks)
            finally:
                _drop_grads_and_caches(step)

        # parameters and optimizer state are donated (updated without a second copy);
        # the 0-d sums are not, so fit can start every epoch from the same zeros
        self.fn = jax.jit(direct, donate_argnums=(0, 1))

        # jit compiles on first call: only the variant fit uses is ever compiled
        self.fn_at = jax.jit(gathered, donate_argnums=(0, 1))

    def rebind(self) -> None:
        pass

    def run(self, xb: Any, yb: Any, sums: list[Any] | None) -> tuple[Any, Any]:
        return self._call(self.fn, (xb, yb), sums)

    def run_at(self, X: Any, y: Any, idx: Any, sums: list[Any] | None) -> tuple[Any, Any]:
        """The step on ``X[idx], y[idx]``, gathered inside the compiled program."""
        return self._call(self.fn_at, (X, y, idx), sums)

    def _call(self, fn: Any, batch: tuple[Any, ...], sums: list[Any] | None) -> tuple[Any, Any]:
        step = self.step
        opt = step.optimizer
        t, lr = opt.t, opt.lr
        values, states = [p.value for p in self.traced.params], opt.state
        masks = self.traced.masks(self.mask_shapes, self.dtype)
        try:
            with _unvalidated(step.loss):
                params, states, sums, value = fn(values, states, sums, float(t), lr, *batch, masks)
        except BaseException:
            # a trace that raised left its tracers in the parameters and the optimizer:
            # put back the arrays it was given, or every epoch trained so far is lost
            for p, v in zip(self.traced.params, values, strict=True):
                p.value = v
            opt.state = states
            raise
        finally:
            # the trace set traced values into these slots; lr was validated when set
            opt.t, opt._lr = t, lr
        for p, v in zip(self.traced.params, params, strict=True):
            p.value = v
        opt.state = states
        opt.t = t + 1
        return value, sums


# -------------------------------------------------------------------- CUDA graph plan
def _where(a: Any) -> tuple[Any, ...]:
    """What a CUDA graph bakes in of an array it reads: address, shape, strides, dtype.
    An array that matches all four is read correctly by the graph, whichever object it is."""
    return a.data.ptr, tuple(a.shape), tuple(a.strides), a.dtype


def _graph_pool(cupy: Any) -> Any:
    """A memory pool for graph temporaries that never gives memory back on its own.

    A captured graph keeps using the blocks its capture freed back to the pool. CuPy's
    pool answers a failed cudaMalloc (or its byte limit) by freeing every free block
    and trying again: those blocks would go back to the driver while graphs still
    write to them. Here an allocation that fails raises OutOfMemoryError instead (the
    capture then fails, and the step falls back), and the pool has no byte limit."""

    def malloc(size: int) -> Any:
        try:
            return cupy.cuda.memory._malloc(size)
        except cupy.cuda.runtime.CUDARuntimeError as exc:
            if exc.status != cupy.cuda.runtime.errorMemoryAllocation:
                raise
            # not a CUDARuntimeError: the pool passes it on instead of freeing and retrying
            raise cupy.cuda.memory.OutOfMemoryError(size, 0, 0) from exc

    pool = cupy.cuda.MemoryPool(allocator=malloc)
    pool.set_limit(size=0)  # CUPY_GPU_MEMORY_LIMIT would make the pool free blocks too
    return pool


class _CudaGraphPlan:
    """The eager step captured as CUDA graphs over static buffers, replayed.

    Parameters, optimizer state, dropout masks, lr and t live in device memory the
    graphs read; before a launch the host writes only what changed (lr when a schedule
    moved it, t when it was set from outside: the graphs count t themselves).
    Temporaries come from a private memory pool that only this plan's graphs use
    (:func:`_graph_pool`), so replaying cannot overwrite anyone else's arrays. The
    layers' own code is what is captured; only their matrix products go through
    :func:`xpnet.backend.graph_matmul`, because CuPy refuses cuBLAS calls during capture.

    Two kinds of graph share the static arrays, each captured at its first use.
    ``run(xb, yb)`` copies the batch into static inputs and replays the first kind.
    ``run_at(X, y, idx)``, what ``fit`` calls, replays a graph captured on the data set
    itself: it gathers ``X[idx], y[idx]`` inside the graph from a static index buffer
    (one copy of the indices per step), or reads X and y whole for full-batch training.
    A capture that fails trains that batch shape with the eager step (one warning); a
    capture on a data set that fails copies each of its batches in instead.

    Loss and metric sums accumulate inside the graphs, in static 0-d arrays that the
    step hands back as ``sums``: passed back in, they go on accumulating with no work on
    the host. Any other ``sums`` (a new epoch's zeros) are copied in first; the list
    handed out before is then given copies of its values, so it no longer changes.
    """

    #: Graphs captured on data sets (``run_at``) that a plan keeps, most recent last.
    DATA_GRAPHS = 2

    def __init__(self, step: CompiledStep, xb: Any, yb: Any):
        import cupy

        self.cupy, self.step = cupy, step
        opt = step.optimizer
        dtype = xb.dtype
        self.device = xb.device
        device = step.model.device or _backend.device_of(xb)
        self.matmul = _backend.graph_matmul(device)
        # SGD and Adam updated in place by one fused kernel per parameter, where the
        # backend offers one (opt-in until measured on a GPU)
        fused = _backend.fused_update(device) if type(opt) in (_optim.SGD, _optim.Adam) else None
        self.traced = _TracedStep(step, xb.shape[0], update=fused)
        self.mask_shapes = _mask_shapes(step, xb)
        self.dtype = dtype_name(dtype)
        with self.device:
            self.x = self.y = None  # the first graph's inputs, made with it
            self.masks = [cupy.empty(s, dtype=dtype) for s in self.mask_shapes]
            # float64 whatever the model's dtype: the optimizer's coefficients (1 - beta2**t)
            # keep the digits the eager step's Python floats have (optim._coefficient)
            self.lr, self.t = cupy.zeros((), dtype="float64"), cupy.zeros((), dtype="float64")
            self.sums = [cupy.zeros((), dtype=dtype) for _ in range(1 + len(step.metric_fns))]
            self.value = cupy.zeros((), dtype=dtype)
            self.params = [p.value for p in self.traced.params]
            self.states = [dict(s) for s in opt.state]
            self._bound: list[dict[str, Any]] | None = None  # the state dicts last given to the optimizer
            self._lr: float | None = None  # what self.lr and self.t hold, as the host last wrote or counted
            self._t: int | None = None
            self._live: list[Any] | None = None  # the sums list last handed out (self.sums' arrays)
            self.pool = _graph_pool(cupy)
            self.stream = cupy.cuda.Stream(non_blocking=True)
        self._bind()
        #: the graph over the static inputs: None until run() first needs it, False
        #: where its capture failed (the eager step then trains this batch shape)
        self.graph: Any = None
        #: graphs captured on data sets: (where X, where y, index dtype or None) ->
        #: (graph, index buffer), or False where that capture failed
        self.on_data: OrderedDict[tuple, Any] = OrderedDict()

    def _body(self, xb: Any, yb: Any) -> None:
        params, states, sums, value = self.traced(self.params, self.states, self.sums, self.t, self.lr,
                                                  xb, yb, self.masks)
        for static, new in zip(self.sums, sums, strict=True):
            static[...] = new
        self.value[...] = value
        # the optimizer's step counted t on the device: the next replay reads it without
        # the host writing it (its ``t += 1`` on the 0-d array is in place on CuPy)
        new_t = self.step.optimizer.t
        if new_t is not self.t:
            self.t[...] = new_t
        self._store(params, states)

    def _capture(self, body: Callable[[], None], load: Callable[[], None]) -> Any:
        """Warm up on the real batch (labels index the logits: uninitialised ones could
        read out of bounds), put back everything the body writes, then capture the same
        body. ``load`` writes the graph's inputs for the warm-up."""
        cupy = self.cupy
        opt = self.step.optimizer
        t, lr = opt.t, opt.lr
        # parameters or state replaced since the last step (load_state_dict) are the
        # values to keep: the warm-up rebinds the static arrays
        self.rebind()
        self._prepare_scalars()
        for static in self.masks:
            # every unit kept: drawing the masks would advance xpnet's generator, and the
            # first real step would then drop other units than the eager step does
            static.fill(1)
        load()
        saved = ([p.copy() for p in self.params], [{k: v.copy() for k, v in s.items()} for s in self.states],
                 [s.copy() for s in self.sums], self.t.copy())
        # the capture stream is non-blocking: it does not wait for the work queued above
        # on the current stream unless told to
        self.stream.wait_event(cupy.cuda.get_current_stream().record())
        override = (_backend.namespace_override(self.value, matmul=self.matmul) if self.matmul is not None
                    else contextlib.nullcontext())
        try:
            with cupy.cuda.using_allocator(self.pool.malloc), self.stream, _unvalidated(self.step.loss), override:
                # warm-up: compiles the kernels, sets up cuBLAS on this stream and fills
                # the private pool, so that the capture mostly reuses its blocks (relaxed
                # capture mode would allow a new cudaMalloc, but each one stays the graph's)
                body()
                opt.t = t
                self._restore(saved)
                # what the warm-up left (gradients, caches) back to the pool, for the
                # capture to reuse
                _drop_grads_and_caches(self.step)
                self.stream.synchronize()
                self.stream.begin_capture()
                try:
                    body()
                except BaseException:
                    # leave capture mode, or the stream (and CuPy's later calls on it)
                    # stays unusable; the capture's own error is the one worth reporting
                    with contextlib.suppress(Exception):
                        self.stream.end_capture()
                    raise
                graph = self.stream.end_capture()
        except BaseException:
            # the step trains eagerly from here, or this data set with its batches copied
            # in: from the values it had, not from a half-run warm-up's; after the
            # capture stream's own work
            with contextlib.suppress(Exception):
                self.stream.synchronize()
            self._restore(saved)
            raise
        finally:
            opt.t, opt.lr = t, lr
            # the gradients the capture stored are graph memory each replay overwrites:
            # p.grad is None after a compiled step (as on JAX and after NumPy's fused SGD)
            _drop_grads_and_caches(self.step)
        return graph

    def _restore(self, saved: tuple[Any, ...]) -> None:
        params, states, sums, t = saved
        self._store(params, states)
        for static, value in zip(self.sums, sums, strict=True):
            static[...] = value
        self.t[...] = t

    def _store(self, params: list[Any], states: list[dict[str, Any]]) -> None:
        """Write parameter and optimizer-state values (a step's results, or saved
        copies to put back) into the static arrays the graph reads, and bind those to
        the model and optimizer."""
        # an array the step left alone, or updated in place, is the static one itself
        for static, value in zip(self.params, params, strict=True):
            if value is not static:
                static[...] = value
        for static, values in zip(self.states, states, strict=True):
            for key in static:
                if values[key] is not static[key]:
                    static[key][...] = values[key]
        self._bind()

    def _bind(self) -> None:
        """The model's parameters and the optimizer's state are the graph's static
        arrays. The optimizer gets dicts of its own: ``CompiledStep.begin`` replaces
        the arrays in its dicts, which must not replace the graph's (:meth:`rebind`
        then copies the new values in)."""
        for p, static in zip(self.traced.params, self.params, strict=True):
            p.value = static
        self.step.optimizer.state = self._bound = [dict(s) for s in self.states]

    def _prepare_scalars(self) -> None:
        """lr and t into device memory, where they differ from what it holds."""
        opt = self.step.optimizer
        if opt.lr != self._lr:
            self.lr.fill(opt.lr)
            self._lr = opt.lr
        if opt.t != self._t:
            self.t.fill(opt.t)
            self._t = opt.t

    def _prepare(self, sums: list[Any] | None) -> None:
        """Everything a launch reads that the host may have changed since the last one
        (on the current stream): parameters and state replaced from outside, lr and t,
        fresh dropout masks, and the accumulators unless ``sums`` is the list (with the
        arrays) they were handed out as."""
        self.rebind()
        self._prepare_scalars()
        for static, host in zip(self.masks, self.traced.masks(self.mask_shapes, self.dtype), strict=True):
            static.set(host)
        live = self._live
        if sums is not None and sums is live and all(a is b for a, b in zip(sums, self.sums, strict=True)):
            return
        if live is not None:
            # the list handed out last keeps its values, as copies: the arrays it held
            # are about to start from other values
            live[:] = [a.copy() if a is b else a for a, b in zip(live, self.sums, strict=True)]
            self._live = None
        if sums is not None:
            for static, value in zip(self.sums, sums, strict=True):
                static[...] = value
            self._live = list(self.sums)

    def _launch(self, graph: Any, sums: list[Any] | None) -> tuple[Any, Any]:
        opt = self.step.optimizer
        # until the host has counted this step too, it does not know t on the device
        # (a second Ctrl-C between the two would leave them apart)
        self._t = None
        # on the current stream, after the inputs just written, before whatever reads
        # the results: no events (capturing needs a stream of its own; replaying not)
        graph.launch(self.cupy.cuda.get_current_stream())
        opt.t += 1
        self._t = opt.t
        if sums is None:
            return self.value.copy(), None
        # the value is only read before the next launch (accumulate discards it)
        return self.value, self._live

    def rebind(self) -> None:
        """Copy parameters and state that were replaced since the last step
        (``load_state_dict``, ``begin``) into the static arrays, and bind those."""
        opt = self.step.optimizer
        changed = opt.state is not self._bound
        for p, static in zip(self.traced.params, self.params, strict=True):
            if p.value is not static:
                static[...] = p.value
                changed = True
        for state, static in zip(opt.state, self.states, strict=True):
            for key in static:
                if state[key] is not static[key]:
                    static[key][...] = state[key]
                    changed = True
        if changed:
            self._bind()

    def run(self, xb: Any, yb: Any, sums: list[Any] | None) -> tuple[Any, Any]:
        if self.graph is None:
            self.graph = self._capture_first(xb, yb)
        if self.graph is False:
            return EagerStep._run(self.step, xb, yb, sums)
        with self.device:
            self._prepare(sums)
            self.x[...] = xb
            self.y[...] = yb
            return self._launch(self.graph, sums)

    def _capture_first(self, xb: Any, yb: Any) -> Any:
        """The graph over static inputs, or False (with a warning) if it cannot be captured."""
        cupy = self.cupy
        with self.device:
            self.x, self.y = cupy.empty_like(xb), cupy.empty_like(yb)

            def load() -> None:
                self.x[...] = xb
                self.y[...] = yb

            try:
                return self._capture(lambda: self._body(self.x, self.y), load)
            except Exception as exc:  # noqa: BLE001 - a driver or CuPy version we have not met: train eagerly
                self.x = self.y = None
                self.step.capture_error = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"CUDA graph capture failed ({self.step.capture_error}); this batch shape "
                              f"trains with the eager step", RuntimeWarning, stacklevel=_outside_xpnet())
                return False

    def run_at(self, X: Any, y: Any, idx: Any, sums: list[Any] | None) -> tuple[Any, Any]:
        """The step on ``X[idx], y[idx]`` (``idx`` a device index array, or None for the
        whole set), replayed from a graph captured on X and y themselves."""
        key = (_where(X), _where(y), None if idx is None else idx.dtype)
        entry = self.on_data.get(key)
        failed = None
        if entry is None and self.graph is not False:
            entry, failed = self._capture_on_data(X, y, idx)
            self.on_data[key] = entry
            while len(self.on_data) > self.DATA_GRAPHS:
                self.on_data.popitem(last=False)
        if not entry:
            # no graph on this data set: the batch is gathered here, then copied into
            # the first graph's inputs (or the eager step runs, if that graph failed too)
            result = self.run(_take(X, idx), _take(y, idx), sums)
            if failed is not None and self.graph is not False:
                self.step.capture_error = failed
                warnings.warn(f"CUDA graph capture of the step on the data set failed ({failed}); each of its "
                              f"batches is gathered and copied in before the step's graph", RuntimeWarning,
                              stacklevel=_outside_xpnet())
            return result
        graph, index = entry
        with self.device:
            self._prepare(sums)
            if index is not None:
                index[...] = idx
            self.on_data.move_to_end(key)
            return self._launch(graph, sums)

    def _capture_on_data(self, X: Any, y: Any, idx: Any) -> tuple[Any, str | None]:
        """((graph, index buffer), None), or (False, why) if the capture failed."""
        with self.device:
            index = None if idx is None else self.cupy.empty_like(idx)

            def body() -> None:
                if index is None:
                    self._body(X, y)
                else:
                    xp = array_namespace(X)
                    self._body(xp.take(X, index, axis=0), xp.take(y, index, axis=0))

            def load() -> None:
                if index is not None:
                    index[...] = idx

            try:
                return (self._capture(body, load), index), None
            except Exception as exc:  # noqa: BLE001 - any capture failure: the first graph or eager still trains
                return False, f"{type(exc).__name__}: {exc}"


_PLANS: dict[str, Any] = {"numpy": _NumpyPlan, "jax": _JaxPlan, "cuda_graph": _CudaGraphPlan}


# ------------------------------------------------------------------------ building
def _fallback_reason(strategy: str, model: Any, loss: Any, optimizer: Any, layers_reason: str | None,
                     grad_hooks: Sequence[GradHook]) -> str | None:
    if layers_reason:
        return layers_reason
    if strategy == "numpy":
        return None
    if type(loss) not in _KNOWN_LOSSES:
        return f"{type(loss).__name__} is not a loss the {strategy} step knows"
    if type(optimizer) not in _KNOWN_OPTIMIZERS:
        return f"{type(optimizer).__name__} is not an optimizer the {strategy} step knows"
    if loss.check_finite:
        return "check_finite=True reads the loss back every step"
    if grad_hooks:
        return "gradient hooks run on the host between backward and update"
    return None


def train_step(model: Any, loss: Any, optimizer: Any, *, compile: bool | str = "auto",
               metrics: Sequence[Metric] = (), threshold: float = 0.5,
               grad_hooks: Sequence[GradHook] = ()) -> EagerStep:
    """The step :func:`xpnet.fit` runs: compiled when ``compile`` is ``"auto"`` or
    ``True`` and the backend and model allow it, else eager.

    ``compile=True`` raises instead of falling back; ``compile=False`` is the eager
    reference. The result has ``.strategy`` and ``.note`` (why it fell back, or None).
    """
    if compile not in ("auto", True, False):
        raise ValueError(f"compile must be 'auto', True or False, got {compile!r}")
    kwargs = {"metrics": metrics, "threshold": threshold, "grad_hooks": grad_hooks}
    if compile is False:
        return EagerStep(model, loss, optimizer, **kwargs)
    device = model.device or _backend.current_device()
    strategy = _backend.compile_strategy(device)
    if strategy == "eager":
        if compile is True:
            raise ValueError(f"cannot compile the training step on {device.name}: its backend has no compiled "
                             f"step (NumPy, JAX and CuPy do); use compile='auto' or False to train eagerly")
        return EagerStep(model, loss, optimizer, **kwargs)
    layers, why = _flat_layers(model)
    why = _fallback_reason(strategy, model, loss, optimizer, why, grad_hooks)
    if why:
        if compile is True:
            raise ValueError(f"cannot compile the training step on {device.name}: {why}; use compile='auto' or False")
        note = f"compile: running the eager step ({why}); compile=False silences this note"
        return EagerStep(model, loss, optimizer, note=note, **kwargs)
    return CompiledStep(model, loss, optimizer, strategy=strategy, layers=layers, **kwargs)


#: The last few steps fit built, most recent last. Bounded rather than weak: a step
#: holds its model, so a weak-keyed cache would keep every model alive anyway.
_CACHE: OrderedDict[tuple, EagerStep] = OrderedDict()
_CACHE_SIZE = 2


def cached_train_step(model: Any, loss: Any, optimizer: Any, **kwargs: Any) -> EagerStep:
    """:func:`train_step`, reused across ``fit`` calls with the same model, loss,
    optimizer and settings (a JAX step is then traced once, not once per call).

    Whatever a built step may have frozen is part of the key, so changing it between
    calls builds a new step: the optimizer's and loss's configuration, the parameters
    the optimizer updates and which of them decay (``no_decay``), and the model's
    device, dtype, layers and their configuration (:func:`_model_signature`).
    """
    metrics = kwargs.get("metrics", ())
    key = (id(model), _model_signature(model), _loss_identity(loss), id(optimizer), repr(optimizer.get_config()),
           tuple((id(p.module), p.name, p.decay) for p in optimizer.params),
           repr(loss.get_config()),
           kwargs.get("compile", "auto"), tuple((name, id(fn)) for name, fn in metrics),
           kwargs.get("threshold", 0.5), tuple(id(h) for h in kwargs.get("grad_hooks", ())))
    step = _CACHE.get(key)
    if (step is None or step.model is not model or step.optimizer is not optimizer
            or (step.loss is not loss and type(loss) not in _BUILTIN_LOSSES)):
        step = _CACHE[key] = train_step(model, loss, optimizer, **kwargs)
    # an xpnet loss equal to the step's (fit builds a new one from a name like
    # "cross_entropy" on every call): the step reads it from here on
    step.loss = loss
    _CACHE.move_to_end(key)
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return step


#: xpnet's own losses: their configuration (``get_config`` and ``check_finite``) is all
#: that tells two of them apart, so a cached step can take an equal one.
_BUILTIN_LOSSES = (_losses.SoftmaxCrossEntropy, _losses.BinaryCrossEntropy, _losses.MeanSquaredError,
                   _losses.PoissonLoss)


def _loss_identity(loss: Any) -> Any:
    """What tells losses apart for the step cache: the configuration of an xpnet loss,
    the object itself for any other (a user's loss may hold state its config omits)."""
    if type(loss) in _BUILTIN_LOSSES:
        return type(loss), loss.check_finite
    return id(loss)


def _model_signature(model: Any) -> tuple[Any, ...]:
    """What a built step depends on besides the model object: its device and dtype
    (``model.to`` between fits), its layers (``Sequential.append``) and their
    configuration (a Dropout rate changed for fine-tuning)."""
    device = model.device
    return (None if device is None else device.name, model.dtype, tuple(id(m) for m in model.modules()),
            repr(model.get_config()))


def compile_step(model: Any, loss: Any, optimizer: Any) -> EagerStep:
    """A compiled training step: ``step(xb, yb)`` runs forward, loss, backward and the
    optimizer update, and returns the loss as a 0-d array on the model's device.

    Args:
        model: an :class:`xpnet.nn.Module`; the compiled paths know ``Sequential``
            models of Linear, ReLU, Sigmoid, Tanh, Identity, Flatten and Dropout. Any
            other layer makes the step eager (``step.note`` says why).
        loss: an :class:`xpnet.losses.Loss` or a name.
        optimizer: an :class:`xpnet.optim.Optimizer` over ``model.parameters()``.

    Shapes: ``xb`` (N, ...) in the model's dtype on its device; ``yb`` (N,) integer
    labels or (N, K) targets. Each new (N, dtype, device, train/eval) builds a plan once
    (checks included); ``step.strategy`` is ``"numpy"``, ``"jax"``, ``"cuda_graph"``
    or ``"eager"``, and ``step.compile_seconds`` the time spent building. The step reads
    ``optimizer.lr`` on every call, so learning-rate schedules need no rebuild.
    """
    return train_step(model, _losses.get(loss), optimizer)
