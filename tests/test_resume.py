"""Resuming training from a ModelCheckpoint file continues the learning-rate schedule:
the resumed run's learning rates and losses are those of the uninterrupted run."""

import numpy as np
import pytest

import xpnet
from xpnet import callbacks, nn, optim

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
