"""Calling fit again on the same model: what carries on from one call to the next.

The optimizer fit builds from a name, a ModelCheckpoint's best value and its epoch count
all continue, as in Keras; a resumed run continues them from what the checkpoint records.
"""

import copy
import os
import pickle

import numpy as np
import pytest

import xpnet
from xpnet import nn, optim
from xpnet.callbacks import EarlyStopping, ModelCheckpoint

rng = np.random.default_rng(0)
X = rng.normal(size=(96, 6))
Y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
XV = rng.normal(size=(48, 6))
YV = (XV[:, 0] + 0.5 * XV[:, 1] > 0).astype(np.int64)


def _model():
    xpnet.seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))


def _weights(model):
    return {k: xpnet.to_numpy(v).copy() for k, v in model.state_dict().items()}


def _device(name):
    try:
        return xpnet.backend.resolve_device(name)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"{name} unavailable: {exc}")


# -- the optimizer built from a name ------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", "jax"])
@pytest.mark.parametrize("compile", ["auto", False])
@pytest.mark.parametrize("name", [None, "adam", "sgd"])
def test_fit_calls_with_a_named_optimizer_continue_it_bit_for_bit(device, compile, name):
    _device(device)
    with xpnet.using(device, dtype="float64"):
        once = _model()
        xpnet.fit(once, "cross_entropy", X, Y, optimizer=name, epochs=4, batch_size=32, shuffle=False,
                  compile=compile, progress=False)
        loop = _model()
        histories = [xpnet.fit(loop, "cross_entropy", X, Y, optimizer=name, epochs=1, batch_size=32,
                               shuffle=False, compile=compile, progress=False) for _ in range(4)]
    for key, value in _weights(once).items():
        np.testing.assert_array_equal(_weights(loop)[key], value, err_msg=key)
    assert xpnet.fit_optimizer(loop).t == xpnet.fit_optimizer(once).t == 4 * 3
    # the kept optimizer keeps the built step: later calls neither retrace nor recompile
    assert [h.params["compile_seconds"] for h in histories[1:]] == [0.0, 0.0, 0.0]


def test_what_ends_the_kept_optimizer():
    model = _model()
    assert xpnet.fit_optimizer(model) is None
    xpnet.fit(model, "cross_entropy", X, Y, epochs=1, progress=False)
    adam = xpnet.fit_optimizer(model)
    assert isinstance(adam, optim.Adam) and adam.t == 3
    xpnet.fit(model, "cross_entropy", X, Y, optimizer="adam", epochs=1, progress=False)
    assert xpnet.fit_optimizer(model) is adam and adam.t == 6
    xpnet.fit(model, "cross_entropy", X, Y, optimizer="sgd", epochs=1, progress=False)  # another name
    sgd = xpnet.fit_optimizer(model)
    assert isinstance(sgd, optim.SGD) and sgd.t == 3
    model.append(nn.Tanh()).append(nn.Linear(2, 2))  # other parameters
    xpnet.fit(model, "cross_entropy", X, Y, optimizer="sgd", epochs=1, progress=False)
    assert xpnet.fit_optimizer(model) is not sgd and len(xpnet.fit_optimizer(model).params) == 6
    mine = optim.SGD(model.parameters(), lr=0.1)  # an optimizer of your own drops the kept one
    xpnet.fit(model, "cross_entropy", X, Y, optimizer=mine, epochs=1, progress=False)
    assert xpnet.fit_optimizer(model) is None
    xpnet.fit(model, "cross_entropy", X, Y, epochs=1, progress=False)
    assert xpnet.fit_optimizer(model).t == 3  # a new Adam


def test_the_kept_optimizer_can_be_changed_and_saved(tmp_path):
    model = _model()
    xpnet.fit(model, "cross_entropy", X, Y, epochs=2, progress=False)
    kept = xpnet.fit_optimizer(model)
    xpnet.fit(model, "cross_entropy", X, Y, optimizer=kept, epochs=1, progress=False)  # passing it back continues it
    assert xpnet.fit_optimizer(model) is kept and kept.t == 9
    kept.lr = 1e-4
    history = xpnet.fit(model, "cross_entropy", X, Y, epochs=1, progress=False)
    assert history["lr"] == [1e-4]
    path = xpnet.save(model, tmp_path / "m.npz", optimizer=kept)
    ckpt = xpnet.io.load_checkpoint(path)
    assert ckpt.optimizer_state["t"] == 12 and ckpt.optimizer_state["lr"] == 1e-4
    assert "_fit_optimizer" not in str(ckpt.model.get_config())
    assert xpnet.fit_optimizer(ckpt.model) is None  # a loaded model starts without one


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))], ids=["deepcopy", "pickle"])
def test_a_copied_model_continues_its_own_copy_of_the_optimizer(clone):
    model = _model()
    xpnet.fit(model, "cross_entropy", X, Y, epochs=2, shuffle=False, progress=False)
    twin = clone(model)
    kept, copied = xpnet.fit_optimizer(model), xpnet.fit_optimizer(twin)
    assert copied is not kept and copied.t == kept.t
    assert [p.module for p in copied.params] == [p.module for p in twin.parameters()]
    xpnet.fit(model, "cross_entropy", X, Y, epochs=1, shuffle=False, progress=False)
    xpnet.fit(twin, "cross_entropy", X, Y, epochs=1, shuffle=False, progress=False)
    assert kept.t == copied.t == 9
    for key, value in _weights(model).items():
        np.testing.assert_array_equal(_weights(twin)[key], value, err_msg=key)


# -- ModelCheckpoint across fit calls ------------------------------------------------


def _two_phases(tmp_path, callbacks):
    """A first fit that improves, then one with a far too large learning rate that does not."""
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    first = xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=4, validation_data=(XV, YV),
                      callbacks=callbacks, progress=False, seed=0)
    opt.lr = 50.0
    second = xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=2, validation_data=(XV, YV),
                       callbacks=callbacks, progress=False, seed=0)
    assert min(second["val_loss"]) > min(first["val_loss"])  # the premise: the second phase is worse
    return model, first, second


def _val_loss(path):
    return xpnet.evaluate(xpnet.load(path), "cross_entropy", XV, YV)["loss"]


def test_save_best_only_keeps_the_best_of_every_fit_call(tmp_path):
    best = ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)
    _, first, _ = _two_phases(tmp_path, [best])
    assert _val_loss(tmp_path / "best.npz") == pytest.approx(min(first["val_loss"]), rel=1e-12)
    assert best.best == min(first["val_loss"])
    metadata = xpnet.io.load_checkpoint(tmp_path / "best.npz").metadata
    assert metadata == {"epoch": 1 + int(np.argmin(first["val_loss"])), "monitor": "val_loss",
                        "best": min(first["val_loss"])}


def test_epoch_in_the_path_counts_across_fit_calls(tmp_path):
    every = ModelCheckpoint(tmp_path / "ckpt-{epoch:03d}.npz")
    probe = ModelCheckpoint(tmp_path / "probe-{epoch}.npz")  # its files of the first fit, read before the second

    class Snapshot(xpnet.callbacks.Callback):
        def on_train_end(self, logs):
            if not hasattr(self, "first"):
                self.first = {f: _val_loss(tmp_path / f) for f in sorted(os.listdir(tmp_path))}

    snapshot = Snapshot()
    _two_phases(tmp_path, [every, probe, snapshot])
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith("ckpt")) == [f"ckpt-{i:03d}.npz" for i in range(1, 7)]
    for name, loss in snapshot.first.items():  # nothing from the first fit was overwritten
        assert _val_loss(tmp_path / name) == loss, name
    for i in range(1, 7):
        assert xpnet.io.load_checkpoint(tmp_path / f"ckpt-{i:03d}.npz").metadata == {"epoch": i}
    assert every.epoch == 6


def test_early_stopping_still_starts_its_patience_again_each_fit():
    stopper = EarlyStopping(monitor="val_loss", patience=1)
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    first = xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=3, validation_data=(XV, YV),
                      callbacks=[stopper], progress=False)
    opt.lr = 50.0
    history = xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=3, validation_data=(XV, YV),
                        callbacks=[stopper], progress=False)
    # Keras: each fit starts a new best and a new patience (unlike ModelCheckpoint's best file)
    assert stopper.best == min(history["val_loss"]) > min(first["val_loss"])


def test_a_resumed_run_continues_the_numbering_and_the_best(tmp_path):
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    kwargs = dict(validation_data=(XV, YV), progress=False, seed=0)
    xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=3, **kwargs,
              callbacks=[ModelCheckpoint(tmp_path / "best.npz", save_best_only=True),
                         ModelCheckpoint(tmp_path / "ckpt-{epoch}.npz")])
    best_before = _val_loss(tmp_path / "best.npz")
    files_before = {i: _val_loss(tmp_path / f"ckpt-{i}.npz") for i in (1, 2, 3)}

    # the documented recipe (docs/training.md, "Saving and loading")
    last = xpnet.io.load_checkpoint(tmp_path / "ckpt-3.npz")
    best = xpnet.io.load_checkpoint(tmp_path / "best.npz")
    opt = optim.SGD(last.model.parameters(), lr=0.1)
    opt.load_state_dict(last.optimizer_state)
    opt.lr = 50.0  # the resumed run goes badly
    xpnet.fit(last.model, "cross_entropy", X, Y, optimizer=opt, epochs=2, **kwargs,
              callbacks=[ModelCheckpoint(tmp_path / "best.npz", save_best_only=True,
                                         initial_value_threshold=best.metadata["best"]),
                         ModelCheckpoint(tmp_path / "ckpt-{epoch}.npz", initial_epoch=last.metadata["epoch"])])
    assert _val_loss(tmp_path / "best.npz") == best_before
    assert {i: _val_loss(tmp_path / f"ckpt-{i}.npz") for i in (1, 2, 3)} == files_before
    assert [xpnet.io.load_checkpoint(tmp_path / f"ckpt-{i}.npz").metadata["epoch"] for i in (4, 5)] == [4, 5]


def test_a_new_checkpoint_callback_on_a_trained_optimizer_warns_about_its_numbering(tmp_path):
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=1, progress=False)
    with pytest.warns(UserWarning, match=r"initial_epoch=.*metadata\['epoch'\]") as caught:
        xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=1, progress=False,
                  callbacks=[ModelCheckpoint(tmp_path / "ckpt-{epoch}.npz")])
    assert caught[0].filename == __file__  # points at the user's fit call, not into xpnet
    xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=1, progress=False,  # no {epoch}: nothing to say
              callbacks=[ModelCheckpoint(tmp_path / "last.npz"),
                         ModelCheckpoint(tmp_path / "ckpt-{epoch}.npz", initial_epoch=2)])
    assert sorted(os.listdir(tmp_path)) == ["ckpt-1.npz", "ckpt-3.npz", "last.npz"]


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"initial_epoch": -1}, ValueError, "initial_epoch must be an integer >= 0, got -1"),
    ({"initial_epoch": 2.0}, TypeError, "initial_epoch must be an integer"),
    ({"initial_value_threshold": "0.3"}, TypeError, "initial_value_threshold"),
    ({"initial_value_threshold": float("nan")}, ValueError, "initial_value_threshold"),
])
def test_checkpoint_resume_arguments_are_checked(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        ModelCheckpoint(tmp_path / "c.npz", save_best_only=True, **kwargs)


def test_the_kept_optimizer_goes_away_with_the_model(monkeypatch):
    import gc
    import weakref
    from collections import OrderedDict

    from xpnet import _compile

    monkeypatch.setattr(_compile, "_CACHE", OrderedDict())  # the step cache holds its models; this test's go with it
    model = _model()
    xpnet.fit(model, "cross_entropy", X, Y, epochs=1, progress=False)
    refs = [weakref.ref(model), weakref.ref(model[0]), weakref.ref(xpnet.fit_optimizer(model))]
    _compile._CACHE.clear()
    del model
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]
