"""Where data parallelism pays for the course MLPs: compute per step against the
gradient allreduce, measured with 1 and 2 MPI ranks, extrapolated to N GPUs.

    python benchmarks/bench_distributed.py            # launches mpiexec -n 1 and -n 2 itself
    python benchmarks/bench_distributed.py --out benchmarks/results/distributed_cpu.txt

Each rank runs NumPy with one BLAS thread, so 1 rank against 2 ranks is one core
against two. Measured per MLP and global batch B (float32, SGD):

- ``compute``: forward, backward and update of one rank's shard (B on 1 rank, B/2 on 2);
- ``allreduce``: ``xpnet.distributed.allreduce_gradients`` alone (one flat buffer);
- ``step``: the data-parallel step (compute + allreduce), as ``fit(distributed=True)`` runs it.

The model printed at the end: a ring allreduce of S bytes over N ranks costs
``2 (N - 1) (alpha + S / (N beta))``; data parallelism at a fixed global batch pays
when ``t_compute(B) (1 - 1/N) > t_allreduce(N)``. alpha and beta for NVLink and a
100 Gb/s network are stated assumptions (no GPU or cluster was measured here).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

MLPS = {"784-256-128-10": (784, 256, 128, 10), "64-32-10": (64, 32, 10)}
BATCHES = (64, 512)
# Assumed link parameters: per-message latency alpha (s) and bandwidth beta (bytes/s).
# NVLink: NCCL's small-message allreduce latency is tens of microseconds, its bus
# bandwidth on A100/H100 NVLink 150-350 GB/s; 100 Gb/s: 12.5 GB/s line rate, RDMA latency.
LINKS = {"NVLink (alpha 5 us, beta 150 GB/s)": (5e-6, 150e9),
         "100 Gb/s network (alpha 15 us, beta 11 GB/s)": (15e-6, 11e9)}


def _ring_allreduce(nbytes: float, n: int, alpha: float, beta: float) -> float:
    return 2 * (n - 1) * (alpha + nbytes / (n * beta)) if n > 1 else 0.0


def worker(repeat: int) -> None:
    """Runs under mpiexec: times compute, allreduce and step on every rank; rank 0
    prints one JSON line."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    import xpnet
    from xpnet import distributed, losses, nn, optim

    world = distributed.init("cpu")
    rows = []
    for name, sizes in MLPS.items():
        for batch in BATCHES:
            xpnet.seed(0)
            layers: list = []
            for i in range(len(sizes) - 1):
                layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
            model = nn.Sequential(*layers[:-1])
            loss, opt = losses.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.01)
            rng = np.random.default_rng(0)
            X = world.shard(rng.normal(size=(batch, sizes[0])).astype(np.float32))
            y = world.shard(rng.integers(0, sizes[-1], size=batch))
            weight = X.shape[0] / batch

            def compute(model=model, loss=loss, opt=opt, X=X, y=y):
                loss.forward(model.forward(X), y)
                model.backward_params(loss.backward())
                opt.step()

            def allreduce(model=model, weight=weight):
                distributed.allreduce_gradients(model, weight=weight)

            def step(model=model, loss=loss, opt=opt, X=X, y=y, weight=weight):
                loss.forward(model.forward(X), y)
                model.backward_params(loss.backward())
                distributed.allreduce_gradients(model, weight=weight)
                opt.step()

            contenders = {"compute": compute, "allreduce": allreduce, "step": step}
            samples: dict[str, list[float]] = {k: [] for k in contenders}
            for fn in contenders.values():
                fn()
            inner = 20
            for _ in range(repeat):  # round-robin: a slow spell of the machine hits all three
                for key, fn in contenders.items():
                    world.comm.Barrier()
                    start = time.perf_counter()
                    for _ in range(inner):
                        fn()
                    samples[key].append((time.perf_counter() - start) / inner)
            gathered = world.comm.gather(samples, root=0)
            if world.is_root:
                row = {"mlp": name, "batch": batch, "ranks": world.size,
                       "params": model.num_parameters(), "bytes": 4 * model.num_parameters()}
                for key in contenders:
                    slowest = [max(per_rank[key][i] for per_rank in gathered) for i in range(repeat)]
                    q = statistics.quantiles(slowest, n=4)
                    row[key] = {"median": statistics.median(slowest), "p25": q[0], "p75": q[2], "min": min(slowest)}
                rows.append(row)
    if world.is_root:
        print("RESULT " + json.dumps(rows), flush=True)


def _launch(ranks: int, repeat: int) -> list[dict]:
    mpiexec = shutil.which("mpiexec", path=str(pathlib.Path(sys.executable).parent)) or shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit('mpiexec not found: pip install "xpnet[mpi]"')
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe"}
    proc = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, __file__, "--worker", "--repeat", str(repeat)],
                          capture_output=True, text=True, env=env, timeout=600, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"mpiexec -n {ranks} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[0][len("RESULT "):])


def sizes_order(rows: list[dict]) -> list[str]:
    """MLP names from the smallest gradient to the largest."""
    return [r["mlp"] for r in sorted({r["mlp"]: r for r in rows}.values(), key=lambda r: r["bytes"])]


def report(one: list[dict], two: list[dict]) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out = [f"# bench_distributed.py on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
           f"load average {load:.1f} at the end; NumPy {np.__version__}, 1 BLAS thread per rank",
           "# times in microseconds per step: median [p25, p75] and min over rounds (slowest rank per round)", ""]
    out.append(f"{'MLP':15} {'B':>4} {'grad KB':>8} | {'1 rank step':>26} | {'2 ranks compute':>26} "
               f"{'allreduce':>26} {'step':>26} | speedup")
    for a, b in zip(one, two, strict=True):
        def cell(r, k):
            return f"{r[k]['median'] * 1e6:.0f} [{r[k]['p25'] * 1e6:.0f}, {r[k]['p75'] * 1e6:.0f}] {r[k]['min'] * 1e6:.0f}"
        out.append(f"{a['mlp']:15} {a['batch']:>4} {a['bytes'] / 1024:8.1f} | {cell(a, 'compute'):>26} | "
                   f"{cell(b, 'compute'):>26} {cell(b, 'allreduce'):>26} {cell(b, 'step'):>26} | "
                   f"{a['compute']['median'] / b['step']['median']:.2f}x")
    small, big = (min((r for r in two if r["mlp"] == m), key=lambda r: r["allreduce"]["min"]) for m in sizes_order(two))
    beta = (big["bytes"] - small["bytes"]) / max(big["allreduce"]["min"] - small["allreduce"]["min"], 1e-9)
    alpha = max(small["allreduce"]["min"] - small["bytes"] / beta, 0.0) / 2
    out += ["", f"# MPI over shared memory here, fitted to the fastest allreduce of each size (2 ranks): "
                f"alpha {alpha * 1e6:.1f} us, beta {beta / 1e9:.2f} GB/s"]
    out += ["", "# Model: t_allreduce(N) = 2 (N-1) (alpha + S / (N beta)), S = gradient bytes (float32).",
            "# Break-even: data parallelism at a fixed global batch pays when the one-GPU compute per step",
            "# exceeds t_allreduce(N) / (1 - 1/N); with the global batch growing with N (B per GPU), the",
            "# efficiency is t_step / (t_step + t_allreduce(N))."]
    sizes = {r["mlp"]: r["bytes"] for r in one}
    for link, (alpha, beta) in LINKS.items():
        out.append(f"\n{link}")
        out.append(f"{'MLP':15} {'N':>3} {'t_allreduce us':>15} {'break-even compute/step us':>27}")
        for mlp, nbytes in sizes.items():
            for n in (2, 4, 8, 16):
                t = _ring_allreduce(nbytes, n, alpha, beta)
                out.append(f"{mlp:15} {n:>3} {t * 1e6:15.1f} {t / (1 - 1 / n) * 1e6:27.1f}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=15, help="timing rounds per contender")
    parser.add_argument("--out", default=None, help="also write the report to this file")
    args = parser.parse_args()
    if args.worker:
        worker(args.repeat)
        return
    text = report(_launch(1, args.repeat), _launch(2, args.repeat))
    print(text)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
