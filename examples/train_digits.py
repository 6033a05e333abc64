"""Train a 64-32-10 ReLU MLP on scikit-learn's digits, save it, reload it, plot it.

    python train_digits.py                    # GPU if one answers, else CPU
    python train_digits.py --device cpu       # or cuda, cuda:1, jax, torch, strict
    python train_digits.py --out runs/digits  # keep the model and figure (default: a temp folder)

The model (digits.npz) and the learning curves (digits_curves.png) go to the system's
temporary folder unless --out says otherwise, so running an example leaves nothing
behind in the repository; the script prints where they are.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import xpnet
from xpnet import nn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, auto, jax, torch, strict (default auto)")
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training set (default 30)")
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "xpnet-examples" / "digits"),
                        help="prefix of the saved model and figure (default: %(default)s)")
    args = parser.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)

    device = xpnet.use(args.device)
    xpnet.seed(0)
    X, y = xpnet.data.load_digits()
    Xtr, Xte, ytr, yte = xpnet.data.train_test_split(X, y, test_size=0.25, seed=0)

    model = nn.Sequential(nn.Linear(64, 32, init="he_normal"), nn.ReLU(), nn.Linear(32, 10))
    print(f"training on {device}")
    print(model)
    history = xpnet.fit(model, "cross_entropy", Xtr, ytr, epochs=args.epochs, batch_size=32,
                        optimizer=xpnet.optim.Adam(model.parameters(), lr=3e-3),
                        validation_data=(Xte, yte), progress=False)
    result = xpnet.evaluate(model, "cross_entropy", Xte, yte)
    print(f"test accuracy: {result['accuracy']:.4f}  (test loss {result['loss']:.4f})")

    path = xpnet.save(model, f"{args.out}.npz", history=history)
    reloaded = xpnet.load(path)
    same = np.array_equal(xpnet.to_numpy(model.predict(Xte)), xpnet.to_numpy(reloaded.predict(Xte)))
    print(f"saved to {path}; reloaded model gives identical outputs: {same}")
    if not same:
        raise SystemExit("reloaded model differs from the trained one")

    figure = history.plot(title=f"digits MLP on {device}")
    figure.savefig(f"{args.out}_curves.png", dpi=100)
    print(f"learning curves in {args.out}_curves.png")


if __name__ == "__main__":
    main()
