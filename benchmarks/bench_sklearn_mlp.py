"""xpnet.sklearn's estimators against scikit-learn's own MLP: time to fit the same run.

    python benchmarks/bench_sklearn_mlp.py                      # CPU: xpnet on NumPy
    python benchmarks/bench_sklearn_mlp.py --device cuda --dtype float32

Both fit the same network on the same data with the same random_state (on "cpu" in
float64 they follow the same run to rounding). Rounds are interleaved so a slow
spell of a shared machine hits both alike; the ratio of medians is printed.
"""

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier as SkMLP

from xpnet.sklearn import MLPClassifier

SETTINGS = {
    "adam": dict(solver="adam", hidden_layer_sizes=(256, 128), batch_size=128, max_iter=10),
    "sgd": dict(solver="sgd", hidden_layer_sizes=(256, 128), batch_size=128, max_iter=10),
    "lbfgs": dict(solver="lbfgs", hidden_layer_sizes=(256, 128), max_iter=40),
}


def _time(est, X, y, sync) -> float:
    start = time.perf_counter()
    est.fit(X, y)
    sync(est)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(args.dtype or np.float64)
    warnings.simplefilter("ignore", ConvergenceWarning)

    def sync(est):  # the last parameter read back: the device has finished
        np.asarray(est.coefs_[-1])

    print(f"digits {X.shape}, xpnet device={args.device} dtype={X.dtype}; seconds per fit (median of "
          f"{args.rounds}), interleaved")
    for name, params in SETTINGS.items():
        ours, theirs = [], []
        for _ in range(args.rounds):
            theirs.append(_time(SkMLP(**params, random_state=0), X, y, sync))
            ours.append(_time(MLPClassifier(**params, random_state=0, device=args.device, dtype=args.dtype),
                              X, y, sync))
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{name:6s} scikit-learn {b:7.3f}  xpnet {a:7.3f}  xpnet/scikit-learn {a / b:5.2f}x")


if __name__ == "__main__":
    main()
