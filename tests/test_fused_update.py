"""The CUDA-graph step's fused optimizer update (xpnet/_cuda_kernels.py).

Its kernels' bodies are lines valid both as CUDA C and as Python: here NumPy runs the
same lines (a stand-in for ``cupy.ElementwiseKernel`` that evaluates them in order,
writing the outputs in place) and must reproduce the optimizers' own update bit for
bit. On a GPU the ``cuda``-marked tests compare the compiled kernels with the same
reference.
"""

import sys

import numpy as np
import pytest

import xpnet
from xpnet import _compile, _cuda_kernels, losses, nn, optim

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_graph_plan import _assert_same_training, _data, _fit_like, fake_graphs  # noqa: E402, F401


def numpy_kernel(name, lines, params_in, params_out):
    """``cupy.ElementwiseKernel(params_in, params_out, body)`` for NumPy arrays: Python
    scalars for T parameters are cast to the first argument's dtype, as CuPy casts
    them; an array (0-d too) must already have it, or CuPy refuses the call ("Type is
    mismatched"). The lines run in order, and outputs are written in place."""
    names_in = [p.split()[1] for p in params_in.split(",")]
    names_out = [p.split()[1] for p in params_out.split(",")]

    def run(*args):
        assert len(args) == len(names_in) + len(names_out), (name, len(args))
        dtype = args[0].dtype
        env = {"sqrt": np.sqrt}
        for n, a in zip(names_in, args, strict=False):
            if isinstance(a, (np.ndarray, np.generic)):
                # NumPy's 0-d results are scalars; CuPy's are 0-d arrays, whose dtype counts
                assert a.dtype == dtype, f"{name}: {n} is {a.dtype}, T is {dtype}"
                env[n] = np.asarray(a)
            else:
                assert type(a) in (int, float), (n, type(a))  # what CuPy casts to T
                env[n] = np.asarray(a, dtype=dtype)
        outputs = dict(zip(names_out, args[len(names_in):], strict=True))
        env.update(outputs)
        for line in lines:
            target, expr = line.split(" = ", 1)
            value = eval(expr, {}, env)  # noqa: S307 - the kernel's own lines, from _cuda_kernels
            if target in outputs:
                outputs[target][...] = value
            else:
                env[target] = value

    return run


def numpy_update(optimizer):
    _cuda_kernels.update(optimizer, numpy_kernel)


OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "sgd-wd": lambda ps: optim.SGD(ps, lr=0.1, weight_decay=1e-2),
    "sgd-momentum": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
    "sgd-nesterov-wd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda ps: optim.Adam(ps, lr=1e-2),
    "adam-wd": lambda ps: optim.Adam(ps, lr=1e-2, weight_decay=1e-3),
    "adam-eps-hat": lambda ps: optim.Adam(ps, lr=1e-2, eps=1e-3, eps_hat=True),
}


def _updates(make, dtype, fused, scalars, device="cpu", update=numpy_update):
    """Three steps of ``make``'s optimizer on one gradient per step; ``scalars``: t and
    lr bound as 0-d float64 arrays on the device, as the CUDA-graph step binds them.
    Returns host copies of the parameters and the optimizer's state."""
    xpnet.seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).to(device, dtype=dtype)
    opt = make(model.parameters())
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((8, 5)).astype(dtype), rng.integers(0, 3, 8)
    X, y = xpnet.asarray(X, dtype=dtype, device=device), xpnet.asarray(y, device=device)
    loss = losses.SoftmaxCrossEntropy()
    for _ in range(3):
        loss.forward(model.forward(X), y)
        model.backward_params(loss.backward())
        t, lr = opt.t, opt.lr
        if scalars:
            opt.t = xpnet.asarray(np.asarray(float(t)), dtype="float64", device=device)
            opt._lr = xpnet.asarray(np.asarray(lr), dtype="float64", device=device)
            assert opt.t.dtype == opt._lr.dtype == np.float64  # as the CUDA-graph step binds them
        if fused:
            for p, state in zip(opt.params, opt.state, strict=True):  # what begin() makes for a plan
                for key in opt._state_names:
                    state[key] = optim._follow(state.get(key), p.value)
            update(opt)
        else:
            opt.step()
        opt.t, opt._lr = t + 1, lr
    return ([xpnet.to_numpy(p.value) for p in model.parameters()],
            [{k: xpnet.to_numpy(v) for k, v in s.items()} for s in opt.state])


def _assert_same_updates(got, want, dtype):
    (got_p, got_s), (want_p, want_s) = got, want
    for g, w in zip(got_p, want_p, strict=True):
        assert g.dtype == w.dtype == dtype
        np.testing.assert_array_equal(g, w)
    for g, w in zip(got_s, want_s, strict=True):
        assert g.keys() == w.keys()
        for key in w:
            np.testing.assert_array_equal(g[key], w[key], err_msg=key)


@pytest.mark.parametrize("scalars", [False, True], ids=["floats", "0-d-arrays"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_the_kernel_lines_are_the_optimizers_update_bit_for_bit(name, dtype, scalars):
    _assert_same_updates(_updates(OPTIMIZERS[name], dtype, True, scalars),
                         _updates(OPTIMIZERS[name], dtype, False, scalars), dtype)


def _needs_gpu():
    if not xpnet.gpu_available():
        pytest.skip("no CUDA GPU answers an allocation here (xpnet.gpu_available() is False)")


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_the_compiled_kernels_are_the_optimizers_update_bit_for_bit(name, dtype):
    """The CUDA C, compiled by NVRTC without fused multiply-add, against CuPy's separate
    kernels of the optimizers' own update, with t and lr as device scalars."""
    _needs_gpu()
    import cupy

    fused = _cuda_kernels.make(cupy)
    _assert_same_updates(_updates(OPTIMIZERS[name], dtype, True, True, "cuda", fused),
                         _updates(OPTIMIZERS[name], dtype, False, True, "cuda"), dtype)


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["sgd-nesterov-wd", "adam-wd", "sgd"])
def test_fit_with_the_fused_update_trains_as_the_eager_step(monkeypatch, name):
    _needs_gpu()
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((100, 6)), rng.integers(0, 3, 100)
    runs = []
    for compile, fused in ((False, "0"), ("auto", "1")):
        monkeypatch.setenv("XPNET_FUSED_UPDATE", fused)
        with xpnet.using("cuda", dtype="float64"):
            xpnet.seed(0)
            model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
            history = xpnet.fit(model, "cross_entropy", X, y, optimizer=OPTIMIZERS[name](model.parameters()),
                                epochs=5, batch_size=32, seed=1, progress=False, compile=compile)
        runs.append((history, [xpnet.to_numpy(p.value) for p in model.parameters()]))
        if fused == "1":
            step = next(reversed(_compile._CACHE.values()))  # the step this fit built
            assert step.strategy == "cuda_graph" and step.capture_error is None
            assert all(plan.traced.update is not None for plan in step._plans.values())
    (h1, w1), (h2, w2) = runs
    assert h2.params["compile"] == "cuda_graph"
    for key in h1.history:
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-10, err_msg=key)
    for got, want in zip(w2, w1, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_the_update_is_in_place():
    xpnet.seed(0)
    model = nn.Sequential(nn.Linear(3, 2)).to(dtype="float64")
    opt = optim.Adam(model.parameters())
    for p, state in zip(opt.params, opt.state, strict=True):
        for key in opt._state_names:
            state[key] = optim._follow(state.get(key), p.value)
    arrays = [p.value for p in opt.params] + [a for s in opt.state for a in s.values()]
    before = [a.copy() for a in arrays]
    loss = losses.MeanSquaredError()
    loss.forward(model.forward(np.ones((2, 3))), np.zeros((2, 2)))
    model.backward_params(loss.backward())
    numpy_update(opt)
    assert [p.value for p in opt.params] + [a for s in opt.state for a in s.values()] == arrays  # same objects
    assert all(not np.array_equal(a, b) for a, b in zip(arrays, before, strict=True))
    assert opt.t == 1 and opt._shared is None


def test_a_gradient_of_another_shape_gets_the_optimizers_error():
    """A kernel would broadcast a (3,) gradient over a (1, 3) parameter."""
    model = nn.Sequential(nn.Linear(2, 3))
    opt = optim.SGD(model.parameters(), lr=0.1)
    for p in opt.params:
        p.module.grads[p.name] = np.zeros(p.shape[-1:])
    with pytest.raises(xpnet.errors.ShapeError, match="the gradient of .* has shape"):
        numpy_update(opt)


def test_cuda_source_declares_the_temporary_and_ends_each_line():
    source = _cuda_kernels.cuda_source(_cuda_kernels.adam_lines(decay=True))
    assert source.splitlines() == ["T gg = g;", "gg = gg + wd * w;", "m = b1 * m + omb1 * gg;",
                                   "v = b2 * v + omb2 * (gg * gg);", "w = w - step * m / (sqrt(v) + eps);"]
    assert _cuda_kernels.OPTIONS == ("--fmad=false",)


def test_fused_update_is_opt_in_and_cupy_only(monkeypatch):
    monkeypatch.setenv("XPNET_FUSED_UPDATE", "1")
    assert xpnet.backend.fused_update(xpnet.backend.resolve_device("cpu")) is None
    monkeypatch.delenv("XPNET_FUSED_UPDATE")
    cuda = type("Cuda", (), {"backend": "cupy"})()
    assert xpnet.backend.fused_update(cuda) is None


@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_the_plan_with_the_fused_update_trains_as_the_eager_step(fake_graphs, monkeypatch, opt_name):  # noqa: F811
    """The fused update inside the CUDA-graph plan (the fake CuPy of test_graph_plan,
    the NumPy stand-in for the kernels): no parameter or state array is copied back."""
    monkeypatch.setattr(xpnet.backend, "fused_update", lambda device: numpy_update)
    copies = []
    store = _compile._CudaGraphPlan._store

    def counting_store(self, params, states):
        copies.append(sum(v is not s for v, s in zip(params, self.params, strict=True))
                      + sum(values[k] is not static[k] for values, static in zip(states, self.states, strict=True)
                            for k in static))
        store(self, params, states)

    monkeypatch.setattr(_compile._CudaGraphPlan, "_store", counting_store)
    X, y = _data(40)
    eager = _fit_like(False, opt_name, X, y, 16, 3)
    compiled = _fit_like(True, opt_name, X, y, 16, 3)
    _assert_same_training(eager, compiled)
    plans = list(compiled[0]._plans.values())
    assert all(p.traced.update is numpy_update for p in plans)
    # every step (each plan's warm-up and capture, each replay) copies nothing back;
    # only the restore after each warm-up copies saved values in
    launches = sum(g.launches for g in fake_graphs)
    assert launches == 9 and copies.count(0) == launches + 2 * len(plans)
    assert len(copies) - copies.count(0) == len(plans)
