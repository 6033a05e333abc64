"""Hyperparameter search for xpnet's scikit-learn MLP on a Dask cluster.

    python examples/dask_search.py                        # a local cluster of 2 processes
    python examples/dask_search.py --scheduler tcp://host:8786   # an existing cluster

scikit-learn's GridSearchCV runs its fits through joblib; inside
``joblib.parallel_backend("dask")`` those fits go to the Dask workers. Every worker
needs xpnet installed (``pip install "xpnet[dask]"``). The result equals the serial
search: each fit is seeded by ``random_state``.
"""

from __future__ import annotations

import argparse

import joblib
from dask.distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV, train_test_split

import xpnet
from xpnet.sklearn import MLPClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    parser.add_argument("--workers", type=int, default=2, help="workers of the local cluster")
    args = parser.parse_args()

    X, y = xpnet.data.load_digits()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0)
    grid = {"hidden_layer_sizes": [(16,), (32,), (64,)], "alpha": [1e-4, 1e-2], "learning_rate_init": [1e-3, 3e-3]}
    search = GridSearchCV(MLPClassifier(max_iter=60, random_state=0), grid, cv=3)

    cluster = None if args.scheduler else LocalCluster(n_workers=args.workers, threads_per_worker=1)
    with Client(args.scheduler or cluster) as client:
        print(f"dashboard: {client.dashboard_link}")
        with joblib.parallel_backend("dask"):
            search.fit(Xtr, ytr)
    if cluster is not None:
        cluster.close()
    print(f"best parameters {search.best_params_}, cv accuracy {search.best_score_:.4f}")
    print(f"test accuracy of the refitted best model: {search.score(Xte, yte):.4f}")


if __name__ == "__main__":
    main()
