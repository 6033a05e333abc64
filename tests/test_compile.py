"""The compiled training step equals the eager one, on every backend CI has."""

import numpy as np
import pytest

import xpnet
from xpnet import losses, nn, optim
from xpnet.errors import LabelError, ShapeError

N_SAMPLES, BATCH = 200, 64  # 100 steps = 25 epochs of 3 full batches and one of 8


def _available(device):
    try:
        xpnet.backend.resolve_device(device)
    except Exception as exc:  # noqa: BLE001 - becomes the skip reason
        pytest.skip(f"{device} unavailable: {exc}")


def _data(classes):
    rng = np.random.default_rng(1)
    return rng.standard_normal((N_SAMPLES, 3, 4)), rng.integers(0, classes, N_SAMPLES)


def _model(activation, dropout, outputs):
    layers = [nn.Flatten(), nn.Linear(12, 16), activation()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(16, 8), activation(), nn.Identity(), nn.Linear(8, outputs))


CONFIGS = {
    "sgd-nesterov-relu-ce-dropout": (nn.ReLU, 0.3, "sgd", losses.SoftmaxCrossEntropy, 5),
    "adam-sigmoid-ce": (nn.Sigmoid, 0.0, "adam", losses.SoftmaxCrossEntropy, 5),
    "adam-tanh-bce-logits": (nn.Tanh, 0.0, "adam", lambda: losses.BinaryCrossEntropy(from_logits=True), 1),
    "sgd-relu-mse": (nn.ReLU, 0.0, "sgd", losses.MeanSquaredError, 1),
    # plain SGD: on NumPy with SciPy, the update runs inside the weight-gradient GEMM
    "sgd-plain-tanh-ce-dropout": (nn.Tanh, 0.2, "sgd-plain", losses.SoftmaxCrossEntropy, 5),
    # a large eps, so that the epsilon-hat form differs visibly from Algorithm 1
    "adam-eps-hat-relu-ce": (nn.ReLU, 0.0, "adam-eps-hat", losses.SoftmaxCrossEntropy, 5),
}


def _train(device, compile, config, epochs=25):
    activation, dropout, opt_name, make_loss, outputs = CONFIGS[config]
    X, y = _data(5 if outputs > 1 else 2)
    with xpnet.using(device, dtype="float64"):
        xpnet.seed(0)
        model = _model(activation, dropout, outputs)
        if opt_name == "sgd-plain":
            opt = optim.SGD(model.parameters(), lr=0.1)
        elif opt_name == "sgd":
            opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True)
        else:
            opt = optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3, eps=1e-3 if "hat" in opt_name else 1e-8,
                             eps_hat="hat" in opt_name)
        loss = make_loss()
        metrics = () if isinstance(loss, losses.MeanSquaredError) else None
        history = xpnet.fit(model, loss, X, y, optimizer=opt, epochs=epochs, batch_size=BATCH, seed=3,
                            progress=False, compile=compile, metrics=metrics)
    weights = {k: xpnet.to_numpy(v) for k, v in model.state_dict().items()}
    return history, weights, opt


def _assert_same_run(eager, compiled, rtol):
    (h1, w1, o1), (h2, w2, o2) = eager, compiled
    for key in h1.history:
        np.testing.assert_allclose(h2[key], h1[key], rtol=rtol, err_msg=key)
    for key in w1:
        np.testing.assert_allclose(w2[key], w1[key], rtol=rtol, atol=rtol * np.abs(w1[key]).max(), err_msg=key)
    assert o2.t == o1.t == 100
    for s1, s2 in zip(o1.state, o2.state, strict=True):
        for key in s1:
            np.testing.assert_allclose(xpnet.to_numpy(s2[key]), xpnet.to_numpy(s1[key]), rtol=rtol,
                                       atol=rtol * float(np.abs(xpnet.to_numpy(s1[key])).max()))


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_numpy_compiled_equals_eager_over_100_steps(config):
    eager, compiled = _train("cpu", False, config), _train("cpu", "auto", config)
    assert eager[0].params["compile"] == "eager" and compiled[0].params["compile"] == "numpy"
    _assert_same_run(eager, compiled, rtol=1e-12)


def test_plain_sgd_inside_the_gemm_equals_the_generic_numpy_step(monkeypatch):
    pytest.importorskip("scipy", reason="the fused SGD update uses SciPy's BLAS")
    config = "sgd-plain-tanh-ce-dropout"
    eager, fused = _train("cpu", False, config), _train("cpu", "auto", config)
    # the fused path ran: it stores no gradient arrays
    step = next(s for s in reversed(xpnet._compile._CACHE.values()) if s.optimizer is fused[2])
    assert all(p.grad is None for p in fused[2].params) and all(p.blas for p in step._plans.values())
    _assert_same_run(eager, fused, rtol=1e-12)
    monkeypatch.setattr(xpnet.backend, "host_blas", lambda dtype_name: None)  # as without SciPy
    generic = _train("cpu", "auto", config)
    assert all(p.grad is not None for p in generic[2].params)
    _assert_same_run(generic, fused, rtol=1e-12)


@pytest.mark.parametrize("config", ["sgd-nesterov-relu-ce-dropout", "adam-tanh-bce-logits"])
def test_jax_compiled_equals_eager_over_100_steps(config):
    _available("jax")
    eager, compiled = _train("jax", False, config), _train("jax", "auto", config)
    assert compiled[0].params["compile"] == "jax"
    _assert_same_run(eager, compiled, rtol=1e-10)
    # the host-drawn dropout masks make the JAX run the NumPy run too
    _assert_same_run(_train("cpu", "auto", config), compiled, rtol=1e-10)


def test_jax_gathers_unshuffled_batches_in_the_step_like_eager():
    """fit hands the JAX step host indices (here an arange, with drop_last) and the
    step gathers inside the compiled program: same run as the eager step."""
    _available("jax")
    X, y = _data(5)
    runs = []
    for compile in (False, "auto"):
        with xpnet.using("jax", dtype="float64"):
            xpnet.seed(0)
            model = _model(nn.ReLU, 0.2, 5)
            opt = optim.SGD(model.parameters(), lr=0.1)
            history = xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=3, batch_size=48, shuffle=False,
                                drop_last=True, progress=False, compile=compile)
        runs.append((history, {k: xpnet.to_numpy(v) for k, v in model.state_dict().items()}))
    assert runs[1][0].params["compile"] == "jax"
    np.testing.assert_allclose(runs[1][0]["loss"], runs[0][0]["loss"], rtol=1e-10)
    for key, value in runs[0][1].items():
        np.testing.assert_allclose(runs[1][1][key], value, rtol=1e-10, atol=1e-12, err_msg=key)


def test_strict_runs_eager_and_matches_numpy():
    _available("strict")
    config = "sgd-nesterov-relu-ce-dropout"
    strict = _train("strict", "auto", config, epochs=4)
    assert strict[0].params["compile"] == "eager"
    np.testing.assert_allclose(strict[0]["loss"], _train("cpu", "auto", config, epochs=4)[0]["loss"], rtol=1e-12)


def _two_layer(device, dtype="float64"):
    with xpnet.using(device, dtype=dtype):
        xpnet.seed(0)
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.parametrize("device", ["cpu", "jax"])
def test_compile_step_returns_a_device_scalar_and_learning_rate_changes_need_no_rebuild(device):
    _available(device)
    model, reference = _two_layer(device), _two_layer(device)
    opt, ref_opt = optim.SGD(model.parameters(), lr=0.1), optim.SGD(reference.parameters(), lr=0.1)
    step = xpnet.compile_step(model, "cross_entropy", opt)
    assert step.strategy == ("numpy" if device == "cpu" else "jax")
    dev = model.device
    rng = np.random.default_rng(0)
    X, y = dev.asarray(rng.standard_normal((16, 4))), dev.asarray(rng.integers(0, 3, 16))
    ref_loss = losses.SoftmaxCrossEntropy()
    for lr in (0.1, 0.1, 0.01, 0.5):
        opt.lr = ref_opt.lr = lr
        value = step(X, y)
        expected = ref_loss.forward(reference.forward(X), y)
        reference.backward_params(ref_loss.backward())
        ref_opt.step()
        assert value.shape == () and xpnet.device_of(value) == dev
        np.testing.assert_allclose(float(value), float(expected), rtol=1e-12)
    assert len(step._plans) == 1
    for key, value in reference.state_dict().items():
        np.testing.assert_allclose(xpnet.to_numpy(model.state_dict()[key]), xpnet.to_numpy(value), rtol=1e-12)


def test_compile_step_checks_once_when_built_and_leaves_earlier_arrays_alone():
    model = _two_layer("cpu")
    before = model.state_dict()
    snapshot = {k: v.copy() for k, v in before.items()}
    step = xpnet.compile_step(model, "cross_entropy", optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ShapeError, match=r"Linear\(4→8\) got input of shape \(5, 6\)"):
        step(np.zeros((5, 6)), np.zeros(5, dtype=np.int64))
    with pytest.raises(LabelError, match=r"labels in \[0, 7\]"):
        step(np.zeros((5, 4)), np.array([0, 1, 2, 7, 1]))
    step(np.ones((5, 4)), np.array([0, 1, 2, 2, 1]))
    for key, value in before.items():
        np.testing.assert_array_equal(value, snapshot[key])  # the step trained copies
        assert not np.array_equal(model.state_dict()[key], snapshot[key]) or key.endswith("b")


class _Scale(nn.Module):
    """A user layer with only forward and backward: no compiled kernel knows it."""

    def forward(self, x):
        return x * 2.0

    def backward(self, grad_out):
        return grad_out * 2.0


def test_user_layer_falls_back_to_eager_with_a_note(capsys):
    X, y = _data(3)
    X = X.reshape(N_SAMPLES, 12)

    def run(compile):
        xpnet.seed(0)
        model = nn.Sequential(nn.Linear(12, 6), _Scale(), nn.ReLU(), nn.Linear(6, 3))
        return xpnet.fit(model, "cross_entropy", X, y, optimizer=optim.SGD(model.parameters(), lr=0.05), epochs=2,
                         batch_size=BATCH, seed=1, compile=compile)

    auto = run("auto")
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "compile: running the eager step (_Scale has no compiled kernel); compile=False silences this note"
    )
    assert auto.params["compile"] == "eager"
    eager = run(False)
    assert "compile:" not in capsys.readouterr().out
    assert auto["loss"] == eager["loss"]
    with pytest.raises(ValueError, match="cannot compile the training step on cpu: _Scale has no compiled kernel"):
        run(True)


@pytest.mark.parametrize("device", ["cpu", "jax"])
def test_gradient_hooks_run_between_backward_and_update(device):
    _available(device)
    seen = []

    def halve(params):  # what a gradient allreduce over two equal workers does
        for p in params:
            p.module.grads[p.name] = p.grad * 0.5
        seen.append(len(params))

    X, y = np.random.default_rng(0).standard_normal((16, 4)), np.arange(16) % 3
    results = {}
    for name, hooks, lr in (("hooked", [halve], 0.2), ("plain", [], 0.1)):
        model = _two_layer(device)
        opt = optim.SGD(model.parameters(), lr=lr)
        step = xpnet._compile.train_step(model, losses.SoftmaxCrossEntropy(), opt, grad_hooks=hooks)
        dev = model.device
        for _ in range(3):
            step(dev.asarray(X), dev.asarray(y))
        results[name] = (step.strategy, model.state_dict())
    assert seen == [4, 4, 4]
    assert results["hooked"][0] == ("numpy" if device == "cpu" else "eager")
    for key, value in results["plain"][1].items():
        np.testing.assert_allclose(xpnet.to_numpy(results["hooked"][1][key]), xpnet.to_numpy(value), rtol=1e-12)


def test_compiled_step_is_reused_across_fit_calls():
    X, y = _data(5)
    model = _model(nn.ReLU, 0.0, 5)
    opt = optim.Adam(model.parameters())
    loss = losses.SoftmaxCrossEntropy()
    for _ in range(2):
        xpnet.fit(model, loss, X, y, optimizer=opt, epochs=1, batch_size=BATCH, progress=False)
    steps = [s for s in xpnet._compile._CACHE.values() if s.model is model]
    assert len(steps) == 1 and len(steps[0]._plans) == 2  # full batches and the last partial one
    opt.weight_decay = 1e-2  # a hyperparameter a JAX trace would freeze: a new step
    xpnet.fit(model, loss, X, y, optimizer=opt, epochs=1, batch_size=BATCH, progress=False)
    assert len([s for s in xpnet._compile._CACHE.values() if s.model is model]) == 2


@pytest.mark.parametrize("device", ["cpu", "jax"])
def test_a_loss_given_by_name_reuses_the_step_across_fit_calls(device):
    """fit builds a new loss object from "cross_entropy" on every call; the step cache
    keyed it by identity, so every call rebuilt the step: a new JAX trace and compile
    per call (0.3-0.7 s), a new CUDA-graph capture on CuPy."""
    _available(device)
    X, y = _data(5)
    with xpnet.using(device):
        model = _model(nn.ReLU, 0.0, 5)
        opt = optim.SGD(model.parameters(), lr=0.1)
        first = xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=1, batch_size=BATCH, progress=False)
        second = xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=1, batch_size=BATCH, progress=False)
    steps = [s for s in xpnet._compile._CACHE.values() if s.model is model]
    assert len(steps) == 1 and len(steps[0]._plans) == 2
    assert first.params["compile"] == second.params["compile"] == ("numpy" if device == "cpu" else "jax")
    assert second["loss"][0] < first["loss"][0]  # trained on from where the first call stopped


def test_a_users_own_loss_objects_are_never_taken_for_each_other():
    class Scaled(losses.MeanSquaredError):  # its scale is not in get_config
        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, pred, target):
            return super().forward(pred, target) * self.scale

        def backward(self):
            return super().backward() * self.scale

    X, y = _data(2)
    model = _model(nn.ReLU, 0.0, 1)
    opt = optim.SGD(model.parameters(), lr=1e-9)  # the weights barely move: both fits see the same model
    targets = y.astype(float).reshape(-1, 1)
    one = xpnet.fit(model, Scaled(1.0), X, targets, optimizer=opt, epochs=1, shuffle=False, progress=False)
    ten = xpnet.fit(model, Scaled(10.0), X, targets, optimizer=opt, epochs=1, shuffle=False, progress=False)
    assert len([s for s in xpnet._compile._CACHE.values() if s.model is model]) == 2
    np.testing.assert_allclose(ten["loss"][0], 10 * one["loss"][0], rtol=1e-5)


@pytest.mark.parametrize("opt_name", ["adam", "adam-eps-hat", "sgd-nesterov"])
def test_the_captured_body_with_float64_scalars_keeps_float32_and_equals_eager(opt_name):
    """The CUDA graph captures _TracedStep with lr and t as float64 0-d device arrays
    (float32 ones lost digits in 1 - beta2**t: Adam's steps came out ~7e-6 too small);
    NumPy 0-d arrays stand in for CuPy's here. A 0-d float64 array is not weak under
    NumPy 2's rules: the optimizer must cast its coefficients, or float32 parameters
    turn float64."""
    X, y = _data(5)
    X = X.reshape(len(X), -1)[:BATCH].astype(np.float32)
    y = y[:BATCH]
    runs = []
    for traced_run in (False, True):
        xpnet.seed(0)
        model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5))
        if opt_name.startswith("adam"):
            opt = optim.Adam(model.parameters(), lr=1e-2, eps_hat=opt_name.endswith("hat"))
        else:
            opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
        loss = losses.SoftmaxCrossEntropy()
        step = xpnet._compile.train_step(model, loss, opt, compile=True)
        traced = xpnet._compile._TracedStep(step, BATCH)
        before = {k: np.asarray(v).copy() for k, v in model.state_dict().items()}
        for _ in range(5):
            if not traced_run:
                xpnet._compile.EagerStep._run(step, X, y, None)
                continue
            t, lr = opt.t, opt.lr
            params, states, _, _ = traced([p.value for p in traced.params], [dict(s) for s in opt.state], None,
                                          np.asarray(float(t)), np.asarray(lr), X, y, [])
            opt.t, opt.lr, opt.state = t + 1, lr, states
            for p, value in zip(traced.params, params, strict=True):
                p.value = value
        runs.append({k: np.asarray(v) - before[k] for k, v in model.state_dict().items()})
    for key, eager in runs[0].items():  # the updates, not the weights: their digits are the point
        assert runs[1][key].dtype == np.float32, key
        np.testing.assert_allclose(runs[1][key], eager, rtol=1e-5, atol=1e-6 * float(np.abs(eager).max()),
                                   err_msg=key)


@pytest.mark.cuda
def test_cuda_graph_step_equals_eager():
    if not xpnet.gpu_available():
        pytest.skip("no CUDA GPU answers an allocation here (xpnet.gpu_available() is False)")
    for config in sorted(CONFIGS):
        eager, compiled = _train("cuda", False, config), _train("cuda", "auto", config)
        assert compiled[0].params["compile"] == "cuda_graph"
        _assert_same_run(eager, compiled, rtol=1e-10)


@pytest.mark.parametrize("device, opt_type", [("cpu", optim.Adam), ("cpu", optim.SGD), ("jax", optim.Adam)])
def test_parameters_the_optimizer_leaves_alone_stay_put(device, opt_type):
    _available(device)
    X, y = np.random.default_rng(0).standard_normal((16, 4)), np.arange(16) % 3
    runs = []
    for compile in (False, "auto"):
        model = _two_layer(device)
        frozen = xpnet.to_numpy(model[0].params["W"]).copy()
        opt = opt_type(model[2].parameters(), lr=0.01)  # fine-tune the last layer only
        xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=3, batch_size=8, shuffle=False,
                  progress=False, compile=compile)
        np.testing.assert_array_equal(xpnet.to_numpy(model[0].params["W"]), frozen)
        runs.append(xpnet.to_numpy(model[2].params["W"]))
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-12)


# ------------------------------------------------- after compiled training, and between fits
@pytest.mark.parametrize("device, opt", [("jax", "adam"), ("cpu", "sgd")])  # cpu + plain SGD: the fused path
def test_a_model_trained_compiled_moves_copies_and_pickles(device, opt):
    """A JAX trace left tracers in every layer's ``grads``, and the fused SGD step
    left None there: both broke ``model.to`` (half-way), ``deepcopy`` and pickling."""
    import copy
    import pickle

    from xpnet.errors import MissingGradientError

    _available(device)
    X, y = _data(5)
    with xpnet.using(device, dtype="float64"):
        xpnet.seed(0)
        model = _model(nn.ReLU, 0.3, 5)
    optimizer = optim.SGD(model.parameters(), lr=0.1) if opt == "sgd" else optim.Adam(model.parameters())
    history = xpnet.fit(model, "cross_entropy", X, y, optimizer=optimizer, epochs=1, batch_size=BATCH,
                        progress=False)
    assert history.params["compile"] == ("jax" if device == "jax" else "numpy")
    assert all(p.grad is None for p in model.parameters())  # the gradients stayed inside the step
    t = optimizer.t
    with pytest.raises(MissingGradientError, match=r"has no gradient; a compiled training step"):
        optimizer.step()
    assert optimizer.t == t == 4  # 200 samples in batches of 64; the refused step counted nothing
    expected = xpnet.to_numpy(model.predict(X))
    copied = copy.deepcopy(model)
    restored = pickle.loads(pickle.dumps(model))
    model.to("strict")
    for m in (model, copied, restored):
        np.testing.assert_allclose(xpnet.to_numpy(m.predict(X)), expected, rtol=1e-12)
    assert model.device.name == "strict"


def test_a_failed_move_leaves_the_model_where_it_was(monkeypatch):
    model = _model(nn.ReLU, 0.0, 5)
    before = {k: xpnet.to_numpy(v).copy() for k, v in model.state_dict().items()}
    calls = []
    real = xpnet.nn.module._convert

    def fails_third(value, device, dtype):
        calls.append(1)
        if len(calls) == 3:
            raise MemoryError("out of device memory")
        return real(value, device, dtype)

    monkeypatch.setattr(xpnet.nn.module, "_convert", fails_third)
    with pytest.raises(MemoryError):
        model.to("strict")
    assert model.device.name == "cpu"
    assert all(type(v) is np.ndarray for v in model.state_dict().values())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("source, target", [("cpu", "jax"), ("jax", "cpu"), ("cpu", "strict"), ("jax", "torch")])
def test_fit_after_model_to_trains_on_the_new_device(source, target):
    """The same Loss and optimizer objects across fits, as a PyTorch-style script has
    them: the step fit built for the old device must not be reused."""
    _available(source)
    _available(target)
    X, y = _data(5)

    def second_fit(model, opt, loss):
        history = xpnet.fit(model, loss, X, y, optimizer=opt, epochs=2, batch_size=BATCH, progress=False, seed=2)
        assert model.device.name.split(":")[0] == target
        return history.history["loss"], xpnet.to_numpy(model.predict(X))

    # reference: a model that starts on the target device
    with xpnet.using(target, dtype="float64"):
        xpnet.seed(0)
        model = _model(nn.ReLU, 0.0, 5)
    start = {k: xpnet.to_numpy(v).copy() for k, v in model.state_dict().items()}
    opt, loss = optim.SGD(model.parameters(), lr=0.05, momentum=0.9), losses.SoftmaxCrossEntropy()
    opt_start = opt.state_dict()
    expected = second_fit(model, opt, loss)
    # the same start, reached after a first fit on the source device and a move
    with xpnet.using(source, dtype="float64"):
        model = _model(nn.ReLU, 0.0, 5)
    opt, loss = optim.SGD(model.parameters(), lr=0.05, momentum=0.9), losses.SoftmaxCrossEntropy()
    xpnet.fit(model, loss, X, y, optimizer=opt, epochs=1, batch_size=BATCH, progress=False, seed=1)
    model.to(target)
    model.load_state_dict(start)
    opt.load_state_dict(opt_start)
    moved = second_fit(model, opt, loss)
    np.testing.assert_allclose(moved[0], expected[0], rtol=1e-10)
    np.testing.assert_allclose(moved[1], expected[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("change", ["dropout rate", "appended layer"])
def test_fit_after_changing_the_model_uses_the_changed_model(change):
    """Fine-tuning with another Dropout rate, or a layer appended, between two fits
    with the same Loss and optimizer: compiled still equals eager."""
    X, y = _data(5)
    runs = {}
    for compile in (False, "auto"):
        with xpnet.using("cpu", dtype="float64"):
            xpnet.seed(0)
            model = _model(nn.ReLU, 0.5, 5)
        opt, loss = optim.SGD(model.parameters(), lr=0.05), losses.SoftmaxCrossEntropy()
        xpnet.fit(model, loss, X, y, optimizer=opt, epochs=1, batch_size=BATCH, progress=False, seed=1,
                  compile=compile)
        if change == "dropout rate":
            model[3].p = 0.1
        else:
            model.append(nn.Tanh())
        history = xpnet.fit(model, loss, X, y, optimizer=opt, epochs=2, batch_size=BATCH, progress=False,
                            seed=2, compile=compile)
        runs[compile] = history.history["loss"], {k: xpnet.to_numpy(v) for k, v in model.state_dict().items()}
    np.testing.assert_allclose(runs["auto"][0], runs[False][0], rtol=1e-12)
    for k, v in runs[False][1].items():
        np.testing.assert_allclose(runs["auto"][1][k], v, rtol=1e-10, atol=1e-13)


class _ChangesTraining(xpnet.callbacks.Callback):
    """A user's callback that changes, after the first epoch, something a built step freezes."""

    def __init__(self, change):
        self.change = change

    def on_epoch_end(self, epoch, logs):
        opt, model = self.run.optimizer, self.run.model
        if epoch != 0:
            return
        if self.change == "momentum off":
            opt.momentum = 0.0
        elif self.change == "nesterov":
            opt.nesterov = True
        elif self.change == "weight decay":
            opt.weight_decay = 0.01
        elif self.change == "dropout rate":
            model[3].p = 0.1
        else:
            model.append(nn.Tanh())


@pytest.mark.parametrize("device", ["cpu", "jax"])
@pytest.mark.parametrize("change", ["momentum off", "nesterov", "weight decay", "dropout rate", "appended layer"])
def test_a_callback_that_changes_the_training_inside_fit_is_followed(device, change):
    """A callback may change the optimizer's hyperparameters or the model between epochs
    (a momentum schedule, fine-tuning): the compiled step kept training with what it had
    frozen (JAX's trace the old momentum, NumPy's plan the old Dropout rate) while the
    eager step followed the change."""
    _available(device)
    X, y = _data(5)
    runs = {}
    for compile in (False, "auto"):
        with xpnet.using(device, dtype="float64"):
            xpnet.seed(0)
            model = _model(nn.ReLU, 0.5, 5)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        history = xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=3, batch_size=BATCH, progress=False,
                            seed=1, compile=compile, callbacks=[_ChangesTraining(change)])
        assert history.params["compile"] == ("eager" if compile is False else "numpy" if device == "cpu" else "jax")
        runs[compile] = history.history["loss"], {k: xpnet.to_numpy(v) for k, v in model.state_dict().items()}
    np.testing.assert_allclose(runs["auto"][0], runs[False][0], rtol=1e-12)
    for k, v in runs[False][1].items():
        np.testing.assert_allclose(runs["auto"][1][k], v, rtol=1e-10, atol=1e-13)


def test_compile_true_on_a_backend_without_a_compiled_step_raises():
    X, y = _data(5)
    with xpnet.using("strict", dtype="float64"):
        model = _model(nn.ReLU, 0.0, 5)
    with pytest.raises(ValueError, match=r"cannot compile the training step on strict: .*compile='auto' or False"):
        xpnet.fit(model, "cross_entropy", X, y, epochs=1, progress=False, compile=True)


def test_a_user_loss_that_returns_a_kept_gradient_array_is_not_written_to():
    """The NumPy kernels update the loss gradient in place; a user loss returning an
    array it keeps (a cached constant) saw it shrink step by step, and training stalled."""

    class LinearScore(losses.Loss):  # loss = -mean(w . pred); its gradient is a constant
        def _target(self, pred, target):
            return target

        def _value(self, pred, target):
            self._g = getattr(self, "_g", None)
            if self._g is None or self._g.shape != pred.shape:
                self._g = -np.ones(pred.shape) / pred.shape[0]
            return -(pred * np.ones(pred.shape)).sum() / pred.shape[0]

        def _grad(self, pred, target):
            return self._g

    X, y = _data(3)
    runs = {}
    for compile in (False, "auto"):
        with xpnet.using("cpu", dtype="float64"):
            xpnet.seed(0)
            model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3), nn.Sigmoid())
        loss = LinearScore()
        history = xpnet.fit(model, loss, X, y, optimizer=optim.SGD(model.parameters(), lr=0.5), epochs=3,
                            batch_size=BATCH, progress=False, metrics=(), compile=compile, seed=1)
        assert history.params["compile"] == ("eager" if compile is False else "numpy")
        runs[compile] = history.history["loss"]
        np.testing.assert_array_equal(loss._g, -np.ones(loss._g.shape) / loss._g.shape[0])
    np.testing.assert_allclose(runs["auto"], runs[False], rtol=1e-12)


@pytest.mark.parametrize("device, compile", [("cpu", "auto"), ("cpu", False), ("jax", "auto")])
def test_momentum_turned_on_between_fits_trains_like_an_optimizer_built_with_it(device, compile):
    """docs/training.md: changing momentum between fit calls builds a new step. SGD
    decided in its constructor whether it kept a velocity, so turning momentum on later
    raised a bare KeyError('velocity') (on JAX, inside the trace)."""
    _available(device)
    X, y = _data(5)
    runs = []
    for later in (True, False):
        with xpnet.using(device, dtype="float64"):
            xpnet.seed(0)
            model = _model(nn.ReLU, 0.0, 5)
            opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.0 if later else 0.9)
            if later:
                xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=1, batch_size=BATCH, seed=1,
                          progress=False, compile=compile)
                opt.momentum = 0.9
                history = xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=2, batch_size=BATCH, seed=2,
                                    progress=False, compile=compile)
                runs.append([xpnet.to_numpy(p.value) for p in model.parameters()])
                assert opt.t == 12 and history["loss"][1] < history["loss"][0]
            else:
                # the reference, eager: a plain-SGD epoch, then a new optimizer with
                # momentum, whose velocity starts from zeros
                plain = optim.SGD(model.parameters(), lr=0.05)
                xpnet.fit(model, "cross_entropy", X, y, optimizer=plain, epochs=1, batch_size=BATCH, seed=1,
                          progress=False, compile=False)
                xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=2, batch_size=BATCH, seed=2,
                          progress=False, compile=False)
                runs.append([xpnet.to_numpy(p.value) for p in model.parameters()])
    for got, want in zip(*runs, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_a_jax_trace_that_raises_leaves_the_trained_model_usable(monkeypatch):
    """An error raised while the JAX step is traced (a user's loss or optimizer code)
    left a tracer in every parameter and emptied the optimizer's state: evaluate, save
    and every later fit failed, and the epochs trained so far were lost."""
    _available("jax")
    X, y = _data(5)
    with xpnet.using("jax", dtype="float64"):
        xpnet.seed(0)
        model = _model(nn.ReLU, 0.0, 5)
        opt = optim.Adam(model.parameters(), lr=1e-2)
        xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=2, batch_size=BATCH, progress=False)
        before = [xpnet.to_numpy(p.value).copy() for p in model.parameters()]
        state = [{k: xpnet.to_numpy(v).copy() for k, v in s.items()} for s in opt.state]
        t = opt.t

        def broken(*args, **kwargs):
            raise RuntimeError("a bug in the update")

        monkeypatch.setattr(opt, "_update", broken)
        opt.weight_decay = 1e-3  # a new step, traced again
        with pytest.raises(RuntimeError, match="a bug in the update"):
            xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=1, batch_size=BATCH, progress=False)
        monkeypatch.undo()
        for p, want in zip(model.parameters(), before, strict=True):
            np.testing.assert_array_equal(xpnet.to_numpy(p.value), want)
        assert opt.t == t
        for s, want in zip(opt.state, state, strict=True):
            assert {k: xpnet.to_numpy(v).tolist() for k, v in s.items()} == {k: v.tolist() for k, v in want.items()}
        xpnet.evaluate(model, "cross_entropy", X, y)
        history = xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=1, batch_size=BATCH, progress=False)
        assert np.isfinite(history["loss"][0])


@pytest.mark.parametrize("device", ["cpu", "jax"])
def test_no_decay_changed_between_fits_is_not_frozen_in_a_reused_step(device):
    """A JAX trace freezes which parameters decay; the step cache did not key on it, so
    after ``layer.no_decay`` changed, a loss given by name reused the old step and kept
    decaying the weights the user had just excluded."""
    _available(device)
    X, y = _data(5)
    runs = []
    for compile in ("auto", False):
        with xpnet.using(device, dtype="float64"):
            xpnet.seed(0)
            model = _model(nn.ReLU, 0.0, 5)
            opt = optim.SGD(model.parameters(), lr=0.1, weight_decay=0.5)
            xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=1, batch_size=BATCH, progress=False,
                      compile=compile)
            model.layers[1].no_decay = frozenset({"W", "b"})
            xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=3, batch_size=BATCH, progress=False,
                      compile=compile)
        runs.append([xpnet.to_numpy(p.value) for p in model.parameters()])
    for got, want in zip(*runs, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
