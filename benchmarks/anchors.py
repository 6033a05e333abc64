#!/usr/bin/env python3
"""Performance anchors for xpnet (hand-written forward/backward MLP layers over
the Array API): xpnet's fit on the CPU against the reference points a user would
pick instead, and against the bare-GEMM floor.

Contenders (one function each, registered in CONTENDERS):

  gemm_floor          only the GEMMs one MLP training step needs, NumPy BLAS,
                      preallocated outputs, contiguous minibatches: the
                      practical compute limit of NumPy on this machine
  numpy_handwritten   course-notebook style NumPy MLP (Affine / ReLU /
                      SoftmaxCrossEntropy classes with forward/backward caches,
                      parameters updated in place)
  torch_eager         PyTorch CPU, nn.Sequential + torch.optim.SGD
  sklearn_mlp         sklearn.neural_network.MLPClassifier, solver='sgd'
  gemm_floor_torch    (extra) the same GEMMs as gemm_floor, through torch.mm
                      (PyTorch's own BLAS, MKL in the CPU wheel)

Workloads:

  mnist   synthetic X (60000, 784) in [0, 1), 10 classes, MLP 784-256-128-10,
          ReLU, softmax cross-entropy, plain SGD lr=0.1, minibatch 128,
          shuffled every epoch.  One measurement = one epoch (469 steps).
  digits  sklearn's load_digits (1797 x 64, scaled to [0, 1]), MLP 64-32-10,
          full-batch gradient descent lr=0.1.  One measurement ("epoch") =
          500 full-batch steps.

Usage:

  # one contender, in this process: warm-up epochs, then timed epochs,
  # prints one JSON line
  python anchors.py run --contender numpy_handwritten --workload mnist --dtype float32

  # the interleaved comparison: each round starts one child process per
  # contender (order rotated every round), collects per-epoch times and the
  # child's peak RSS, prints one aggregated JSON line per
  # contender x workload x dtype with medians, GFLOP/s and paired ratios
  python anchors.py suite --rounds 5 --epochs 3 --out results.jsonl

  # markdown table from the aggregated lines of a suite run
  python anchors.py table results.jsonl

A new contender: write `def name(data, wl, dtype, seed) -> Runner` like the
others and add it to CONTENDERS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

# NumPy is imported lazily in main() so that --threads can set the BLAS /
# OpenMP thread counts through the environment before any BLAS is loaded.
np = None  # type: ignore


# --------------------------------------------------------------------------
# workloads and FLOP counts
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    name: str
    sizes: tuple          # layer widths, input first
    batch: int | None  # None = full batch
    lr: float
    steps: int | None  # full-batch steps per measurement (None = one epoch)
    shuffle: bool
    epoch_unit: str


WORKLOADS = {
    "mnist": Workload("mnist", (784, 256, 128, 10), 128, 0.1, None, True,
                      "1 epoch = 60000 samples, 469 minibatches of <=128"),
    "digits": Workload("digits", (64, 32, 10), None, 0.1, 500, False,
                       "500 full-batch GD steps on 1797 samples"),
}


def gemm_flops_per_sample(sizes) -> int:
    """GEMM FLOPs (2 per multiply-add) of one training step, per sample.

    forward  X@W          every layer
    backward dW = X.T@dY  every layer
    backward dX = dY@W.T  every layer but the first (no gradient w.r.t. input)
    Bias adds, ReLU, softmax and the SGD update are O(width) per sample and
    are not counted (they are < 1% of the GEMM FLOPs here: ~5.7k vs ~1M per
    sample for 784-256-128-10, most of it the update spread over 128 samples).
    """
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    fwd = sum(2 * a * b for a, b in pairs)
    dw = fwd
    dx = sum(2 * a * b for a, b in pairs[1:])
    return fwd + dw + dx


def flops_per_epoch(wl: Workload, n: int) -> int:
    return gemm_flops_per_sample(wl.sizes) * n * (wl.steps or 1)


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------

@dataclass
class Data:
    X: np.ndarray   # (n, d) in the measured dtype, C-contiguous
    y: np.ndarray   # (n,) int64 class labels 0..9


def make_data(wl: Workload, dtype, seed: int) -> Data:
    rng = np.random.default_rng(seed)
    if wl.name == "mnist":
        n, d = 60000, wl.sizes[0]
        # labels from a random linear teacher, so that a working trainer
        # visibly lowers the loss (a sanity check; speed does not depend on it)
        teacher = rng.standard_normal((d, 10), dtype=np.float32)
        X = np.empty((n, d), dtype=dtype)
        y = np.empty(n, dtype=np.int64)
        for s in range(0, n, 5000):   # in chunks: no big temporaries in the RSS
            chunk = rng.random((min(5000, n - s), d), dtype=np.float32)
            X[s:s + chunk.shape[0]] = chunk
            y[s:s + chunk.shape[0]] = np.argmax((chunk - 0.5) @ teacher, axis=1)
    elif wl.name == "digits":
        from sklearn.datasets import load_digits
        Xd, y = load_digits(return_X_y=True)
        X = np.ascontiguousarray(Xd / 16.0, dtype=dtype)
    else:
        raise ValueError(wl.name)
    return Data(X=X, y=np.asarray(y, dtype=np.int64))


def batches(n: int, batch: int | None, perm=None):
    """Yield index objects for one epoch: slices (no shuffle) or index arrays."""
    b = batch or n
    for s in range(0, n, b):
        yield slice(s, min(s + b, n)) if perm is None else perm[s:s + b]


# --------------------------------------------------------------------------
# contenders
# --------------------------------------------------------------------------

@dataclass
class Runner:
    epoch: Callable[[], None]                 # one measurement unit
    loss: Callable[[], float] | None = None  # mean CE on an eval subset
    info: dict = field(default_factory=dict)


def _eval_subset(data: Data, k: int = 4096):
    k = min(k, data.X.shape[0])
    return data.X[:k], data.y[:k]


def _np_ce(probs, y) -> float:
    p = probs[np.arange(y.shape[0]), y]
    return float(-np.mean(np.log(np.maximum(p, 1e-12))))


def _he_init(rng, a, b, dtype):
    return rng.standard_normal((a, b), dtype=dtype) * math.sqrt(2.0 / a)


def gemm_floor(data: Data, wl: Workload, dtype, seed: int) -> Runner:
    """Only the GEMMs of a training step, NumPy BLAS, outputs preallocated.

    Minibatches are contiguous row slices of X (views, no gather/shuffle); the
    output gradient is a fixed random array.  Per step and layer i:
    forward H_i = H_{i-1} @ W_i; backward dW_i = H_{i-1}.T @ G_i and, for
    i > 0, G_{i-1} = G_i @ W_i.T.
    """
    rng = np.random.default_rng(seed)
    sizes = wl.sizes
    Ws = [_he_init(rng, a, b, dtype) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    dWs = [np.empty_like(W) for W in Ws]
    n = data.X.shape[0]
    bufs = {}

    def get_bufs(b):
        if b not in bufs:
            acts = [np.empty((b, s), dtype) for s in sizes[1:]]
            grads = [np.empty((b, s), dtype) for s in sizes[1:-1]]
            g_out = rng.standard_normal((b, sizes[-1]), dtype=dtype) * 0.01
            bufs[b] = (acts, grads, g_out)
        return bufs[b]

    L = len(Ws)
    matmul = np.matmul

    def step(xb):
        acts, grads, g = get_bufs(xb.shape[0])
        h = xb
        for W, out in zip(Ws, acts, strict=True):
            matmul(h, W, out=out)
            h = out
        for i in range(L - 1, -1, -1):
            inp = xb if i == 0 else acts[i - 1]
            matmul(inp.T, g, out=dWs[i])
            if i > 0:
                matmul(g, Ws[i].T, out=grads[i - 1])
                g = grads[i - 1]

    X = data.X

    def epoch():
        if wl.steps:
            for _ in range(wl.steps):
                step(X)
        else:
            for sl in batches(n, wl.batch):
                step(X[sl])

    return Runner(epoch=epoch, info={"gemm_backend": "numpy"})


# ---- numpy_handwritten: course-notebook layers ----------------------------

class Affine:
    def __init__(self, W, b, need_dx=True):
        self.W, self.b = W, b
        self.need_dx = need_dx  # False for the first layer: no input grad
        self.x = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.x = x
        out = x @ self.W
        out += self.b
        return out

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T if self.need_dx else None


class ReLU:
    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x > 0
        return np.multiply(x, self.mask, out=x)   # x is a fresh temporary

    def backward(self, dout):
        return np.multiply(dout, self.mask, out=dout)


class SoftmaxCrossEntropy:
    def __init__(self):
        self.p = None
        self.t = None

    def forward(self, z, t):
        z = z - z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        self.p, self.t = z, t
        return _np_ce(z, t)

    def backward(self):
        b = self.t.shape[0]
        d = self.p.copy()
        d[np.arange(b), self.t] -= 1
        d /= b
        return d


class NumpyMLP:
    def __init__(self, sizes, dtype, rng):
        self.layers = []
        self.params = []  # (param, layer, grad attribute name)
        pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
        for i, (a, b) in enumerate(pairs):
            aff = Affine(_he_init(rng, a, b, dtype), np.zeros(b, dtype), need_dx=i > 0)
            self.layers.append(aff)
            self.params += [(aff.W, aff, "dW"), (aff.b, aff, "db")]
            if i < len(pairs) - 1:
                self.layers.append(ReLU())
        self.head = SoftmaxCrossEntropy()

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.head.forward(self.forward(x), t)

    def backward(self):
        d = self.head.backward()
        for layer in reversed(self.layers):
            d = layer.backward(d)

    def sgd_step(self, lr):
        for p, layer, g in self.params:
            p -= lr * getattr(layer, g)   # in place; lr is a Python float


def numpy_handwritten(data: Data, wl: Workload, dtype, seed: int) -> Runner:
    rng = np.random.default_rng(seed)
    net = NumpyMLP(wl.sizes, dtype, rng)
    X, y, n, lr = data.X, data.y, data.X.shape[0], wl.lr

    def epoch():
        if wl.steps:
            for _ in range(wl.steps):
                net.loss(X, y)
                net.backward()
                net.sgd_step(lr)
        else:
            perm = rng.permutation(n) if wl.shuffle else None
            for idx in batches(n, wl.batch, perm):
                net.loss(X[idx], y[idx])
                net.backward()
                net.sgd_step(lr)

    Xe, ye = _eval_subset(data)

    def loss():
        return net.loss(Xe, ye)

    return Runner(epoch=epoch, loss=loss)


# ---- torch ----------------------------------------------------------------

def _torch(threads: int):
    import torch
    torch.set_num_threads(threads)
    return torch


def torch_eager(data: Data, wl: Workload, dtype, seed: int) -> Runner:
    torch = _torch(_THREADS)
    from torch import nn
    torch.manual_seed(seed)
    tdtype = {"float32": torch.float32, "float64": torch.float64}[np.dtype(dtype).name]
    s = wl.sizes
    mods = []
    for i, (a, b) in enumerate(zip(s[:-1], s[1:], strict=True)):
        mods.append(nn.Linear(a, b))
        if i < len(s) - 2:
            mods.append(nn.ReLU())
    model = nn.Sequential(*mods).to(tdtype)
    opt = torch.optim.SGD(model.parameters(), lr=wl.lr)  # momentum=0
    lossf = nn.CrossEntropyLoss()
    X = torch.from_numpy(data.X)
    y = torch.from_numpy(data.y)
    n = X.shape[0]
    gen = torch.Generator().manual_seed(seed)

    def train_step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(xb), yb)
        loss.backward()
        opt.step()

    def epoch():
        if wl.steps:
            for _ in range(wl.steps):
                train_step(X, y)
        else:
            perm = torch.randperm(n, generator=gen) if wl.shuffle else None
            for idx in batches(n, wl.batch, perm):
                train_step(X[idx], y[idx])

    Xe, ye = (torch.from_numpy(a) for a in _eval_subset(data))

    def loss():
        with torch.no_grad():
            return float(lossf(model(Xe), ye))

    info = {"torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "torch_version": torch.__version__}
    return Runner(epoch=epoch, loss=loss, info=info)


def gemm_floor_torch(data: Data, wl: Workload, dtype, seed: int) -> Runner:
    """Same GEMMs as gemm_floor, through torch.mm(out=...) (MKL)."""
    torch = _torch(_THREADS)
    torch.manual_seed(seed)
    tdtype = {"float32": torch.float32, "float64": torch.float64}[np.dtype(dtype).name]
    sizes = wl.sizes
    Ws = [torch.randn(a, b, dtype=tdtype) * math.sqrt(2.0 / a)
          for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    dWs = [torch.empty_like(W) for W in Ws]
    X = torch.from_numpy(data.X)
    n = X.shape[0]
    bufs = {}

    def get_bufs(b):
        if b not in bufs:
            bufs[b] = ([torch.empty(b, s, dtype=tdtype) for s in sizes[1:]],
                       [torch.empty(b, s, dtype=tdtype) for s in sizes[1:-1]],
                       torch.randn(b, sizes[-1], dtype=tdtype) * 0.01)
        return bufs[b]

    L = len(Ws)
    mm = torch.mm

    def step(xb):
        acts, grads, g = get_bufs(xb.shape[0])
        h = xb
        for W, out in zip(Ws, acts, strict=True):
            mm(h, W, out=out)
            h = out
        for i in range(L - 1, -1, -1):
            inp = xb if i == 0 else acts[i - 1]
            mm(inp.t(), g, out=dWs[i])
            if i > 0:
                mm(g, Ws[i].t(), out=grads[i - 1])
                g = grads[i - 1]

    def epoch():
        with torch.no_grad():
            if wl.steps:
                for _ in range(wl.steps):
                    step(X)
            else:
                for sl in batches(n, wl.batch):
                    step(X[sl])

    return Runner(epoch=epoch, info={"gemm_backend": "torch",
                                     "torch_threads": torch.get_num_threads()})


# ---- sklearn --------------------------------------------------------------

def sklearn_mlp(data: Data, wl: Workload, dtype, seed: int) -> Runner:
    import warnings

    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, y = data.X, data.y
    # a RandomState instance (not an int): fit() re-reads random_state on every
    # call, and an int would give the same shuffle order in every epoch
    common = dict(hidden_layer_sizes=tuple(wl.sizes[1:-1]), solver="sgd",
                  learning_rate_init=wl.lr, momentum=0.0, alpha=0.0,
                  random_state=np.random.RandomState(seed))
    if wl.steps:
        # full-batch GD, exactly wl.steps iterations: no shuffle, no early stop
        clf = MLPClassifier(batch_size=X.shape[0], max_iter=wl.steps,
                            shuffle=False, tol=0.0, n_iter_no_change=10 ** 9,
                            **common)
    else:
        # one epoch per fit(); warm_start=True continues from the previous
        # epoch instead of re-initialising (the warm-up fit initialises)
        clf = MLPClassifier(batch_size=wl.batch, max_iter=1, shuffle=True,
                            warm_start=True, **common)
    iters = []

    def epoch():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        iters.append(clf.n_iter_)

    Xe, ye = _eval_subset(data)
    info = {"sklearn_version": sklearn.__version__}

    def loss():
        # what sklearn actually computed in: record after the timed epochs
        info["sklearn_internal_dtype"] = str(clf.coefs_[0].dtype)
        info["sklearn_n_iter_per_fit"] = sorted(set(iters))
        return _np_ce(clf.predict_proba(Xe), ye)

    return Runner(epoch=epoch, loss=loss, info=info)


# ---- xpnet (the project under test; needs it importable, e.g. XPNET_SRC) ----

def _xpnet(device=None):
    # a checkout to import from; default: the one this file belongs to
    src = os.environ.get("XPNET_SRC") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if src and src not in sys.path:
        sys.path.insert(0, src)
    import xpnet
    xpnet.use(device or os.environ.get("XPNET_BENCH_DEVICE", "cpu"))
    return xpnet


def _xpnet_model(xn, sizes):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(xn.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(xn.nn.ReLU())
    return xn.nn.Sequential(*layers)


def xpnet_loop(data: Data, wl: Workload, dtype, seed: int) -> Runner:
    """xpnet layers driven by a hand-written loop (forward, backward, SGD step)."""
    xn = _xpnet()
    xn.seed(seed)
    dt = np.dtype(dtype).name
    model = _xpnet_model(xn, wl.sizes)
    if hasattr(model, "to"):
        try:
            model.to(dtype=dt)
        except TypeError:
            pass
    lossf = xn.losses.SoftmaxCrossEntropy()
    opt = xn.optim.SGD(model.parameters(), lr=wl.lr)
    X = xn.asarray(data.X, dtype=dt)
    y = xn.asarray(data.y)
    n = data.X.shape[0]
    rng = np.random.default_rng(seed)

    def step(xb, yb):
        out = model.forward(xb)
        lossf.forward(out, yb)
        model.zero_grad()
        model.backward(lossf.backward())
        opt.step()

    def epoch():
        if wl.steps:
            for _ in range(wl.steps):
                step(X, y)
        else:
            perm = xn.asarray(rng.permutation(n)) if wl.shuffle else None
            for idx in batches(n, wl.batch, perm):
                xb = X[idx] if isinstance(idx, slice) else xn.take(X, idx) if hasattr(xn, "take") else X[idx]
                yb = y[idx] if isinstance(idx, slice) else xn.take(y, idx) if hasattr(xn, "take") else y[idx]
                step(xb, yb)

    Xe, ye = _eval_subset(data)

    def loss():
        return float(lossf.forward(model.forward(xn.asarray(Xe, dtype=dt)), xn.asarray(ye)))

    return Runner(epoch=epoch, loss=loss, info={"xpnet": getattr(xn, "__version__", "?")})


def xpnet_fit(data: Data, wl: Workload, dtype, seed: int, device=None, compile="auto") -> Runner:
    """xpnet's public fit(): one call per measured epoch (compiled step, the default)."""
    xn = _xpnet(device)
    xn.seed(seed)
    dt = np.dtype(dtype).name
    model = _xpnet_model(xn, wl.sizes).to(dtype=dt)
    lossf = xn.losses.SoftmaxCrossEntropy()
    opt = xn.optim.SGD(model.parameters(), lr=wl.lr)
    # on the device once, as a user who calls fit per epoch would do
    X, y = xn.asarray(data.X, dtype=dt), xn.asarray(data.y)

    def epoch():
        if wl.steps:
            h = xn.fit(model, lossf, X, y, optimizer=opt, epochs=wl.steps, batch_size=None,
                       shuffle=False, progress=False, compile=compile)
        else:
            h = xn.fit(model, lossf, X, y, optimizer=opt, epochs=1, batch_size=wl.batch,
                       shuffle=wl.shuffle, progress=False, compile=compile)
        info["compile_strategy"] = h.params.get("compile")
        info["compile_seconds"] = info.get("compile_seconds", 0.0) + h.params.get("compile_seconds", 0.0)

    Xe, ye = _eval_subset(data)

    def loss():
        return float(lossf.forward(model.forward(xn.asarray(Xe, dtype=dt)), xn.asarray(ye)))

    info = {"xpnet": getattr(xn, "__version__", "?")}
    return Runner(epoch=epoch, loss=loss, info=info)


def xpnet_fit_eager(data: Data, wl: Workload, dtype, seed: int) -> Runner:
    """xpnet's fit(compile=False): the eager op-by-op reference step."""
    return xpnet_fit(data, wl, dtype, seed, compile=False)


def xpnet_fit_jax(data: Data, wl: Workload, dtype, seed: int) -> Runner:
    """xpnet's public fit() on the JAX backend (same layer code)."""
    return xpnet_fit(data, wl, dtype, seed, device="jax")


CONTENDERS = {
    "xpnet_loop": xpnet_loop,
    "xpnet_fit": xpnet_fit,
    "xpnet_fit_eager": xpnet_fit_eager,
    "xpnet_fit_jax": xpnet_fit_jax,
    "gemm_floor": gemm_floor,
    "numpy_handwritten": numpy_handwritten,
    "torch_eager": torch_eager,
    "sklearn_mlp": sklearn_mlp,
    "gemm_floor_torch": gemm_floor_torch,
}
DEFAULT_SUITE = ["gemm_floor", "numpy_handwritten", "torch_eager", "sklearn_mlp"]
_THREADS = os.cpu_count() or 1


# --------------------------------------------------------------------------
# single run (one contender, this process)
# --------------------------------------------------------------------------

def _blas_info():
    try:
        from threadpoolctl import threadpool_info
        return [{k: d.get(k) for k in ("internal_api", "version", "num_threads", "prefix")}
                for d in threadpool_info()]
    except (ImportError, OSError, RuntimeError) as e:  # threadpoolctl is optional
        return repr(e)


def _steal_ticks():
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[8])
    except (OSError, IndexError, ValueError):
        return 0


def _rss_mib_now():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def cmd_run(args) -> dict:
    import resource
    wl = WORKLOADS[args.workload]
    dtype = np.dtype(args.dtype).type
    rss_bare = _rss_mib_now()  # interpreter + numpy (+ this harness), no data yet
    data = make_data(wl, dtype, args.seed)
    rss_data = _rss_mib_now()
    n = data.X.shape[0]
    runner = CONTENDERS[args.contender](data, wl, dtype, args.seed)
    for _ in range(args.warmup):
        runner.epoch()
    times, cpus, steal = [], [], 0
    for _ in range(args.epochs):
        s0, c0 = _steal_ticks(), os.times()
        t0 = time.perf_counter()
        runner.epoch()
        times.append(time.perf_counter() - t0)
        c1 = os.times()
        cpus.append(c1.user - c0.user + c1.system - c0.system)
        steal += _steal_ticks() - s0
    final_loss = runner.loss() if runner.loss else None
    fl = flops_per_epoch(wl, n)
    med = statistics.median(times)
    out = {
        "contender": args.contender,
        "workload": wl.name,
        "dtype": args.dtype,
        "seconds_per_epoch": med,
        "epoch_unit": wl.epoch_unit,
        "times": times,
        # process CPU seconds (user+sys, all threads) / wall seconds: ~1 means
        # one busy core, ~2 both cores (busy-waiting BLAS threads count too)
        "cpu_per_wall": statistics.median(c / t for c, t in zip(cpus, times, strict=True)),
        "steal_ticks": steal,   # hypervisor steal on the whole machine, 1/100 s
        "warmup": args.warmup,
        "gemm_flops_per_epoch": fl,
        "gflops_per_s": fl / med / 1e9,
        "threads": _THREADS,
        "final_loss": final_loss,
        "chance_loss": math.log(10),
        "rss_bare_numpy_mib": rss_bare,
        "rss_after_data_mib": rss_data,
        "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "data_mib": data.X.nbytes / 2 ** 20,
        "numpy_version": np.__version__,
        "blas": _blas_info(),
        "python": platform.python_version(),
    }
    out.update(runner.info)
    return out


# --------------------------------------------------------------------------
# interleaved suite (one child process per contender and round)
# --------------------------------------------------------------------------

def _child(contender, workload, dtype, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "run",
           "--contender", contender, "--workload", workload, "--dtype", dtype,
           "--warmup", str(args.warmup), "--epochs", str(args.epochs),
           "--threads", str(args.threads), "--seed", str(args.seed)]
    # the child reports its own peak RSS (getrusage RUSAGE_SELF ru_maxrss)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out_b, err_b = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err_b.decode()}")
    line = [ln for ln in out_b.decode().splitlines() if ln.startswith("{")][-1]
    return json.loads(line)


def _ratio_stats(rounds, who, ref):
    r = [a[who]["seconds_per_epoch"] / a[ref]["seconds_per_epoch"]
         for a in rounds if who in a and ref in a]
    return statistics.median(r) if r else None


def cmd_suite(args):
    contenders = args.contenders.split(",")
    out_f = open(args.out, "a") if args.out else None

    def emit(rec):
        line = json.dumps(rec)
        print(line, flush=True)
        if out_f:
            out_f.write(line + "\n")
            out_f.flush()

    for workload in args.workloads.split(","):
        for dtype in args.dtypes.split(","):
            rounds = []
            for r in range(args.rounds):
                k = r % len(contenders)
                order = contenders[k:] + contenders[:k]
                res = {}
                for c in order:
                    rec = _child(c, workload, dtype, args)
                    rec.update(kind="epoch_times", round=r, order=order)
                    res[c] = rec
                    print(f"# {workload} {dtype} round {r} {c}: "
                          f"{' '.join(f'{t:.3f}' for t in rec['times'])} s, "
                          f"rss {rec['max_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
                    if out_f:
                        out_f.write(json.dumps(rec) + "\n")
                rounds.append(res)
            for c in contenders:
                recs = [a[c] for a in rounds]
                times = [t for rec in recs for t in rec["times"]]
                med = statistics.median(times)
                fl = recs[0]["gemm_flops_per_epoch"]
                agg = {
                    "kind": "summary",
                    "contender": c, "workload": workload, "dtype": dtype,
                    "seconds_per_epoch": med,
                    "epoch_unit": recs[0]["epoch_unit"],
                    "min": min(times), "max": max(times), "n_epochs": len(times),
                    "rounds": args.rounds, "warmup_per_round": args.warmup,
                    "gemm_flops_per_epoch": fl,
                    "gflops_per_s": fl / med / 1e9,
                    # median over rounds of the per-round (paired) ratio of
                    # round medians
                    "ratio_to_gemm_floor": _ratio_stats(rounds, c, "gemm_floor"),
                    "ratio_to_numpy_handwritten": _ratio_stats(rounds, c, "numpy_handwritten"),
                    "cpu_per_wall": statistics.median(rec["cpu_per_wall"] for rec in recs),
                    "steal_ticks": sum(rec["steal_ticks"] for rec in recs),
                    "max_rss_mib": statistics.median(rec["max_rss_mib"] for rec in recs),
                    "data_mib": recs[0]["data_mib"],
                    "threads": args.threads,
                    "final_loss": recs[-1]["final_loss"],
                }
                agg["rss_bare_numpy_mib"] = statistics.median(rec["rss_bare_numpy_mib"] for rec in recs)
                for key in ("sklearn_internal_dtype", "sklearn_n_iter_per_fit",
                            "torch_threads", "compile_strategy", "compile_seconds"):
                    if key in recs[-1]:
                        agg[key] = recs[-1][key]
                emit(agg)
    if out_f:
        out_f.close()


# --------------------------------------------------------------------------
# machine context: large square GEMM throughput
# --------------------------------------------------------------------------

def cmd_peak(args):
    """GFLOP/s of an n x n x n matmul (NumPy's BLAS, and torch.mm if present):
    what the BLAS reaches on shapes far friendlier than an MLP's."""
    n = args.n
    backends = [("numpy", None)]
    try:
        torch = _torch(_THREADS)
        backends.append(("torch", torch))
    except ImportError:
        pass
    for dt in ("float32", "float64"):
        for name, torch in backends:
            rng = np.random.default_rng(0)
            a = rng.random((n, n), dtype=np.dtype(dt).type)
            b = rng.random((n, n), dtype=np.dtype(dt).type)
            c = np.empty_like(a)
            if torch is None:
                f = lambda a=a, b=b, c=c: np.matmul(a, b, out=c)  # noqa: E731
            else:
                ta, tb, tc = (torch.from_numpy(x) for x in (a, b, c))
                f = lambda ta=ta, tb=tb, tc=tc, mm=torch.mm: mm(ta, tb, out=tc)  # noqa: E731
            f()
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                f()
                times.append(time.perf_counter() - t0)
            med = statistics.median(times)
            print(json.dumps({"kind": "peak", "backend": name, "dtype": dt, "n": n,
                              "threads": _THREADS, "seconds": med,
                              "gflops_per_s": 2 * n ** 3 / med / 1e9}), flush=True)


# --------------------------------------------------------------------------
# markdown table
# --------------------------------------------------------------------------

def table_lines(rows):
    """Markdown table of the summary rows of a suite run."""
    rows = [r for r in rows if r.get("kind") == "summary"]

    def fmt(x, spec):
        return "–" if x is None else format(x, spec)

    lines = ["| workload | dtype | contender | median s/epoch | min–max s | GFLOP/s "
             "| × gemm_floor | × numpy_handwritten | CPU/wall | max RSS MiB "
             "| RSS − bare numpy − data MiB | compile s | final loss |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        bare = r.get("rss_bare_numpy_mib")
        extra = None if bare is None else r["max_rss_mib"] - bare - r["data_mib"]
        lines.append(
            f"| {r['workload']} | {r['dtype']} | {r['contender']} "
            f"| {r['seconds_per_epoch']:.3f} | {r['min']:.3f}–{r['max']:.3f} "
            f"| {r['gflops_per_s']:.1f} | {fmt(r['ratio_to_gemm_floor'], '.2f')} "
            f"| {fmt(r['ratio_to_numpy_handwritten'], '.2f')} "
            f"| {fmt(r.get('cpu_per_wall'), '.2f')} "
            f"| {r['max_rss_mib']:.0f} | {fmt(extra, '.0f')} "
            f"| {fmt(r.get('compile_seconds'), '.2f')} | {fmt(r['final_loss'], '.3f')} |")
    return lines


def cmd_table(args):
    rows = []
    for path in args.files:
        with open(path) as f:
            rows += [json.loads(ln) for ln in f if ln.strip()]
    print("\n".join(table_lines(rows)))


def _machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(),
            "python": platform.python_version(), "numpy": np.__version__}


def cmd_all(args):
    """Every workload, dtype and contender; results/<name>.jsonl and .md."""
    contenders = ["gemm_floor", "numpy_handwritten", "xpnet_fit", "xpnet_fit_eager", "xpnet_fit_jax",
                  "torch_eager", "sklearn_mlp"]
    import importlib.util
    contenders = [c for c in contenders
                  if not (c == "torch_eager" and importlib.util.find_spec("torch") is None)
                  and not (c == "xpnet_fit_jax" and importlib.util.find_spec("jax") is None)]
    results = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(results, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d")
    jsonl = os.path.join(results, f"{args.name}-{stamp}.jsonl")
    if os.path.exists(jsonl):
        os.remove(jsonl)
    load_before, started = os.getloadavg(), time.time()
    suite = argparse.Namespace(contenders=",".join(contenders), workloads="mnist,digits",
                               dtypes="float32,float64", rounds=args.rounds, epochs=args.epochs,
                               warmup=args.warmup, threads=args.threads, seed=args.seed, out=jsonl)
    cmd_suite(suite)
    load_after, minutes = os.getloadavg(), (time.time() - started) / 60
    with open(jsonl) as f:
        rows = [json.loads(ln) for ln in f if ln.strip()]
    m = _machine()
    header = [
        f"# anchors.py all: {stamp}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['machine']}; Python {m['python']}, NumPy {m['numpy']}; "
        f"BLAS/OpenMP/torch/XLA threads: {args.threads}.",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in load_after)}. {args.note}",
        f"{args.rounds} rounds × {args.epochs} timed epochs (after {args.warmup} warm-up) per contender, "
        f"one child process per contender and round, order rotated each round; ratios are medians "
        f"of per-round paired ratios. Run took {minutes:.1f} min.",
        "",
    ]
    md = os.path.join(results, f"{args.name}-{stamp}.md")
    with open(md, "w") as f:
        f.write("\n".join(header + table_lines(rows)) + "\n")
    print(f"wrote {jsonl} and {md}", file=sys.stderr)


# --------------------------------------------------------------------------

def main(argv=None):
    global np, _THREADS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--warmup", type=int, default=1, help="untimed epochs first")
        p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                       help="BLAS/OpenMP/torch threads (default: all cores)")
        p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("run", help="one contender in this process, one JSON line")
    p.add_argument("--contender", choices=sorted(CONTENDERS), required=True)
    p.add_argument("--workload", choices=sorted(WORKLOADS), default="mnist")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs")
    common(p)

    p = sub.add_parser("suite", help="interleaved comparison, child process per run")
    p.add_argument("--contenders", default=",".join(DEFAULT_SUITE))
    p.add_argument("--workloads", default="mnist,digits")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per child")
    p.add_argument("--out", help="append JSON lines (per-round and summary) here")
    common(p)

    p = sub.add_parser("peak", help="square-GEMM GFLOP/s, for context")
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=7)
    common(p)

    p = sub.add_parser("all", help="the full comparison, written to results/NAME-DATE.{jsonl,md}")
    p.add_argument("--name", default="cpu", help="names the machine in the result files")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per child")
    p.add_argument("--note", default="", help="a sentence for the header (e.g. who else used the machine)")
    common(p)

    p = sub.add_parser("table", help="markdown table from suite output files")
    p.add_argument("files", nargs="+")

    args = ap.parse_args(argv)
    if args.cmd == "table":
        return cmd_table(args)

    _THREADS = args.threads
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)   # children inherit these too
    if args.threads == 1:   # XLA's CPU thread pool, for the JAX contender
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    import numpy
    np = numpy

    if args.cmd == "run":
        print(json.dumps(cmd_run(args)), flush=True)
    elif args.cmd == "peak":
        cmd_peak(args)
    elif args.cmd == "all":
        cmd_all(args)
    else:
        cmd_suite(args)


if __name__ == "__main__":
    main()
