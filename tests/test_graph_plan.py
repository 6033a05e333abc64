"""The CUDA-graph plan's bookkeeping, on the CPU: a stand-in for CuPy whose "graph" replays
the captured body in Python, and checks on every launch that the arrays the real graph
would have baked in (parameters, optimizer state, inputs) are still the plan's.

What this covers is the plan's logic around the capture: static buffers, rebinding after
``begin`` (a second ``fit``) and ``load_state_dict``, float64 lr and t, accumulators,
dropout masks in step with the eager path, the state after a failed capture. Whether CuPy
and the driver capture the body is for the ``cuda``-marked tests on a GPU.
"""

import contextlib
import sys
import types

import numpy as np
import pytest

import xpnet
from xpnet import _compile, losses, nn, optim


class FakeDevice:
    """``cupy_array.device``: a context manager that makes the device current."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __str__(self):
        return "cpu"


class FakeArray(np.ndarray):
    """A NumPy array with the two CuPy methods the plan uses."""

    @property
    def device(self):
        return FakeDevice()

    @property
    def data(self):
        """CuPy's memory pointer: where the first element is."""
        return types.SimpleNamespace(ptr=self.__array_interface__["data"][0])

    def set(self, host):
        if host.shape != self.shape or host.dtype != self.dtype:
            raise ValueError(f"set: {host.shape} {host.dtype} into {self.shape} {self.dtype}")
        self[...] = host

    def fill(self, value):
        if not REPLAYING:
            HOST_WRITES.append(self)
        super().fill(value)

    def __setitem__(self, key, value):
        if not REPLAYING:
            HOST_WRITES.append(self)
        super().__setitem__(key, value)


#: every write into a FakeArray outside a replay, in order: the work a step costs the
#: host besides the launch (on a GPU, a kernel launch each)
HOST_WRITES = []
REPLAYING = False


def _fake(a):
    return np.asarray(a).view(FakeArray)


class FakeGraph:
    """Replays the captured body in Python. The real graph holds the addresses of the
    arrays it was captured on: each launch checks that they are still the plan's."""

    def __init__(self, plan, body, inputs):
        self.plan, self.body, self.inputs = plan, body, inputs
        self.baked = self._arrays()
        self.launches = 0

    def _arrays(self):
        plan = self.plan
        inputs = [id(getattr(plan, name)) for name in self.inputs]
        return ([id(a) for a in plan.params], [{k: id(v) for k, v in s.items()} for s in plan.states],
                inputs, [id(m) for m in plan.masks], id(plan.lr), id(plan.t), [id(s) for s in plan.sums])

    def launch(self, stream=None):
        plan = self.plan
        assert self._arrays() == self.baked, "an array the graph was captured on was replaced"
        assert plan.t.dtype == plan.lr.dtype == np.float64
        opt = plan.step.optimizer
        t, lr = opt.t, opt._lr  # a replay runs no Python: the optimizer's own values stay
        global REPLAYING
        REPLAYING = True
        try:
            with _compile._unvalidated(plan.step.loss):
                self.body()
        finally:
            REPLAYING = False
        opt.t, opt._lr = t, lr
        _compile._drop_grads_and_caches(plan.step)
        self.launches += 1


class FakeStream:
    def __init__(self, non_blocking=False):
        self.capturing = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self):
        assert not self.capturing
        self.capturing = True

    def end_capture(self):
        assert self.capturing
        self.capturing = False
        return "graph"  # replaced by FakeGraph(plan) once the plan exists (see _capture below)

    def synchronize(self):
        assert not self.capturing, "a capturing stream cannot be synchronized"

    def wait_event(self, event):
        pass

    def record(self):
        return object()


def _fake_cupy():
    cupy = types.ModuleType("cupy")
    cupy.ndarray = type("ndarray", (), {})  # array-api-compat's is_cupy_array asks; no array is one
    cupy.empty_like = lambda a: _fake(np.empty_like(a))
    cupy.empty = lambda shape, dtype: _fake(np.empty(shape, dtype))
    cupy.zeros = lambda shape, dtype: _fake(np.zeros(shape, dtype))
    current = FakeStream()
    cupy.cuda = types.SimpleNamespace(
        MemoryPool=lambda allocator=None: types.SimpleNamespace(malloc=None, set_limit=lambda size: None),
        Stream=FakeStream,
        get_current_stream=lambda: current,
        using_allocator=lambda malloc: contextlib.nullcontext(),
    )
    return cupy


@pytest.fixture
def fake_graphs(monkeypatch):
    """CompiledStep(strategy="cuda_graph") on NumPy arrays, with the fake CuPy."""
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    capture = _compile._CudaGraphPlan._capture
    graphs = []

    def fake_capture(self, body, load):
        def captured_or_run():
            if not self.stream.capturing:
                return body()
            # NumPy runs what a capturing stream would only record: undo its effects
            before = ([a.copy() for a in self.params], [{k: v.copy() for k, v in s.items()} for s in self.states],
                      [a.copy() for a in self.sums], self.value.copy(), self.t.copy())
            body()
            for statics, copies in zip((self.params, self.sums), (before[0], before[2]), strict=True):
                for static, copy in zip(statics, copies, strict=True):
                    static[...] = copy
            for static, copy in zip(self.states, before[1], strict=True):
                for key in static:
                    static[key][...] = copy[key]
            self.value[...] = before[3]
            self.t[...] = before[4]

        capture(self, captured_or_run, load)
        # the first graph (captured while self.graph is still None, on its new inputs)
        # reads x and y; a graph on a data set reads X and y through its body
        first = self.graph is None and self.x is not None
        graphs.append(FakeGraph(self, body, ("x", "y") if first else ()))
        return graphs[-1]

    monkeypatch.setattr(_compile._CudaGraphPlan, "_capture", fake_capture)
    return graphs


def _setup(opt_name, dropout=0.0, dtype="float64"):
    xpnet.seed(0)
    layers = [nn.Linear(6, 8), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(8, 3)]
    model = nn.Sequential(*layers).to(dtype=dtype)
    if opt_name == "adam":
        opt = optim.Adam(model.parameters(), lr=1e-2)
    else:
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt


def _batches(n_steps, n=16, dtype="float64"):
    rng = np.random.default_rng(3)
    return [(rng.standard_normal((n, 6)).astype(dtype), rng.integers(0, 3, n)) for _ in range(n_steps)]


def _make_step(compiled, opt_name, dropout=0.0, dtype="float64", metric=xpnet.metrics.correct_count):
    """(step, model, optimizer, wrap): the CUDA-graph step over the fake CuPy, or the
    eager reference; ``wrap`` makes an array of the kind the step takes."""
    model, opt = _setup(opt_name, dropout, dtype)
    loss = losses.SoftmaxCrossEntropy()
    metrics = [("accuracy", metric)]
    if compiled:
        step = _compile.CompiledStep(model, loss, opt, strategy="cuda_graph", layers=list(model.layers),
                                     metrics=metrics)
        return step, model, opt, _fake
    return _compile.EagerStep(model, loss, opt, metrics=metrics), model, opt, np.asarray


def _steps(compiled, opt_name, batches, dropout=0.0, between=None, metric=xpnet.metrics.correct_count):
    """Train over ``batches``; ``between(step, model, opt)`` runs after the first half."""
    step, model, opt, wrap = _make_step(compiled, opt_name, dropout, batches[0][0].dtype.name, metric)
    xpnet.seed(1)  # the dropout masks' draws
    step.begin()
    sums_all, values = [], []
    for i, (xb, yb) in enumerate(batches):
        if between is not None and i == len(batches) // 2:
            between(step, model, opt)
        sums = [np.zeros((), xb.dtype), np.zeros((), xb.dtype)]
        value, sums = step._run(wrap(xb), wrap(yb), sums)
        values.append(float(value))
        sums_all.append([float(s) for s in sums])
    return model, opt, values, sums_all


@pytest.mark.parametrize("opt_name, dropout, dtype", [("adam", 0.0, "float64"), ("sgd", 0.0, "float64"),
                                                     ("sgd", 0.3, "float64"), ("adam", 0.0, "float32")])
def test_the_replayed_plan_trains_as_the_eager_step(fake_graphs, opt_name, dropout, dtype):
    batches = _batches(6, dtype=dtype)
    rtol = 1e-12 if dtype == "float64" else 1e-5
    m1, o1, v1, s1 = _steps(False, opt_name, batches, dropout)
    m2, o2, v2, s2 = _steps(True, opt_name, batches, dropout)
    assert len(fake_graphs) == 1 and fake_graphs[0].launches == 6
    np.testing.assert_allclose(v2, v1, rtol=rtol)
    np.testing.assert_allclose(s2, s1, rtol=rtol)
    for key, value in m1.state_dict().items():
        assert m2.state_dict()[key].dtype == dtype, key
        np.testing.assert_allclose(np.asarray(m2.state_dict()[key]), value, rtol=rtol, err_msg=key)
    assert o2.t == o1.t == 6 and type(o2.t) is int and type(o2.lr) is float
    assert all(p.grad is None for p in m2.parameters())  # not graph memory a replay overwrites
    for a, b in zip(o1.state, o2.state, strict=True):
        for key in a:
            np.testing.assert_allclose(np.asarray(b[key]), a[key], rtol=rtol, err_msg=key)


@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_a_second_fit_and_load_state_dict_reach_the_graphs_arrays(fake_graphs, opt_name):
    """A second fit calls begin(), which replaces the parameters and the optimizer's
    state arrays; load_state_dict replaces parameters. The graph keeps its own arrays
    (FakeGraph checks) and must train from the new values."""
    batches = _batches(8)
    snapshot = {}

    def between(step, model, opt):
        step.begin()  # what a second fit does
        if not snapshot:
            snapshot.update({k: np.asarray(v).copy() for k, v in model.state_dict().items()})
        model.load_state_dict({k: v * 0.5 for k, v in snapshot.items()})
        # new optimizer state arrays with other values, as loading an optimizer checkpoint
        opt.state = [{k: v * 0.25 for k, v in state.items()} for state in opt.state]

    _, o1, v1, _ = _steps(False, opt_name, batches, between=between)
    snapshot.clear()
    m2, o2, v2, _ = _steps(True, opt_name, batches, between=between)
    np.testing.assert_allclose(v2, v1, rtol=1e-12)
    for a, b in zip(o1.state, o2.state, strict=True):
        for key in a:
            np.testing.assert_allclose(np.asarray(b[key]), a[key], rtol=1e-12, err_msg=key)


@pytest.mark.parametrize("where", ["warm-up", "capture"])
def test_a_failed_capture_leaves_the_parameters_and_trains_eagerly(fake_graphs, monkeypatch, where):
    """The step falls back to eager, from the parameters it had: the warm-up updates
    them before they are put back, and may fail after the update (here: a metric that
    fails once, as an operation CuPy refuses during capture would)."""
    unsupported = "calling cuBLAS API during stream capture is currently unsupported"
    calls = []

    def fails_once(y, out, threshold):
        calls.append(1)
        if len(calls) == 1:
            raise NotImplementedError(unsupported)
        return xpnet.metrics.correct_count(y, out, threshold)

    if where == "capture":
        def broken_begin(self):
            raise NotImplementedError(unsupported)

        monkeypatch.setattr(FakeStream, "begin_capture", broken_begin)
    batches = _batches(4)
    m1, _, v1, s1 = _steps(False, "adam", batches)
    with pytest.warns(RuntimeWarning, match="CUDA graph capture failed .*NotImplementedError"):
        m2, _, v2, s2 = _steps(True, "adam", batches, metric=fails_once if where == "warm-up" else
                               xpnet.metrics.correct_count)
    assert not fake_graphs
    np.testing.assert_allclose(v2, v1, rtol=1e-12)
    np.testing.assert_allclose(s2, s1, rtol=1e-12)
    for key, value in m1.state_dict().items():
        np.testing.assert_allclose(np.asarray(m2.state_dict()[key]), value, rtol=1e-12, err_msg=key)


# ------------------------------------------------------ fit's loop: run_at, sums kept on the device
def _fit_like(compiled, opt_name, X, y, batch, epochs, between=None):
    """fit's inner loop: a fresh permutation each epoch, ``accumulate_at`` on device
    index arrays, sums started from zeros each epoch and read after it. ``between(step,
    model, opt, epoch)`` runs before each epoch after the first."""
    step, model, opt, wrap = _make_step(compiled, opt_name, dtype=X.dtype.name)
    X, y = wrap(X), wrap(y)
    rng = np.random.default_rng(5)
    step.begin()
    epoch_sums, handed_out = [], []
    for epoch in range(epochs):
        if between is not None and epoch:
            between(step, model, opt, epoch)
        sums = [np.zeros((), X.dtype), np.zeros((), X.dtype)]
        perm = wrap(rng.permutation(len(X)))
        batches = [None] if batch is None else [perm[i:i + batch] for i in range(0, len(X), batch)]
        for idx in batches:
            sums, _ = step.accumulate_at(X, y, idx, sums)
        epoch_sums.append([float(s) for s in sums])
        handed_out.append(sums)
    return step, model, opt, epoch_sums, handed_out


def _assert_same_training(eager, compiled, rtol=1e-12):
    (_, m1, o1, s1, _), (_, m2, o2, s2, _) = eager, compiled
    np.testing.assert_allclose(s2, s1, rtol=rtol)
    for key, value in m1.state_dict().items():
        np.testing.assert_allclose(np.asarray(m2.state_dict()[key]), value, rtol=rtol, err_msg=key)
    assert o2.t == o1.t and type(o2.t) is int


def _data(n, seed=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)), rng.integers(0, 3, n)


@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_fit_gathers_each_batch_inside_a_graph_captured_on_the_data_set(fake_graphs, opt_name):
    """40 samples in batches of 16: two batch shapes, so two plans, each with the graph
    its first step captured and the graph on the data set that fit replays; the
    epoch's sums pass from one plan to the other and stay on the device."""
    X, y = _data(40)
    eager = _fit_like(False, opt_name, X, y, 16, 3)
    compiled = _fit_like(True, opt_name, X, y, 16, 3)
    _assert_same_training(eager, compiled)
    plans = list(compiled[0]._plans.values())
    assert len(plans) == 2 and all(len(p.on_data) == 1 for p in plans)
    assert all(p.graph is None and p.x is None for p in plans)  # fit never copies a batch in
    assert sorted(g.launches for g in fake_graphs) == [3, 6]


def test_full_batch_training_reads_the_data_set_in_place(fake_graphs):
    X, y = _data(24)
    eager = _fit_like(False, "adam", X, y, None, 5)
    compiled = _fit_like(True, "adam", X, y, None, 5)
    _assert_same_training(eager, compiled)
    (plan,) = compiled[0]._plans.values()
    ((key, (graph, index)),) = plan.on_data.items()
    assert index is None and key[2] is None and graph.launches == 5


def test_a_step_costs_the_host_one_write_of_the_indices(fake_graphs):
    """What the host writes besides launching: the batch's indices each step, the
    epoch's zeros into the accumulators at its first step, and lr or t only when they
    changed (a schedule moved lr; t set from outside, as loading an optimizer
    checkpoint does). The graph then trains with the new values, as eager does."""
    X, y = _data(48)
    writes = {}

    def names(step):
        (plan,) = step._plans.values()
        ((_, (_, index)),) = plan.on_data.items()
        named = {id(plan.lr): "lr", id(plan.t): "t", id(plan.sums[0]): "sum", id(plan.sums[1]): "sum",
                 id(index): "idx"}
        return [named.get(id(a), "other") for a in HOST_WRITES]

    def between(step, model, opt, epoch):
        if step.strategy == "cuda_graph":
            if epoch > 1:
                writes[epoch - 1] = names(step)
            HOST_WRITES.clear()
        if epoch == 2:
            opt.lr = opt.lr * 0.5
        if epoch == 3:
            opt.t = 1

    eager = _fit_like(False, "adam", X, y, 16, 4, between)
    compiled = _fit_like(True, "adam", X, y, 16, 4, between)
    writes[3] = names(compiled[0])
    _assert_same_training(eager, compiled)
    steps = ["sum", "sum", "idx", "idx", "idx"]
    assert writes == {1: steps, 2: ["lr", *steps], 3: ["t", *steps]}


def test_sums_handed_out_keep_their_values_when_the_next_epoch_starts(fake_graphs):
    X, y = _data(32)
    step, _, _, epoch_sums, handed_out = _fit_like(True, "sgd", X, y, 16, 3)
    (plan,) = step._plans.values()
    assert [[float(s) for s in sums] for sums in handed_out] == epoch_sums
    assert all(s is not a for sums in handed_out[:-1] for s, a in zip(sums, plan.sums, strict=True))
    assert all(s is a for s, a in zip(handed_out[-1], plan.sums, strict=True))  # the live one


def test_each_data_set_gets_its_own_graph_and_a_plan_keeps_two(fake_graphs):
    """A graph reads the data set at the address it was captured on: another set (a
    second fit on other data) needs its own capture, and the oldest is dropped."""
    sets = [_data(32, seed) for seed in (3, 4, 5)]

    def run(compiled):
        results = []
        step = model = None
        for X, y in sets:
            if step is None:
                step, model, *_, sums, _ = _fit_like(compiled, "sgd", X, y, 16, 2)
            else:
                wrap = _fake if compiled else np.asarray
                sums = [np.zeros((), X.dtype), np.zeros((), X.dtype)]
                for idx in (wrap(np.arange(16)), wrap(np.arange(16, 32))):
                    sums, _ = step.accumulate_at(wrap(X), wrap(y), idx, sums)
                sums = [[float(s) for s in sums]]
            results.append((sums, {k: np.asarray(v).copy() for k, v in model.state_dict().items()}))
        return step, results

    _, want = run(False)
    step, got = run(True)
    for (s1, p1), (s2, p2) in zip(want, got, strict=True):
        np.testing.assert_allclose(s2, s1, rtol=1e-12)
        for key, value in p1.items():
            np.testing.assert_allclose(p2[key], value, rtol=1e-12, err_msg=key)
    (plan,) = step._plans.values()
    assert [key[0] for key in plan.on_data] == [_compile._where(_fake(X)) for X, _ in sets[1:]]


def test_a_failed_capture_on_the_data_set_falls_back_to_copying_batches_in(fake_graphs, monkeypatch):
    """fit's first capture, on the data set, fails; the graph over static inputs is
    captured instead: fit goes on, gathering each batch and copying it in, and says so."""
    begin = FakeStream.begin_capture
    calls = []

    def first_fails(self):
        calls.append(1)
        if len(calls) == 1:
            raise NotImplementedError("not capturable here")
        begin(self)

    monkeypatch.setattr(FakeStream, "begin_capture", first_fails)
    X, y = _data(32)
    eager = _fit_like(False, "adam", X, y, 16, 3)
    with pytest.warns(RuntimeWarning, match="capture of the step on the data set failed .*not capturable"):
        compiled = _fit_like(True, "adam", X, y, 16, 3)
    _assert_same_training(eager, compiled)
    (plan,) = compiled[0]._plans.values()
    assert list(plan.on_data.values()) == [False] and plan.graph.launches == 6
    assert "not capturable here" in compiled[0].capture_error


def test_when_both_captures_fail_fit_trains_eagerly_with_one_warning(fake_graphs, monkeypatch):
    def fails(self):
        raise NotImplementedError("not capturable here")

    monkeypatch.setattr(FakeStream, "begin_capture", fails)
    X, y = _data(32)
    eager = _fit_like(False, "sgd", X, y, 16, 3)
    with pytest.warns(RuntimeWarning) as caught:
        compiled = _fit_like(True, "sgd", X, y, 16, 3)
    assert [str(w.message) for w in caught] == [
        "CUDA graph capture failed (NotImplementedError: not capturable here); this batch shape trains with the "
        "eager step"]
    _assert_same_training(eager, compiled)
    (plan,) = compiled[0]._plans.values()
    assert plan.graph is False and list(plan.on_data.values()) == [False] and not fake_graphs


def test_weights_loaded_before_a_new_data_set_are_the_ones_it_trains(fake_graphs):
    """load_state_dict between steps, then the first step on another data set: its
    capture warms up on the loaded weights, and keeps them."""
    (X1, y1), (X2, y2) = _data(32, 3), _data(32, 4)
    results = []
    for compiled in (False, True):
        step, model, opt, _, _ = _fit_like(compiled, "adam", X1, y1, 16, 1)
        model.load_state_dict({k: np.asarray(v) * 0.5 for k, v in model.state_dict().items()})
        wrap = _fake if compiled else np.asarray
        sums = [np.zeros(()), np.zeros(())]
        for idx in (wrap(np.arange(16)), wrap(np.arange(16, 32))):
            sums, _ = step.accumulate_at(wrap(X2), wrap(y2), idx, sums)
        results.append(([float(s) for s in sums], {k: np.asarray(v).copy() for k, v in model.state_dict().items()}))
    (s1, w1), (s2, w2) = results
    np.testing.assert_allclose(s2, s1, rtol=1e-12)
    for key, value in w1.items():
        np.testing.assert_allclose(w2[key], value, rtol=1e-12, err_msg=key)


def test_sums_passed_back_with_an_element_replaced_are_copied_in(fake_graphs):
    """The graph goes on accumulating only in the very arrays it handed out."""
    X, y = _data(32)
    results = []
    for compiled in (False, True):
        step, *_ = _fit_like(compiled, "sgd", X, y, 16, 1)
        wrap = _fake if compiled else np.asarray
        sums, _ = step.accumulate_at(wrap(X), wrap(y), wrap(np.arange(16)), [np.zeros(()), np.zeros(())])
        sums[0] = np.zeros(())  # reset the loss sum, keep the list
        sums, _ = step.accumulate_at(wrap(X), wrap(y), wrap(np.arange(16, 32)), sums)
        results.append([float(s) for s in sums])
    np.testing.assert_allclose(results[1], results[0], rtol=1e-12)


def test_an_interrupt_after_a_launch_makes_the_host_write_t_again(fake_graphs, monkeypatch):
    """Ctrl-C between the launch and the host's count of t: the device's t is one
    ahead of opt.t, so the next launch must not trust it."""
    X, y = _data(32)
    step, model, opt, _, _ = _fit_like(True, "adam", X, y, 16, 1)
    (plan,) = step._plans.values()
    ((_, (graph, _)),) = plan.on_data.items()
    launch = FakeGraph.launch

    def interrupted(self, stream=None):
        launch(self, stream)
        raise KeyboardInterrupt

    monkeypatch.setattr(FakeGraph, "launch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        step.accumulate_at(_fake(X), _fake(y), _fake(np.arange(16)), [np.zeros(()), np.zeros(())])
    monkeypatch.setattr(FakeGraph, "launch", launch)
    HOST_WRITES.clear()
    step.accumulate_at(_fake(X), _fake(y), _fake(np.arange(16)), [np.zeros(()), np.zeros(())])
    assert any(a is plan.t for a in HOST_WRITES) and float(plan.t) == opt.t


def test_the_graph_pool_never_frees_blocks_to_retry():
    """Graphs keep using blocks their captures freed back to the pool: a failed
    allocation must raise, not make CuPy's pool free those blocks and retry."""
    class CUDARuntimeError(Exception):
        def __init__(self, status):
            self.status = status

    class OutOfMemoryError(MemoryError):
        pass

    answers = []

    def _malloc(size):
        raise CUDARuntimeError(answers.pop())

    made = {}

    class MemoryPool:
        def __init__(self, allocator=None):
            made["allocator"] = allocator

        def set_limit(self, size=None):
            made["limit"] = size

    cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(
        MemoryPool=MemoryPool,
        memory=types.SimpleNamespace(_malloc=_malloc, OutOfMemoryError=OutOfMemoryError),
        runtime=types.SimpleNamespace(CUDARuntimeError=CUDARuntimeError, errorMemoryAllocation=2)))
    _compile._graph_pool(cupy)
    assert made["limit"] == 0
    answers.append(2)
    with pytest.raises(OutOfMemoryError):  # not a CUDARuntimeError: CuPy's pool passes it on
        made["allocator"](1024)
    answers.append(700)  # any other failure is CuPy's to report
    with pytest.raises(CUDARuntimeError):
        made["allocator"](1024)


@pytest.fixture
def numpy_as_cuda(fake_graphs, monkeypatch):
    """The NumPy device given the cuda_graph strategy (over the fake CuPy), and NumPy
    arrays their address: fit and the command line run the plan end to end."""
    monkeypatch.setattr(_compile, "_where", lambda a: (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype))
    build = _compile._CudaGraphPlan.__init__
    # fit hands the plan NumPy arrays: their device is the string "cpu", not CuPy's context manager
    monkeypatch.setattr(_compile._CudaGraphPlan, "__init__",
                        lambda self, step, xb, yb: build(self, step, _fake(xb), _fake(yb)))
    return fake_graphs


@pytest.mark.parametrize("batch_size, dropout", [(None, 0.0), (24, 0.3)])
def test_fit_on_the_plan_trains_as_fit_on_the_eager_step(numpy_as_cuda, monkeypatch, batch_size, dropout):
    """The whole of fit (its permutations, index slices and sums) over the plan."""
    fake_graphs = numpy_as_cuda
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((60, 6)), rng.integers(0, 3, 60)
    runs = []
    for strategy in ("eager", "cuda_graph"):
        monkeypatch.setitem(xpnet.backend._COMPILE_STRATEGIES, "numpy", strategy)
        model, opt = _setup("adam", dropout)
        history = xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=4, batch_size=batch_size, seed=2,
                            progress=False)
        assert history.params["compile"] == strategy
        runs.append((history, model.state_dict()))
    (h1, w1), (h2, w2) = runs
    for key in h1.history:
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-12, err_msg=key)
    for key, value in w1.items():
        np.testing.assert_allclose(np.asarray(w2[key]), value, rtol=1e-12, err_msg=key)
    assert sum(g.launches for g in fake_graphs) == 4 * (1 if batch_size is None else 3)


@pytest.mark.parametrize("fails, says", [
    ((), "cuda_graph"),
    ((1,), "cuda_graph (fit copies each batch in: the capture on the data set failed (NotImplementedError: no))"),
    ((1, 2), "eager (CUDA graph capture failed (NotImplementedError: no))")])
def test_info_says_which_captures_worked(numpy_as_cuda, monkeypatch, fails, says):
    """``python -m xpnet info`` runs fit's path (a graph on the data set) and
    compile_step's (the first graph); its row names what fell back."""
    from xpnet import cli

    monkeypatch.setitem(xpnet.backend._COMPILE_STRATEGIES, "numpy", "cuda_graph")
    begin = FakeStream.begin_capture
    calls = []

    def failing(self):
        calls.append(1)
        if len(calls) in fails:
            raise NotImplementedError("no")
        begin(self)

    monkeypatch.setattr(FakeStream, "begin_capture", failing)
    assert cli._smoke(xpnet.backend.resolve_device("cpu")) == says
    assert len(calls) == 2  # one capture on the data set, one over static inputs (or the attempts)
