"""Resuming training from a ModelCheckpoint file continues the learning-rate schedule:
the resumed run's learning rates and losses are those of the uninterrupted run."""

import json

import numpy as np
import pytest

import xpnet
from xpnet import callbacks, nn, optim
from xpnet.errors import CorruptFileError

rng = np.random.default_rng(0)
X = rng.normal(size=(64, 5)).astype("float32")
Y = (X[:, 0] > 0).astype(int)

SCHEDULES = {
    "exponential": lambda opt: optim.ExponentialDecay(opt, 0.9),
    "step": lambda opt: optim.StepDecay(opt, step_size=3, gamma=0.5),
    "inverse_time": lambda opt: optim.InverseTimeDecay(opt, rate=0.7),
    "function": lambda opt: (lambda epoch, lr: lr * 0.8 if epoch % 2 else lr / 3),
}


def _scheduler(kind, opt):
    return callbacks.LearningRateScheduler(SCHEDULES[kind](opt))


def _model():
    xpnet.seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))


def _fit(model, opt, epochs, cbs):
    return xpnet.fit(model, "cross_entropy", X, Y, optimizer=opt, epochs=epochs, batch_size=16, shuffle=False,
                     callbacks=cbs, progress=False)


@pytest.mark.parametrize("checkpoint_first", [False, True], ids=["scheduler_first", "checkpoint_first"])
@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_resumed_run_continues_the_schedule(tmp_path, kind, checkpoint_first):
    reference = _model()
    opt = optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    straight = _fit(reference, opt, 5, [_scheduler(kind, opt)])

    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    path = tmp_path / "ckpt.npz"
    first = [_scheduler(kind, opt), callbacks.ModelCheckpoint(path)]
    h1 = _fit(model, opt, 2, first[::-1] if checkpoint_first else first)

    ckpt = xpnet.io.load_checkpoint(path)
    opt2 = optim.SGD(ckpt.model.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(ckpt.optimizer_state)
    scheduler = _scheduler(kind, opt2)
    scheduler.load_state_dict(ckpt.schedule_state)
    h2 = _fit(ckpt.model, opt2, 3, [scheduler])

    assert h1["lr"] + h2["lr"] == straight["lr"]
    assert h1["loss"] + h2["loss"] == straight["loss"]
    for name, value in reference.state_dict().items():
        np.testing.assert_array_equal(xpnet.to_numpy(ckpt.model.state_dict()[name]), xpnet.to_numpy(value))


def test_the_schedule_state_travels_with_the_optimizer_only(tmp_path):
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    scheduler = _scheduler("step", opt)
    cbs = [scheduler, callbacks.ModelCheckpoint(tmp_path / "a.npz"),
           callbacks.ModelCheckpoint(tmp_path / "b.npz", save_optimizer=False)]
    _fit(model, opt, 2, cbs)
    assert xpnet.io.load_checkpoint(tmp_path / "a.npz").schedule_state == {"type": "StepDecay", "t": 2, "lr0": 0.1}
    without = xpnet.io.load_checkpoint(tmp_path / "b.npz")
    assert without.schedule_state is None and without.optimizer_state is None
    path = xpnet.save(model, tmp_path / "c.npz", optimizer=opt)
    assert xpnet.io.load_checkpoint(path).schedule_state is None
    with pytest.raises(TypeError, match="schedule must be an xpnet.optim.LRSchedule or a LearningRateScheduler"):
        xpnet.save(model, tmp_path / "d.npz", schedule=0.5)


def test_a_malformed_schedule_entry_is_a_corrupt_file(tmp_path):
    model = _model()
    path = xpnet.save(model, tmp_path / "m.npz")
    arrays = dict(np.load(path, allow_pickle=False))
    header = json.loads(arrays["xpnet_header"].tobytes())
    header["schedule"] = [1, 2]
    arrays["xpnet_header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(CorruptFileError, match=r"'schedule' should be a dict with a 'type', found list"):
        xpnet.io.load_checkpoint(path)


def test_a_function_schedule_counts_its_epochs_across_fits():
    model = _model()
    opt = optim.SGD(model.parameters(), lr=1.0)
    seen = []
    scheduler = callbacks.LearningRateScheduler(lambda epoch, lr: seen.append(epoch) or lr / 2)
    _fit(model, opt, 2, [scheduler])
    history = _fit(model, opt, 2, [scheduler])
    assert seen == [1, 2, 3, 4] and history["lr"] == [0.25, 0.125]
    assert scheduler.state_dict() == {"type": "function", "t": 4}
    with pytest.raises(ValueError, match=r"this scheduler holds a function, the state is for 'StepDecay'"):
        scheduler.load_state_dict({"type": "StepDecay", "t": 1, "lr0": 0.1})


class _Halving:
    """A schedule object of the user's own, with step() and lr_at() but no state_dict()."""

    def __init__(self, opt):
        self.opt, self.t = opt, 0

    def lr_at(self, t):
        return 0.1 / 2**t

    def step(self):
        self.t += 1
        self.opt.lr = self.lr_at(self.t)


def test_a_schedule_object_without_state_is_still_checkpointed(tmp_path):
    model = _model()
    opt = optim.SGD(model.parameters(), lr=0.1)
    history = _fit(model, opt, 2, [callbacks.ModelCheckpoint(tmp_path / "a.npz"),
                                   callbacks.LearningRateScheduler(_Halving(opt))])
    ckpt = xpnet.io.load_checkpoint(tmp_path / "a.npz")
    assert history["lr"] == [0.1, 0.05] and ckpt.schedule_state is None and ckpt.optimizer_state["lr"] == 0.025
