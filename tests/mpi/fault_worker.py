"""Run under ``mpiexec -n 2``: rank 1 raises, in a training step ("step") or in a
callback at the end of an epoch ("callback"), or gets Ctrl-C alone in a step
("interrupt"); every rank must stop, none may hang."""

import os
import pathlib
import signal
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))  # this checkout's xpnet

import xpnet  # noqa: E402
from xpnet import callbacks, distributed, nn  # noqa: E402


class FailingIdentity(nn.Identity):
    """Identity that raises (or interrupts itself) on rank 1 at its third training forward."""

    calls = 0
    interrupt = False

    def forward(self, x):
        if self.training:
            FailingIdentity.calls += 1
            if distributed.world().rank == 1 and FailingIdentity.calls == 3:
                if self.interrupt:
                    os.kill(os.getpid(), signal.SIGINT)
                else:
                    raise ValueError("boom in a step on rank 1")
        return super().forward(x)


class FailingCallback(callbacks.Callback):
    def on_epoch_end(self, epoch, logs):
        if self.run.rank == 1 and epoch == 1:
            raise ValueError("boom in a callback on rank 1")


def main(mode: str) -> None:
    world = distributed.init("cpu")
    xpnet.seed(0)
    FailingIdentity.interrupt = mode == "interrupt"
    middle = FailingIdentity() if mode in ("step", "interrupt") else nn.Identity()
    model = nn.Sequential(nn.Linear(8, 4), middle, nn.Linear(4, 2))
    X = np.random.default_rng(0).normal(size=(64, 8))
    y = (X[:, 0] > 0).astype(np.int64)
    cbs = [FailingCallback()] if mode == "callback" else []
    history = xpnet.fit(model, "cross_entropy", X, y, epochs=5, batch_size=16, callbacks=cbs, progress=False,
                        distributed=True)
    weights = xpnet.to_numpy(model.parameters()[0].value)
    same = world.comm.allreduce(float(np.abs(weights - world.comm.bcast(weights)).max()), op=max) == 0.0
    print(f"rank {world.rank} finished training: interrupted={history.interrupted} epochs={history.epochs} "
          f"same_weights={same}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
