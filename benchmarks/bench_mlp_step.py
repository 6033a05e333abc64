"""One SGD training step of a 784-256-128-10 ReLU MLP, against the bare GEMM time.

The reference is the 8 matrix products a step cannot avoid (3 forward, 3 weight
gradients, 2 input gradients), timed in the same run on the same arrays. Every
contender prints its time as a ratio to that reference, so the numbers mean the
same on a noisy shared machine. Contenders: xpnet (the public layers, loss and
optimizer), careful hand-written NumPy, and PyTorch eager when installed.

    python benchmarks/bench_mlp_step.py [--batch 128] [--device cpu] [--repeat 30]
"""

from __future__ import annotations

import os

# PyTorch's OpenMP threads spin for a while after each parallel region; interleaved
# with NumPy's BLAS on 2 cores that spinning slows whichever contender runs next.
# Passive waiting makes the round-robin comparison fair to everyone.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import xpnet  # noqa: E402
from xpnet import losses, nn, optim  # noqa: E402

SIZES = (784, 256, 128, 10)


def _interleaved(contenders: dict, sync, repeat: int, inner: int) -> tuple[dict, dict]:
    """Time every contender once per round, round-robin, so a slow spell of the shared
    machine hits all of them alike; return median seconds and median per-round ratio
    to the ``"gemm"`` reference."""
    for fn in contenders.values():
        for _ in range(3):
            fn()
    sync()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, fn in contenders.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            sync()
            samples[name].append((time.perf_counter() - start) / inner)
    seconds = {k: statistics.median(v) for k, v in samples.items()}
    ratios = {k: statistics.median(a / b for a, b in zip(v, samples["gemm"], strict=True)) for k, v in samples.items()}
    return seconds, ratios


def bench(batch: int, device: str, repeat: int, inner: int, with_torch: bool = True) -> tuple[dict, dict]:
    dev = xpnet.use(device)
    xp = dev.xp
    rng = np.random.default_rng(0)
    X = rng.random((batch, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    Ws = [rng.standard_normal((a, b)).astype(np.float32) * 0.05 for a, b in zip(SIZES[:-1], SIZES[1:], strict=True)]
    x_d, y_d = xpnet.asarray(X), xpnet.asarray(y)
    W_d = [xpnet.asarray(w) for w in Ws]
    acts = [x_d, xp.matmul(x_d, W_d[0]), xp.matmul(xp.matmul(x_d, W_d[0]), W_d[1])]
    grads = [xp.ones((batch, b), dtype=xp.float32, device=dev.native) for b in SIZES[1:]]

    def gemms():
        for i, W in enumerate(W_d):  # forward
            xp.matmul(acts[i], W)
        for i in range(3):  # weight gradients
            xp.matmul(xp.matrix_transpose(acts[i]), grads[i])
        for i in (1, 2):  # input gradients (not needed for the first layer)
            xp.matmul(grads[i], xp.matrix_transpose(W_d[i]))

    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    loss = losses.SoftmaxCrossEntropy(validate=False)
    opt = optim.SGD(model.parameters(), lr=0.01)

    def xpnet_step():  # the step xpnet.fit runs
        out = model.forward(x_d)
        loss.forward(out, y_d)
        model.backward_params(loss.backward())
        opt.step()

    contenders = {"gemm": gemms, "xpnet": xpnet_step}

    if dev.backend == "numpy":
        W1, W2, W3 = (w.copy() for w in Ws)
        b1, b2, b3 = (np.zeros(n, np.float32) for n in SIZES[1:])
        onehot = np.eye(10, dtype=np.float32)[y]

        def numpy_step():
            nonlocal W1, W2, W3, b1, b2, b3
            h1 = X @ W1 + b1
            np.maximum(h1, 0, out=h1)
            h2 = h1 @ W2 + b2
            np.maximum(h2, 0, out=h2)
            z = h2 @ W3 + b3
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
            dz = (z - onehot) / batch
            dh2 = dz @ W3.T
            dh2 *= h2 > 0
            dh1 = dh2 @ W2.T
            dh1 *= h1 > 0
            W3 -= 0.01 * (h2.T @ dz)
            b3 -= 0.01 * dz.sum(0)
            W2 -= 0.01 * (h1.T @ dh2)
            b2 -= 0.01 * dh2.sum(0)
            W1 -= 0.01 * (X.T @ dh1)
            b1 -= 0.01 * dh1.sum(0)

        contenders["numpy_handwritten"] = numpy_step

    try:
        import torch
    except ImportError:
        torch = None
    if not with_torch:
        torch = None
    if torch is not None and dev.backend in ("numpy", "cupy"):
        tdev = "cuda" if dev.backend == "cupy" else "cpu"
        tnet = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                   torch.nn.ReLU(), torch.nn.Linear(128, 10)).to(tdev)
        topt = torch.optim.SGD(tnet.parameters(), lr=0.01)
        tx, ty = torch.as_tensor(X, device=tdev), torch.as_tensor(y, device=tdev)
        tloss = torch.nn.CrossEntropyLoss()

        def torch_step():
            topt.zero_grad(set_to_none=True)
            tloss(tnet(tx), ty).backward()
            topt.step()

        if tdev == "cuda":
            contenders["torch_eager"] = lambda: (torch_step(), torch.cuda.synchronize())
        else:
            contenders["torch_eager"] = torch_step
    return _interleaved(contenders, dev.synchronize, repeat, inner)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--inner", type=int, default=10)
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    seconds, ratios = bench(args.batch, args.device, args.repeat, args.inner, with_torch=not args.no_torch)
    machine = f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".strip()
    print(f"MLP 784-256-128-10, batch {args.batch}, float32, device {args.device}, {machine}")
    print(f"numpy {np.__version__}, xpnet {xpnet.__version__}")
    print("  (median of per-round ratios; contenders interleaved round-robin)")
    for name in seconds:
        print(f"  {name:<18} {seconds[name] * 1e3:8.3f} ms/step   {ratios[name]:5.2f}x bare GEMM")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"batch": args.batch, "device": args.device, "machine": machine, "seconds": seconds,
                       "ratio_to_gemm": ratios}, fh, indent=2)


if __name__ == "__main__":
    main()
