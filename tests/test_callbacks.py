"""Callbacks as a script user meets them: their errors, and what fit says after Ctrl-C."""

import os
import re
import signal

import numpy as np
import pytest

import xpnet
from xpnet import callbacks, nn, optim

rng = np.random.default_rng(0)
X = rng.normal(size=(64, 5)).astype("float32")
Y = (X[:, 0] > 0).astype(int)


def _model():
    xpnet.seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))


class _CtrlCAfter(callbacks.Callback):
    """Sends a real SIGINT at the end of epoch ``epoch`` (0-based), remembering the weights then."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs):
        if epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)

    def on_train_end(self, logs):
        self.last = {k: xpnet.to_numpy(v).copy() for k, v in self.run.model.state_dict().items()}


@pytest.mark.parametrize("restore", [True, False])
def test_ctrl_c_message_says_which_weights_the_model_has(capsys, restore):
    model = _model()
    # Ctrl-C comes after epoch 4, so fit stops after the first step of epoch 5: its best completed
    # epoch (4) and its last update differ.
    stopper = callbacks.EarlyStopping(monitor="loss", patience=100, restore_best_weights=restore)
    last = _CtrlCAfter(epoch=3)
    history = xpnet.fit(model, "cross_entropy", X, Y, optimizer=optim.SGD(model.parameters(), lr=3.0), epochs=20,
                        batch_size=8, callbacks=[last, stopper])
    assert history.interrupted and stopper.best_epoch == 3
    err = capsys.readouterr().err
    now = {k: xpnet.to_numpy(v) for k, v in model.state_dict().items()}
    same = all(np.array_equal(now[k], last.last[k]) for k in now)
    if restore:
        assert re.search(r"the model has the weights of epoch 4 \(loss [\d.e+-]+\), restored by EarlyStopping", err)
        assert "last completed update" not in err and not same and stopper.restored_epoch == 3
    else:
        assert "the model keeps its last completed update" in err
        assert same and stopper.restored_epoch is None


def test_a_schedule_function_that_returns_no_number_is_named():
    def halve(epoch, lr):
        lr / 2  # noqa: B018 - the forgotten `return` this test is about

    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"the schedule function test_a_schedule_function_that_returns_no_number_is_"
                                        r"named.<locals>.halve returned NoneType None for epoch 1; it must return the "
                                        r"new learning rate"):
        xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=2, callbacks=[
            callbacks.LearningRateScheduler(halve)], progress=False)
    with pytest.raises(TypeError, match=r"<lambda> returned str '0.1' for epoch 1"):
        xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=2, callbacks=[
            callbacks.LearningRateScheduler(lambda e, lr: "0.1")], progress=False)
    assert opt.lr == 0.1


def test_monitor_names_accept_the_metric_aliases():
    model = _model()
    stopper = callbacks.EarlyStopping(monitor="val_acc", patience=0)
    xpnet.fit(model, "cross_entropy", X, Y, epochs=3, validation_split=0.25, callbacks=[stopper], progress=False)
    assert stopper._tracker.monitor == "val_accuracy" and stopper._tracker.mode == "max"
    stopper = callbacks.EarlyStopping(monitor="acc", patience=0)
    history = xpnet.fit(model, "cross_entropy", X, Y, epochs=3, callbacks=[stopper], progress=False)
    assert stopper.best == max(history["accuracy"][: stopper.best_epoch + 1])
    best = callbacks.ModelCheckpoint("unused.npz", save_best_only=True, monitor="val_top1")
    best._check_logs(frozenset({"loss", "lr", "accuracy", "top1_accuracy"}), has_validation=False)


def test_a_monitor_name_is_reported_as_the_user_wrote_it():
    model = nn.Sequential(nn.Linear(5, 1))
    y = X[:, :1] * 2.0
    with pytest.raises(ValueError, match=r"EarlyStopping: cannot monitor 'val_acc' \(without validation data it "
                                         r"watches 'accuracy'\): this run logs \['loss', 'lr'\]"):
        xpnet.fit(model, "mse", X, y, epochs=1, callbacks=[callbacks.EarlyStopping(monitor="val_acc")],
                  progress=False)
    with pytest.raises(ValueError, match=r"ModelCheckpoint: cannot monitor 'val_f1': this run logs \['loss', 'lr', "
                                         r"'val_loss'\]"):
        xpnet.fit(model, "mse", X, y, epochs=1, validation_split=0.25, progress=False, callbacks=[
            callbacks.ModelCheckpoint("x.npz", save_best_only=True, monitor="val_f1")])


def test_a_checkpoint_folder_that_does_not_exist_fails_before_training(tmp_path):
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    missing = tmp_path / "runs"
    with pytest.raises(FileNotFoundError, match=r"ModelCheckpoint: cannot save to .*: folder '.*runs' does not "
                                                 r"exist; create it first"):
        xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=2, progress=False,
                  callbacks=[callbacks.ModelCheckpoint(missing / "ckpt-{epoch}.npz")])
    assert opt.t == 0 and not missing.exists()
    missing.mkdir()
    xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=2, progress=False,
              callbacks=[callbacks.ModelCheckpoint(missing / "ckpt-{epoch}.npz")])
    assert sorted(os.listdir(missing)) == ["ckpt-1.npz", "ckpt-2.npz"]


def test_ctrl_c_is_reported_even_without_progress_output(capsys):
    """In a loop of fits with progress=False, one press of stop cut the current run
    short and printed nothing: the next runs' results looked like a full comparison."""
    model = _model()
    history = xpnet.fit(model, "cross_entropy", X, Y, epochs=20, batch_size=8, progress=False,
                        callbacks=[_CtrlCAfter(epoch=1)])
    assert history.interrupted
    assert "training interrupted during epoch 3" in capsys.readouterr().err


def test_early_stopping_says_so_and_which_weights_the_model_has(capsys):
    model = _model()
    stopper = callbacks.EarlyStopping(monitor="loss", patience=2, min_delta=10.0)  # never improves enough
    history = xpnet.fit(model, "cross_entropy", X, Y, epochs=20, batch_size=8, callbacks=[stopper])
    assert history.stopped_early and history.epochs == 3
    out = capsys.readouterr().out
    assert re.search(r"stopped early after epoch 3: loss did not improve for 2 epochs; the model has the weights "
                     r"of epoch 1 \(loss [\d.e+-]+\), restored by EarlyStopping", out), out
    xpnet.fit(_model(), "cross_entropy", X, Y, epochs=20, batch_size=8, progress=False,
              callbacks=[callbacks.EarlyStopping(monitor="loss", patience=2, min_delta=10.0)])
    assert "stopped early" not in capsys.readouterr().out  # progress=False: quiet, as asked


def test_progress_bar_labels_the_running_epoch_and_ends_full_when_stopped_early(monkeypatch):
    import io
    import sys
    import types

    from tqdm.std import tqdm as text_tqdm

    from xpnet import training

    stream = io.StringIO()
    stream.isatty = lambda: True
    monkeypatch.setattr(sys, "stderr", stream)
    # a Jupyter kernel without ipywidgets: the text bar, not tqdm's "IProgress not found" warning
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    real_find_spec = training.importlib.util.find_spec
    monkeypatch.setattr(training.importlib.util, "find_spec",
                        lambda name, *a: None if name == "ipywidgets" else real_find_spec(name, *a))
    bar = training._Progress(True, epochs=5, steps=4)
    assert type(bar.bar) is text_tqdm
    bar.begin(0)
    assert bar.bar.desc.startswith("epoch 1/5")  # the epoch running, before any of it is done
    for _ in range(4):
        bar.step()
    bar.epoch(0, {"loss": 0.5}, 0.1)
    bar.begin(1)
    assert bar.bar.desc.startswith("epoch 2/5")
    bar.step()
    bar.close(finished=True)  # stopped early: shown complete (a notebook bar closed short turns red)
    assert bar.bar.total == bar.bar.n == 5


@pytest.mark.parametrize(("path", "message"), [
    ("ck{epoch:s}.npz", r"cannot be filled in: ValueError: Unknown format code 's' for object of type 'int'"),
    ("ck{epoch[0]}.npz", r"cannot be filled in: TypeError: 'int' object is not subscriptable"),
    ("ck{loss:d}.npz", r"cannot be filled in: ValueError: Unknown format code 'd' for object of type 'float'"),
])
def test_a_checkpoint_path_the_values_cannot_fill_fails_before_training(tmp_path, path, message):
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"ModelCheckpoint: path .* " + message + r".*epoch \(an int"):
        xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=2, progress=False,
                  callbacks=[callbacks.ModelCheckpoint(tmp_path / path)])
    assert opt.t == 0 and os.listdir(tmp_path) == []


def test_checkpoint_folders_named_by_fields_are_checked_before_training(tmp_path):
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)

    def fit(path):
        xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=2, progress=False,
                  callbacks=[callbacks.ModelCheckpoint(path)])

    with pytest.raises(FileNotFoundError, match=r"folder '.*no_such_dir' does not exist\. ModelCheckpoint creates "
                                                 r"no folders"):
        fit(tmp_path / "no_such_dir" / "{epoch}" / "m.npz")
    (tmp_path / "runs").mkdir()
    with pytest.raises(FileNotFoundError, match=r"cannot save epoch 1 to '.*runs/1/m\.npz': folder '.*runs/1' does "
                                                 r"not exist\. ModelCheckpoint creates no folders"):
        fit(tmp_path / "runs" / "{epoch}" / "m.npz")
    with pytest.raises(ValueError, match=r"names folders after loss, whose values are not known before training"):
        fit(tmp_path / "runs" / "{loss:.2f}" / "m.npz")
    assert opt.t == 0 and os.listdir(tmp_path / "runs") == []
    (tmp_path / "runs" / "1").mkdir()
    (tmp_path / "runs" / "2").mkdir()
    fit(tmp_path / "runs" / "{epoch}" / "m.npz")
    assert sorted(os.listdir(tmp_path / "runs" / "2")) == ["m.npz"]
