"""xpnet.distributed: data-parallel fit under ``mpiexec -n 2`` equals a single-process
fit, faults stop every rank, and the pieces (sharding, flat-buffer allreduce, init's
checks) in one process."""

import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import xpnet
from xpnet import distributed, nn

pytest.importorskip("mpi4py", reason='needs the MPI extra: pip install "xpnet[mpi]"')

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "mpi"))
from cases import CASES, EPOCHS, run_case  # noqa: E402

TIMEOUT = 120  # seconds; a hang (the failure these tests guard against) ends here


def _mpiexec() -> str:
    found = shutil.which("mpiexec", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("mpiexec")
    if found is None:
        pytest.skip('mpiexec not found; the Open MPI wheel comes with the MPI extra: pip install "xpnet[mpi]"')
    return found


def _launch(ranks: int, *args: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        # Open MPI refuses to start as root without these (CI containers run as root),
        # and refuses more ranks than cores without the last one (CI has 2 cores).
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
    }
    return subprocess.run([_mpiexec(), "-n", str(ranks), sys.executable, *args], capture_output=True, text=True,
                          timeout=TIMEOUT, env=environment, cwd=HERE)


def _check_against_single_process(out: pathlib.Path, proc: subprocess.CompletedProcess,
                                  ranks: int) -> np.lib.npyio.NpzFile:
    """Every rank's parameters equal, and within 1e-10 of one NumPy process; history too;
    checkpoints and progress lines from rank 0 only."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = np.load(out / "result.npz")
    assert int(result["size"]) == ranks
    for name, case in CASES.items():
        model, history = run_case(case, distributed=False)
        reference = [xpnet.to_numpy(p.value) for p in model.parameters()]
        for rank in range(ranks):
            for i, expected in enumerate(reference):
                got = result[f"{name}/rank{rank}/param{i}"]
                # Every rank applied the same update: identical bits, not merely close.
                np.testing.assert_array_equal(got, result[f"{name}/rank0/param{i}"], err_msg=f"{name} rank {rank}")
                np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=f"{name} param {i}")
        for key, values in history.history.items():
            np.testing.assert_allclose(result[f"{name}/history/{key}"], values, rtol=1e-10, err_msg=f"{name} {key}")
        assert int(result[f"{name}/rank0/saved"]) == EPOCHS
        assert all(int(result[f"{name}/rank{r}/saved"]) == 0 for r in range(1, ranks))
    # Progress lines come from rank 0 only: one per epoch and case.
    assert proc.stdout.count("epoch 1/") == len(CASES), proc.stdout
    return result


def test_two_ranks_equal_one_process_with_and_without_shuffling(tmp_path):
    proc = _launch(2, "mpi/fit_worker.py", str(tmp_path))
    result = _check_against_single_process(tmp_path, proc, 2)
    assert str(result["transport"]) == "mpi"
    # Rank 0 wrote one checkpoint per epoch, atomically (no temporary file left behind).
    assert sorted(p.name for p in tmp_path.glob("*.npz") if p.name != "result.npz") == sorted(
        f"{name}-{e}.npz" for name in CASES for e in range(1, EPOCHS + 1))
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("mode, expected", [
    ("step", "RankFailedError: rank 1 raised ValueError: boom in a step on rank 1"),
    ("callback", "rank 1 of 2 failed; aborting every rank"),
])
def test_a_failing_rank_stops_every_rank(mode, expected):
    start = time.perf_counter()
    proc = _launch(2, "mpi/fault_worker.py", mode)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert expected in output, output
    assert f"boom in a {mode} on rank 1" in output
    assert "finished training" not in output
    assert time.perf_counter() - start < TIMEOUT


def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_step():
    proc = _launch(2, "mpi/fault_worker.py", "interrupt")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for rank in (0, 1):
        assert f"rank {rank} finished training: interrupted=True epochs=1 same_weights=True" in proc.stdout


@pytest.mark.cuda
@pytest.mark.parametrize("transport", ["nccl", "mpi"])
def test_two_gpus_equal_one_process(tmp_path, transport):
    """Needs a machine with at least two CUDA GPUs (one per rank) and CuPy with NCCL."""
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - becomes the skip reason
        pytest.skip(f"needs CuPy and two CUDA GPUs: {exc}")
    if count < 2:
        pytest.skip(f"needs a multi-GPU machine (one GPU per rank); this one has {count}")
    proc = _launch(2, "mpi/fit_worker.py", str(tmp_path), "cuda", transport)
    result = _check_against_single_process(tmp_path, proc, 2)
    assert str(result["transport"]) == transport


# ----------------------------------------------------------------------- one process
def test_without_mpiexec_the_world_is_this_process():
    world = distributed.init()
    rank, size = world
    assert (rank, size) == (0, 1) and world.is_root and world.transport == "none"
    assert distributed.init() is world
    np.testing.assert_array_equal(distributed.shard(np.arange(10)), np.arange(10))


def test_distributed_fit_in_one_process_equals_plain_fit():
    case = CASES["shuffled_adam"]
    plain, h_plain = run_case(case, distributed=False)
    dist, h_dist = run_case(case, distributed=True)
    for a, b in zip(plain.parameters(), dist.parameters(), strict=True):
        np.testing.assert_array_equal(xpnet.to_numpy(a.value), xpnet.to_numpy(b.value))
    assert h_plain["loss"] == h_dist["loss"]


def test_missing_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setattr(distributed, "_WORLD", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r'pip install "xpnet\[mpi\]"'):
        distributed.init()


class FakeComm:
    """A stand-in communicator for ``size`` ranks that all hold this rank's data."""

    def __init__(self, rank=0, size=2, gathered=None):
        self.rank, self.size, self.gathered = rank, size, gathered

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Allreduce(self, sendbuf, recvbuf, op):
        recvbuf *= self.size

    def allgather(self, value):
        return self.gathered if self.gathered is not None else [value] * self.size


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
def test_shards_partition_every_batch(size):
    for n in range(0, 20):
        blocks = [distributed.World(FakeComm(r, size), xpnet.Device("numpy")).bounds(n) for r in range(size)]
        assert blocks[0][0] == 0 and blocks[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:], strict=False))
        assert max(b - a for a, b in blocks) - min(b - a for a, b in blocks) <= 1


def test_mixed_devices_are_an_error_at_init():
    comm = FakeComm(gathered=[("numpy", None, "cpu"), ("cupy", None, "cuda:0")])
    with pytest.raises(ValueError, match="rank 0: cpu, rank 1: cuda:0"):
        distributed._check_same_kind(comm, xpnet.Device("numpy"))


def test_fit_needs_the_same_data_on_every_rank():
    world = distributed.World(FakeComm(gathered=[100, 60]), xpnet.Device("numpy"))
    with pytest.raises(ValueError, match=r"ranks have \[100, 60\] samples"):
        distributed._FitSync(world, nn.Linear(2, 2), 100)


@pytest.mark.parametrize("device", ["cpu", "strict:device1"])
def test_gradients_travel_as_one_weighted_flat_buffer(device):
    """Two ranks with equal gradients and weight 1/2 give those gradients back, on the
    model's device and dtype, from one Allreduce (host-staged for non-NumPy arrays)."""
    calls = []

    class CountingComm(FakeComm):
        def Allreduce(self, sendbuf, recvbuf, op):
            calls.append(recvbuf.size)
            super().Allreduce(sendbuf, recvbuf, op)

    with xpnet.using(device, dtype="float64"):
        xpnet.seed(0)
        model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
        out = model.forward(xpnet.asarray(np.random.default_rng(1).normal(size=(6, 5))))
        model.backward_params(xpnet.asarray(np.ones(tuple(out.shape))))
    before = [xpnet.to_numpy(p.grad).copy() for p in model.parameters()]
    world = distributed.World(CountingComm(), xpnet.backend.resolve_device(device))
    world._transport = distributed._HostTransport(world.comm)
    status = distributed._allreduce(world, model, 0.5, (1.0, 0.0))
    assert calls == [model.num_parameters() + 2]
    np.testing.assert_array_equal(status, [2.0, 0.0])
    for p, expected in zip(model.parameters(), before, strict=True):
        assert xpnet.device_of(p.grad) == model.device and p.grad.dtype == p.value.dtype
        np.testing.assert_array_equal(xpnet.to_numpy(p.grad), expected)
    distributed._allreduce(world, model, 0.0, ())  # an empty shard: zeros, whatever was stored
    assert all(not xpnet.to_numpy(p.grad).any() for p in model.parameters())


# ------------------------------------------------------------------ Dask search
def _digits(n=450):
    X, y = xpnet.data.load_digits()
    return np.asarray(X[:n], dtype=np.float64), np.asarray(y[:n])


def _searches():
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    from xpnet.sklearn import MLPClassifier, MLPRegressor

    base = {"max_iter": 12, "batch_size": 64, "random_state": 0, "learning_rate_init": 3e-3}
    grid = GridSearchCV(MLPClassifier(**base), {"hidden_layer_sizes": [(8,), (32,)], "alpha": [1e-4, 1.0]}, cv=3)
    randomized = RandomizedSearchCV(MLPRegressor(**base), {"hidden_layer_sizes": [(4,), (16,), (32,)],
                                                           "learning_rate_init": [1e-3, 3e-3, 1e-2]},
                                    n_iter=3, cv=2, random_state=0)
    return grid, randomized


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_search_on_a_dask_cluster_equals_the_serial_search():
    pytest.importorskip("sklearn")
    distributed_ = pytest.importorskip("dask.distributed", reason='needs the Dask extra: pip install "xpnet[dask]"')
    import joblib

    X, y = _digits()
    targets = {"grid": y, "randomized": X[:, :8].mean(axis=1)}
    serial = dict(zip(targets, _searches(), strict=True))
    for name, search in serial.items():
        search.fit(X, targets[name])
    on_dask = dict(zip(targets, _searches(), strict=True))
    with distributed_.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed_.Client(cluster) as client:
        with joblib.parallel_backend("dask"):
            for name, search in on_dask.items():
                search.fit(X, targets[name])
        # A fitted estimator crosses to a worker process and predicts there as here.
        model = serial["grid"].best_estimator_
        remote = client.submit(lambda est, data: est.predict_proba(data), model, X[:50]).result()
        pids = set(client.run(os.getpid).values())
    assert os.getpid() not in pids and len(pids) == 2
    np.testing.assert_array_equal(remote, model.predict_proba(X[:50]))
    # What crosses is parameters (and their copies: coefs_, optimizer moments), not a
    # cached batch: 8 bytes x 5 copies per parameter plus room for the Python objects.
    import pickle

    n_parameters = sum(a.size for a in model.coefs_ + model.intercepts_)
    assert len(pickle.dumps(model)) < 8 * 5 * n_parameters + 50_000
    for name in targets:
        assert on_dask[name].best_params_ == serial[name].best_params_
        np.testing.assert_allclose(on_dask[name].cv_results_["mean_test_score"],
                                   serial[name].cv_results_["mean_test_score"], rtol=1e-12)


@pytest.mark.cuda
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_gpu_trained_estimator_predicts_on_a_cpu_only_dask_worker():
    """Needs a CUDA GPU here; the worker hides it (CUDA_VISIBLE_DEVICES="")."""
    if not xpnet.gpu_available():
        pytest.skip("needs a CUDA GPU to train on")
    distributed_ = pytest.importorskip("dask.distributed")
    from xpnet.sklearn import MLPClassifier

    X, y = _digits()
    clf = MLPClassifier((32,), max_iter=5, random_state=0, device="cuda").fit(X, y)
    with distributed_.LocalCluster(n_workers=1, processes=True, dashboard_address=None,
                                   env={"CUDA_VISIBLE_DEVICES": "", "XPNET_DEVICE": "cpu"}) as cluster, \
            distributed_.Client(cluster) as client:
        remote = client.submit(lambda est, data: est.predict_proba(data), clf, X[:50]).result()
    np.testing.assert_allclose(remote, clf.predict_proba(X[:50]), rtol=1e-10)


@pytest.mark.parametrize("device", ["cpu", "strict:device1"])
def test_the_nccl_transport_packs_on_the_device(device):
    """The NCCL path's device-side packing and unpacking, against a stand-in for
    cupyx's communicator (the real one needs two GPUs: test_two_gpus_equal_one_process)."""

    class FakeNccl:
        def all_reduce(self, in_array, out_array, op):
            assert in_array is out_array and op == "sum"
            out_array *= 2.0

        def broadcast(self, array, root):
            assert root == 0

    with xpnet.using(device, dtype="float64"):
        xpnet.seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        model.forward(xpnet.asarray(np.random.default_rng(1).normal(size=(5, 3))))
        model.backward_params(xpnet.asarray(np.ones((5, 2))))
    before = [xpnet.to_numpy(p.grad).copy() for p in model.parameters()]
    transport = distributed._NcclTransport.__new__(distributed._NcclTransport)
    transport.comm = FakeNccl()
    world = distributed.World(FakeComm(), model.device)
    world._transport = transport
    status = distributed._allreduce(world, model, 0.25, (1.0, 0.0))
    np.testing.assert_array_equal(status, [2.0, 0.0])
    for p, expected in zip(model.parameters(), before, strict=True):
        assert xpnet.device_of(p.grad) == model.device
        np.testing.assert_array_equal(xpnet.to_numpy(p.grad), expected * 0.5)
    values = [xpnet.to_numpy(p.value).copy() for p in model.parameters()]
    distributed._broadcast(world, model, 0)
    for p, expected in zip(model.parameters(), values, strict=True):
        np.testing.assert_array_equal(xpnet.to_numpy(p.value), expected)
