"""The fits compared between ``mpiexec -n 2`` and one process (shared by the worker
script and the test, so both train exactly the same thing)."""

import numpy as np

import xpnet
from xpnet import nn, optim

# Training samples % batch_size: 203 % 32 = 11 (shards 5 and 6), and 241 minus 48 held out
# = 193, 193 % 32 = 1 (rank 0's shard of the last batch is empty); full batch: 50 and 51.
CASES = {
    "shuffled_adam": {"n": 203, "batch_size": 32, "shuffle": True, "optimizer": "adam", "validation_split": 0.0},
    "ordered_sgd": {"n": 241, "batch_size": 32, "shuffle": False, "optimizer": "sgd", "validation_split": 0.2},
    "full_batch": {"n": 101, "batch_size": None, "shuffle": True, "optimizer": "sgd", "validation_split": 0.0},
}
EPOCHS = 3


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    X = rng.normal(size=(n, 64))
    y = (X[:, :10].argmax(axis=1) + (X[:, 10] > 1)) % 10
    return X, y


def run_case(case: dict, *, distributed: bool, device: str = "cpu", extra_callbacks=()) -> tuple:
    """Build the 64-32-10 course MLP in float64 from seed 0 and fit it on ``device``."""
    with xpnet.using(device, dtype="float64"):
        xpnet.seed(0)
        model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        if case["optimizer"] == "adam":
            opt = optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-3)
        else:
            opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
        X, y = data(case["n"])
        history = xpnet.fit(model, "cross_entropy", X, y, optimizer=opt, epochs=EPOCHS,
                            batch_size=case["batch_size"], shuffle=case["shuffle"], seed=1,
                            validation_split=case["validation_split"] or None, metrics=("accuracy",),
                            callbacks=list(extra_callbacks), progress=True, distributed=distributed)
    return model, history
