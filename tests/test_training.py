"""fit / evaluate / callbacks on the bundled digits data and on small synthetic sets."""

import os
import signal

import numpy as np
import pytest

import xpnet
from xpnet import callbacks, losses, nn, optim
from xpnet.errors import LabelError, ShapeError

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    X, y = xpnet.data.load_digits()
    return xpnet.data.train_test_split(X, y, test_size=0.25, seed=0)


def mlp(hidden=32, dropout=0.0):
    layers = [nn.Linear(64, hidden), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(hidden, 10))


def test_digits_mlp_reaches_95_percent(digits):
    Xtr, Xte, ytr, yte = digits
    xpnet.seed(0)
    model = mlp()
    history = xpnet.fit(model, losses.SoftmaxCrossEntropy(), Xtr, ytr, optimizer=optim.Adam(model.parameters(), 3e-3),
                        epochs=20, batch_size=32, progress=False)
    result = xpnet.evaluate(model, "cross_entropy", Xte, yte)
    assert result["accuracy"] >= 0.95
    assert history["loss"][-1] < history["loss"][0] / 5
    assert len(history.epoch_times) == 20 and all(t > 0 for t in history.epoch_times)


def _curve(device, digits, epochs=4):
    Xtr, _, ytr, _ = digits
    with xpnet.using(device, dtype="float64"):
        xpnet.seed(0)
        model = mlp(dropout=0.1)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return xpnet.fit(model, "cross_entropy", Xtr[:400], ytr[:400], optimizer=opt, epochs=epochs,
                         batch_size=64, seed=1, progress=False)


@pytest.mark.parametrize("device", ["strict", "strict:device1", "jax", "torch"])
def test_same_loss_curve_on_every_backend(device, digits):
    try:
        xpnet.backend.resolve_device(device)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"{device} unavailable: {exc}")
    reference = _curve("cpu", digits)
    other = _curve(device, digits)
    np.testing.assert_allclose(other["loss"], reference["loss"], rtol=1e-9)
    np.testing.assert_allclose(other["accuracy"], reference["accuracy"], rtol=1e-12)


def test_full_batch_gradient_descent_and_partial_last_batch():
    X = np.random.default_rng(0).standard_normal((50, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(3, 2))
    opt = optim.SGD(model.parameters(), lr=0.5)
    xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=3, batch_size=None, progress=False)
    assert opt.t == 3
    opt = optim.SGD(model.parameters(), lr=0.5)
    xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=2, batch_size=16, progress=False)
    assert opt.t == 2 * 4  # 16 + 16 + 16 + 2: the last partial batch is kept
    opt = optim.SGD(model.parameters(), lr=0.5)
    xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=2, batch_size=16, drop_last=True, progress=False)
    assert opt.t == 2 * 3


def test_data_moves_to_the_device_once(monkeypatch, digits):
    Xtr, _, ytr, _ = digits
    model = mlp()
    calls = []
    original = xpnet.Device.asarray
    monkeypatch.setattr(xpnet.Device, "asarray", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    xpnet.fit(model, "cross_entropy", Xtr, ytr, epochs=3, batch_size=32, progress=False)
    # at most X and y once each, then one permutation per epoch; not one per step (3 x 42 steps)
    assert 3 <= len(calls) <= 2 + 3


def test_validation_set_is_not_moved_again_each_epoch(monkeypatch, digits):
    Xtr, Xte, ytr, yte = digits
    with xpnet.using("strict"):  # a device of its own, so the one move is visible
        model = mlp()
    moved = []
    original = xpnet.Device.asarray
    monkeypatch.setattr(xpnet.Device, "asarray", lambda self, a, *r, **k: moved.append(a.shape) or original(self, a, *r, **k))
    xpnet.fit(model, "cross_entropy", Xtr, ytr, epochs=4, validation_data=(Xte, yte), progress=False)
    assert moved.count(Xte.shape) == 1  # once before training, not once per epoch


def test_validation_split_and_metrics_in_history(digits):
    Xtr, _, ytr, _ = digits
    model = mlp()
    history = xpnet.fit(model, "cross_entropy", Xtr, ytr, epochs=2, validation_split=0.2,
                        metrics=("accuracy", "error", "top3_accuracy"), progress=False)
    assert set(history.history) == {"loss", "accuracy", "error", "top3_accuracy", "val_loss", "val_accuracy",
                                     "val_error", "val_top3_accuracy", "lr"}
    assert history["val_accuracy"][-1] == pytest.approx(1 - history["val_error"][-1])
    assert history["top3_accuracy"][-1] >= history["accuracy"][-1]
    assert history.params["samples"] == len(Xtr) - round(0.2 * len(Xtr))


def test_progress_output(capsys, digits):
    Xtr, _, ytr, _ = digits
    xpnet.fit(mlp(), "cross_entropy", Xtr[:100], ytr[:100], epochs=2, progress=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "loss" in lines[0] and "accuracy" in lines[0] and lines[1].startswith("epoch 2/2")
    xpnet.fit(mlp(), "cross_entropy", Xtr[:100], ytr[:100], epochs=2, progress=False)
    assert capsys.readouterr().out == ""


def test_early_stopping_restores_best_weights():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    Xv, yv = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)  # noise: val loss soon rises
    xpnet.seed(0)
    model = nn.Sequential(nn.Linear(5, 64), nn.ReLU(), nn.Linear(64, 3))
    stopper = callbacks.EarlyStopping(patience=3)
    history = xpnet.fit(model, "cross_entropy", X, y, optimizer=optim.Adam(model.parameters(), 0.01), epochs=200,
                        validation_data=(Xv, yv), callbacks=[stopper], progress=False)
    assert history.stopped_early and history.epochs < 200
    best = int(np.argmin(history["val_loss"]))
    assert stopper.best_epoch == best and history.epochs == best + 1 + 3
    assert xpnet.evaluate(model, "cross_entropy", Xv, yv)["loss"] == pytest.approx(history["val_loss"][best], rel=1e-5)


def test_checkpoint_and_lr_schedule(tmp_path, digits):
    Xtr, _, ytr, _ = digits
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    ckpt = callbacks.ModelCheckpoint(tmp_path / "ckpt-{epoch:02d}.npz")
    sched = callbacks.LearningRateScheduler(optim.ExponentialDecay(opt, 0.5))
    history = xpnet.fit(model, "cross_entropy", Xtr, ytr, optimizer=opt, epochs=3, callbacks=[ckpt, sched],
                        progress=False)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    assert sorted(os.listdir(tmp_path)) == ["ckpt-01.npz", "ckpt-02.npz", "ckpt-03.npz"]
    restored = xpnet.load(tmp_path / "ckpt-03.npz")
    np.testing.assert_array_equal(xpnet.to_numpy(restored.predict(Xtr[:20])), xpnet.to_numpy(model.predict(Xtr[:20])))
    keras_style = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.1)
    h2 = xpnet.fit(model, "cross_entropy", Xtr, ytr, optimizer=optim.SGD(model.parameters(), lr=1.0), epochs=2,
                   callbacks=[keras_style], progress=False)
    assert h2["lr"] == pytest.approx([1.0, 0.1])


class _InterruptAt(nn.Identity):
    """Sends the process a real SIGINT during the forward pass of step ``at``."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return x


def test_ctrl_c_stops_at_a_step_boundary(digits, capsys):
    Xtr, _, ytr, _ = digits
    xpnet.seed(0)
    model = nn.Sequential(_InterruptAt(at=1 + 5), *mlp())  # call 1 is fit's shape probe
    opt = optim.SGD(model.parameters(), lr=0.1)
    # the handler fit found (Python's default; SIG_IGN in a shell's background job) comes back
    before = signal.getsignal(signal.SIGINT)
    history = xpnet.fit(model, "cross_entropy", Xtr, ytr, optimizer=opt, epochs=5, batch_size=32)
    assert history.interrupted and history.epochs == 1
    assert opt.t == 5  # the step that was running when Ctrl-C came completed; no further step started
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before


def test_clear_errors_before_training(digits):
    Xtr, _, ytr, _ = digits
    with pytest.raises(LabelError, match="labels in"):
        xpnet.fit(mlp(), "cross_entropy", Xtr, ytr + 1, epochs=1, progress=False)
    with pytest.raises(ShapeError, match=r"Linear\(64→32\) got input of shape \(1347, 63\)"):
        xpnet.fit(mlp(), "cross_entropy", Xtr[:, :63], ytr, epochs=1, progress=False)
    with pytest.raises(ValueError, match="X has 100 samples but y has 99"):
        xpnet.fit(mlp(), "cross_entropy", Xtr[:100], ytr[:99], epochs=1, progress=False)
    with pytest.raises(ValueError, match="regression loss"):
        xpnet.fit(mlp(), "mse", Xtr, np.eye(10)[ytr], metrics=("accuracy",), epochs=1, progress=False)


def test_regression_with_mse_has_no_accuracy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    model = nn.Sequential(nn.Linear(3, 1))
    history = xpnet.fit(model, "mse", X, y, optimizer=optim.SGD(model.parameters(), lr=0.1), epochs=30,
                        batch_size=20, progress=False)
    assert set(history.history) == {"loss", "lr"}
    assert history["loss"][-1] < 1e-4
    np.testing.assert_allclose(xpnet.to_numpy(model[0].params["W"]).ravel(), [1.0, -2.0, 0.5], atol=1e-2)


def test_evaluate_in_batches_matches_one_batch(digits):
    _, Xte, _, yte = digits
    model = mlp()
    small = xpnet.evaluate(model, "cross_entropy", Xte, yte, batch_size=7)
    whole = xpnet.evaluate(model, "cross_entropy", Xte, yte, batch_size=10_000)
    assert small["loss"] == pytest.approx(whole["loss"], rel=1e-5)
    assert small["accuracy"] == whole["accuracy"]


def test_binary_classification_with_logits():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    history = xpnet.fit(model, losses.BinaryCrossEntropy(from_logits=True), X, y,
                        optimizer=optim.Adam(model.parameters(), 0.05), epochs=20, progress=False)
    assert history["accuracy"][-1] > 0.95


class _RowRecorder(nn.Module):
    """Passes its input through and, in training mode, records the sample ids (column 0)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        if self.training:
            self.seen.append(xpnet.to_numpy(x[:, 0]).astype(int).tolist())
        return x

    def backward(self, grad_out):
        return grad_out


def _batch_orders(n=24, epochs=3, batch_size=6, seed=None):
    """The order fit visits the samples in, one list per epoch."""
    X = np.column_stack([np.arange(n, dtype=np.float64), np.random.default_rng(0).standard_normal(n)])
    y = np.arange(n) % 2
    recorder = _RowRecorder()
    model = nn.Sequential(recorder, nn.Linear(2, 2))
    xpnet.fit(model, "cross_entropy", X, y, epochs=epochs, batch_size=batch_size, optimizer="sgd", progress=False,
              seed=seed)
    batches = [b for b in recorder.seen if len(b) == batch_size]
    per_epoch = len(batches) // epochs
    assert per_epoch * epochs == len(batches) == epochs * (n // batch_size)
    return [sum(batches[e * per_epoch : (e + 1) * per_epoch], []) for e in range(epochs)]


def test_fit_shuffles_anew_each_epoch_and_reproducibly_under_seed():
    xpnet.seed(11)
    orders = _batch_orders()
    for order in orders:
        assert sorted(order) == list(range(24))  # each epoch visits every sample once
    assert orders[0] != list(range(24))
    assert orders[0] != orders[1] and orders[1] != orders[2] and orders[0] != orders[2]
    xpnet.seed(11)
    assert _batch_orders() == orders  # xpnet.seed makes the whole run repeat
    assert _batch_orders(seed=5) == _batch_orders(seed=5) != orders  # so does fit(seed=...)
