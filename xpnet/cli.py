"""Command line: ``python -m xpnet info`` and ``python -m xpnet train digits``."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence

from . import backend as _backend
from .errors import XpnetError

__all__ = ["main", "info_rows"]

_INFO_DEVICES = (
    ("numpy", "cpu"),
    ("cupy", "cuda"),
    ("jax", "jax"),
    ("torch", "torch"),
    ("torch", "torch:cuda"),
    ("array-api-strict", "strict"),
    ("array-api-strict", "strict:device1"),
)


def _smoke(device: _backend.Device) -> str:
    """A tiny forward and backward pass (Linear, ReLU, cross-entropy) on ``device``,
    then training steps of the compiled step ``fit`` would use, as ``fit`` runs them
    (minibatches gathered by index) and as ``compile_step`` does; returns that step's
    strategy (``"numpy"``, ``"jax"``, ``"cuda_graph"``, ``"eager"``), or says why it
    fell back to eager or copies fit's batches in."""
    import numpy as np

    from . import _compile, losses, nn, optim

    with _backend.using(device):
        model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        loss = losses.SoftmaxCrossEntropy()
        x, y = _backend.asarray(np.ones((2, 4))), _backend.asarray(np.array([0, 1]))
        value = loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        if not np.isfinite(float(value)):
            raise FloatingPointError("non-finite loss")
        step = _compile.train_step(model, loss, optim.SGD(model.parameters(), lr=0.1))
        order = np.array([1, 0])
        idx = order if step.host_indices else _backend.asarray(order)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a failed capture's warning: the row says it
            sums = [value * 0]
            for _ in range(2):
                sums, _ = step.accumulate_at(x, y, idx, sums)
            value = step(x, y)
        if not (np.isfinite(float(value)) and np.isfinite(float(sums[0]))):
            raise FloatingPointError("non-finite loss after three compiled steps")
    failed = getattr(step, "capture_error", None)
    if failed:
        plans = getattr(step, "_plans", {}).values()
        if any(isinstance(p, _compile._EagerPlan) or getattr(p, "graph", None) is False for p in plans):
            return f"eager (CUDA graph capture failed ({failed}))"
        return f"{step.strategy} (fit copies each batch in: the capture on the data set failed ({failed}))"
    return step.strategy if step.note is None else f"eager ({step.note})"


def info_rows() -> list[tuple[str, str, str, str, str]]:
    """One row per backend/device: (backend, version or 'not installed', device,
    devices seen, smoke test result)."""
    rows = []
    for label, spec in _INFO_DEVICES:
        impl = _backend._parse(spec)._impl
        if not impl.installed():
            rows.append((label, "not installed", spec, "-", "-"))
            continue
        version = impl.version() or "?"
        try:
            device = _backend.resolve_device(spec)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            # The table is the alternative itself: the errors' "run on the CPU" ending would only repeat it.
            reason = str(exc).replace(f". {_backend._CPU_ALTERNATIVE}", "")
            rows.append((label, version, spec, "-", f"unavailable: {reason}"))
            continue
        try:
            seen = ", ".join(impl.devices())
        except Exception:  # noqa: BLE001
            seen = "?"
        try:
            strategy = _smoke(device)
            result = f"ok: forward/backward ran; compiled step: {strategy}"
        except Exception as exc:  # noqa: BLE001
            result = f"FAILED: {type(exc).__name__}: {exc}"
        rows.append((label, version, device.name, seen, result))
    return rows


def _info(args: argparse.Namespace) -> int:
    from . import __version__

    # Importing a backend can print a banner through `warnings` (CuPy prints 25 lines when
    # two CuPy packages are installed); gathered here, they follow the table instead of
    # landing inside it, one line each: the table's own rows say what to do.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            current = _backend.current_device().name
        except Exception as exc:  # noqa: BLE001
            current = f"invalid XPNET_DEVICE: {exc}"
        rows = [("backend", "version", "device", "devices seen", "smoke test"), *info_rows()]
    print(f"xpnet {__version__}  (Python {sys.version.split()[0]})")
    print(f"default device: {current}, default dtype: {_backend.default_dtype()}")
    widths = [max(len(r[i]) for r in rows[:]) for i in range(4)]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
        if i == 0:
            print("  ".join("-" * w for w in widths) + "  " + "-" * 10)
    notes = dict.fromkeys(_first_line(w) for w in caught)
    if notes:
        print("\nwarnings while probing the backends:")
        for note in notes:
            print(f"  {note}")
    return 0


def _first_line(caught: warnings.WarningMessage) -> str:
    lines = [line.strip(" =*-") for line in str(caught.message).splitlines()]
    text = next((line for line in lines if line), "")
    return f"{caught.category.__name__} from {os.path.basename(caught.filename)}: {text}"


def _load(name: str, data_dir: str | None):
    from . import data

    if name == "digits":
        X, y = data.load_digits()
        return data.train_test_split(X, y, test_size=0.25, seed=0)
    loader = {"mnist": data.load_mnist, "cifar10": data.load_cifar10}[name]
    (Xtr, ytr), (Xte, yte) = loader(data_dir)
    flat = (Xtr.reshape(len(Xtr), -1) / 255.0, Xte.reshape(len(Xte), -1) / 255.0)
    return flat[0], flat[1], ytr, yte


def _train(args: argparse.Namespace) -> int:
    from . import evaluate, fit, losses, nn, optim, random, save

    device = _backend.use(args.device)
    random.seed(args.seed)
    Xtr, Xte, ytr, yte = _load(args.dataset, args.data_dir)
    sizes = [Xtr.shape[1], *args.hidden, int(ytr.max()) + 1]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b, init="he_normal" if i < len(sizes) - 2 else "xavier_uniform"))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    optimizer = (optim.Adam(model.parameters(), lr=args.lr) if args.optimizer == "adam"
                 else optim.SGD(model.parameters(), lr=args.lr, momentum=0.9))
    print(f"training on {device} ({len(Xtr)} train / {len(Xte)} test samples)")
    print(model)
    start = time.perf_counter()
    fit(model, losses.SoftmaxCrossEntropy(), Xtr, ytr, optimizer=optimizer, epochs=args.epochs,
        batch_size=args.batch_size, progress=not args.quiet)
    seconds = time.perf_counter() - start
    result = evaluate(model, "cross_entropy", Xte, yte)
    print(f"test accuracy: {result['accuracy']:.4f}  (test loss {result['loss']:.4f}, trained in {seconds:.1f}s)")
    if args.save:
        print(f"saved to {save(model, args.save, optimizer=optimizer)}")
    return 0


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``, or a message saying so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
        return value

    return parse


_positive_int = _whole_number(1)
_seed = _whole_number(0)


def _save_path(text: str) -> str:
    # Checked before training, as ModelCheckpoint is: a typo must not cost a training run.
    from .io import _save_target

    folder = os.path.dirname(text)
    if folder and not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"cannot save to {text!r}: folder {folder!r} does not exist; create it "
                                         f"first (mkdir -p {folder})")
    try:
        _save_target(text)  # the checks xpnet.save makes: not a folder ("." or "runs/"), ...
    except OSError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


_DESCRIPTION = """\
xpnet: neural-network layers written once against the Array API standard.

  python -m xpnet info                 which backends and devices work on this machine
  python -m xpnet train digits         train a small MLP on scikit-learn's digits
  python -m xpnet train --help         the training options and their defaults
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m xpnet`` and the ``xpnet`` script."""
    parser = argparse.ArgumentParser(
        prog="python -m xpnet", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{info,train}")
    sub.add_parser("info", help="which backends and devices work here", description="Which backends and devices "
                   "work here: versions, devices seen, and a tiny forward/backward pass on each.")
    train = sub.add_parser("train", help="train an MLP and print the test accuracy",
                           description="Train an MLP (ReLU hidden layers, softmax cross-entropy) and print its "
                           "test accuracy.")
    train.add_argument("dataset", choices=["digits", "mnist", "cifar10"],
                       help="digits is bundled with scikit-learn; mnist and cifar10 are downloaded once")
    train.add_argument("--device", default=os.environ.get("XPNET_DEVICE") or "auto",
                       help="cpu, cuda, cuda:N, auto, jax, torch, strict; the environment variable XPNET_DEVICE "
                            "sets the default (default: %(default)s)")
    train.add_argument("--epochs", type=_positive_int, default=20,
                       help="passes over the training set, >= 1 (default: %(default)s)")
    train.add_argument("--hidden", type=_positive_int, nargs="*", default=[32],
                       help="hidden layer sizes; none for a linear classifier (default: 32)")
    train.add_argument("--lr", type=_positive_float, default=3e-3, help="learning rate, > 0 (default: %(default)s)")
    train.add_argument("--batch-size", type=_positive_int, default=32,
                       help="samples per gradient step, >= 1 (default: %(default)s)")
    train.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                       help="adam, or sgd with momentum 0.9 (default: %(default)s)")
    train.add_argument("--seed", type=_seed, default=0,
                       help="seed for the initial weights and the shuffling, >= 0 (default: %(default)s)")
    train.add_argument("--data-dir", default=None, metavar="DIR",
                       help="folder holding mnist/ and cifar10/ (default: $XPNET_DATA_DIR, else ~/.cache/xpnet)")
    train.add_argument("--save", type=_save_path, default=None, metavar="FILE",
                       help="save the trained model to this .npz file (its folder must exist)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    args = parser.parse_args(argv)
    try:
        return _info(args) if args.command == "info" else _train(args)
    except (XpnetError, FileNotFoundError, ConnectionError, ImportError) as exc:
        # What a user can fix (a device, a missing or offline dataset, a missing extra):
        # the message says how, and a traceback would only bury it.
        print(f"error: {exc}", file=sys.stderr)
        return 2
