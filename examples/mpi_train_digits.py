"""Data-parallel training of the 64-32-10 digits MLP on N processes (MPI).

    mpiexec -n 2 python examples/mpi_train_digits.py             # 2 CPU processes
    mpiexec -n 4 python examples/mpi_train_digits.py --device cuda   # one GPU per rank
    python examples/mpi_train_digits.py                          # no mpiexec: one process

Every rank loads the whole data set; ``fit(distributed=True)`` gives each rank its
shard of every batch of 64, averages the gradients and applies the same update on
every rank. Rank 0 prints and writes the checkpoint. As root, Open MPI also needs
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; more ranks than cores need
PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe.
"""

from __future__ import annotations

import argparse

import xpnet
from xpnet import callbacks, distributed, nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (each rank takes cuda:{local_rank})")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default="digits-mpi.npz", help="checkpoint written by rank 0")
    args = parser.parse_args()

    world = distributed.init(args.device)  # before building the model: it picks this rank's GPU
    if world.is_root:
        print(f"{world.size} rank(s), gradients through {world.transport}, training on {world.device}")
    xpnet.seed(0)  # repeatable initial weights (fit broadcasts rank 0's to every rank anyway)
    X, y = xpnet.data.load_digits()
    Xtr, Xte, ytr, yte = xpnet.data.train_test_split(X, y, test_size=0.25, seed=0)
    model = nn.Sequential(nn.Linear(64, 32, init="he_normal"), nn.ReLU(), nn.Linear(32, 10))
    history = xpnet.fit(model, "cross_entropy", Xtr, ytr, epochs=args.epochs, batch_size=64,
                        optimizer=xpnet.optim.Adam(model.parameters(), lr=3e-3), validation_data=(Xte, yte),
                        callbacks=[callbacks.ModelCheckpoint(args.out, save_best_only=True)], distributed=True)
    if world.is_root:
        print(f"best val_accuracy {max(history['val_accuracy']):.4f}; checkpoint in {args.out}")


if __name__ == "__main__":
    main()
