"""``fit`` and ``evaluate``: the training loop, short enough to read.

The heart of :func:`fit` is the classic loop::

    for xb, yb in batches:
        out = model.forward(xb)
        loss.forward(out, yb)
        model.backward(loss.backward())
        optimizer.step()

Everything around it keeps the GPU busy: X and y move to the model's device once,
minibatches are gathered there, and the loss and metrics are accumulated as device
arrays and read back once per epoch.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _compile, _validate
from . import backend as _backend
from . import callbacks as _callbacks
from . import distributed as _distributed
from . import losses as _losses
from . import metrics as _metrics
from . import optim as _optim
from . import random as _random
from .backend import array_namespace
from .callbacks import Callback
from .errors import NonFiniteLossError
from .history import History

__all__ = ["fit", "evaluate", "fit_optimizer", "Run"]

#: Callbacks that change nothing a built training step freezes (fit does not look for
#: a new step after them); a subclass may, so the types must match exactly.
_STEP_NEUTRAL_CALLBACKS = (_callbacks.EarlyStopping, _callbacks.ModelCheckpoint, _callbacks.LearningRateScheduler)


@dataclass
class Run:
    """What callbacks see of a training run."""

    model: Any
    loss: Any
    optimizer: Any
    history: History
    has_validation: bool
    stop_training: bool = False
    callbacks: list[Callback] = field(default_factory=list)
    rank: int = 0  # under MPI (fit(distributed=True)) only rank 0 prints and writes files


def _optimizer(optimizer: Any, model: Any) -> Any:
    """The optimizer a ``fit`` call trains with: an object as given; for a name, the
    one an earlier ``fit`` built from that name over the same parameters (kept on the
    model, as a compiled Keras model keeps its optimizer), else a new one."""
    kept = vars(model).get("_fit_optimizer")  # (name, optimizer) of the last fit that took a name
    if isinstance(optimizer, _optim.Optimizer):
        if kept is not None and kept[1] is not optimizer:
            del model._fit_optimizer  # a fit with an optimizer of your own ends the kept one
        return optimizer
    name = "adam" if optimizer is None else optimizer
    if not isinstance(name, str) or name not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be an xpnet.optim.Optimizer, 'adam' or 'sgd', got {optimizer!r}")
    handles = [(id(p.module), p.name) for p in model.parameters()]
    if kept is not None and kept[0] == name and [(id(p.module), p.name) for p in kept[1].params] == handles:
        return kept[1]
    built = _optim.Adam(model.parameters()) if name == "adam" else _optim.SGD(model.parameters(), lr=0.01)
    # An attribute, not a child module or a state_dict entry: save and load ignore it, deepcopy and pickle
    # copy it with the model, and it goes away with the model (a dict keyed by the model would keep it).
    model._fit_optimizer = (name, built)
    return built


def fit_optimizer(model: Any) -> Any:
    """The optimizer that :func:`fit` built for ``model`` from ``optimizer=None``,
    ``"adam"`` or ``"sgd"`` and continues in later ``fit`` calls, or ``None``.

    Use it to change its learning rate between calls (``fit_optimizer(model).lr =
    1e-4``) or to save it (``xpnet.save(model, path, optimizer=fit_optimizer(model))``).
    A ``fit`` with another name, over other parameters (after ``Sequential.append``)
    or with an optimizer object of your own starts a new one or drops it.
    """
    _validate.model("fit_optimizer", model)
    kept = vars(model).get("_fit_optimizer")
    return None if kept is None else kept[1]


def _metric_list(metrics: Sequence[str] | None, loss: Any) -> list[tuple[str, Any]]:
    """``(name, count_fn)`` for each metric, as the loss's ``task`` needs: classification
    losses default to "accuracy" (argmax for "multiclass", every output thresholded for
    "binary"); regression losses (task None) default to none and refuse any."""
    if metrics is None:
        metrics = ("accuracy",) if loss.task else ()
    if isinstance(metrics, str):
        metrics = (metrics,)
    if metrics and loss.task is None:
        raise ValueError(f"metrics {list(metrics)} need class labels; {loss!r} is a regression loss (use metrics=(), "
                         f"or give a Loss subclass whose targets are classes task = 'multiclass' or 'binary')")
    return [_metrics.get(m, task=loss.task) for m in metrics]


def _threshold(loss: Any) -> float:
    return 0.0 if getattr(loss, "from_logits", False) else 0.5


def _to_device(model: Any, X: Any, y: Any, owner: str = "fit") -> tuple[Any, Any]:
    device, dtype = model.device or _backend.current_device(), model.dtype or _backend.default_dtype()
    Xd = _backend.asarray(_validate.as_host(owner, "X", X), dtype=dtype, device=device)
    host_y = _validate.as_host(owner, "y", y, labels=True)
    floating = _backend.dtype_name(host_y.dtype) in _backend.FLOAT_DTYPES
    # bool y (y > 0.5, one-hot from ==) becomes labels or 0/1 once here, not every step
    yd = _losses.numeric_target(_backend.asarray(host_y, dtype=dtype if floating else None, device=device), dtype)
    if Xd.shape[0] != yd.shape[0]:
        raise ValueError(f"{owner}: X has {Xd.shape[0]} samples but y has {yd.shape[0]}")
    return Xd, yd


def _batches(n: int, batch_size: int | None, shuffle: bool, drop_last: bool, device: Any,
             sync: Any = _distributed.LOCAL, host: bool = False) -> Iterator[Any]:
    """Index arrays on the device: a fresh permutation each epoch (one host->device copy
    of n integers per epoch), the last partial batch kept unless ``drop_last``.
    Full-batch training yields ``None`` (the whole set, in any order: no gather).
    Under MPI every rank gets rank 0's permutation and its own shard of each batch.
    ``host=True``: NumPy index arrays instead (for a step that gathers on its own)."""
    if (batch_size is None or (batch_size >= n and not drop_last)) and not sync.sharded:
        yield None
        return
    batch_size = batch_size or n
    if host:
        perm = (sync.same_everywhere(_random.generator().permutation(n)) if shuffle
                else _backend.to_numpy(device.xp.arange(n, device=device.native)))
    elif shuffle:
        perm = device.asarray(sync.same_everywhere(_random.generator().permutation(n)))
    else:
        perm = device.xp.arange(n, device=device.native)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        yield sync.shard(perm[i : min(i + batch_size, stop)])


class _DeferInterrupt:
    """Ctrl-C sets a flag instead of raising, so training stops at a step boundary
    with every parameter updated by the last completed step; a second Ctrl-C raises."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _DeferInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class _Progress:
    """tqdm bar in terminals and notebooks; one plain line per epoch otherwise."""

    def __init__(self, enabled: bool, epochs: int, steps: int):
        self.enabled, self.epochs, self.bar = enabled, epochs, None
        notebook = "ipykernel" in sys.modules
        if enabled and (sys.stderr.isatty() or notebook):
            if notebook and importlib.util.find_spec("ipywidgets") is None:
                # tqdm.auto would warn "IProgress not found. Please update jupyter" (which
                # does not help) and then draw this same text bar
                from tqdm.std import tqdm
            else:
                from tqdm.auto import tqdm

            self.bar = tqdm(total=epochs * steps, unit="step", leave=True, dynamic_ncols=True)

    def begin(self, epoch: int) -> None:
        """Label the bar with the epoch now running (its numbers stay the last epoch's)."""
        if self.bar is not None:
            self.bar.set_description(f"epoch {epoch + 1}/{self.epochs}")

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def note(self, text: str) -> None:
        """One line outside the bar (e.g. why the step runs eagerly)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def epoch(self, epoch: int, logs: dict[str, float], seconds: float) -> None:
        if not self.enabled:
            return
        text = " - ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "lr")
        if self.bar is not None:
            self.bar.set_postfix_str(text)
        else:
            print(f"epoch {epoch + 1}/{self.epochs} - {text} - {seconds:.2f}s", flush=True)

    def close(self, finished: bool = True) -> None:
        """``finished``: the run ended as planned (all epochs, or stopped early by a
        callback), so the bar is shown full; a notebook bar closed short turns red,
        which is right for Ctrl-C only."""
        if self.bar is not None:
            if finished:
                self.bar.total = self.bar.n
                self.bar.refresh()
            self.bar.close()


@contextlib.contextmanager
def _trusted_targets(loss: Any) -> Iterator[None]:
    """Skip the per-step label check (one host read per step) once all labels passed it."""
    previous = loss.validate
    loss.validate = False
    try:
        yield
    finally:
        loss.validate = previous


def _on_model_device(fn: Any) -> Any:
    """Run ``fn(model, ...)`` with the model's device selected, so that arrays created
    along the way (and CuPy's kernels, which follow its current GPU) land with it."""

    @functools.wraps(fn)
    def wrapper(model: Any, *args: Any, **kwargs: Any) -> Any:
        _validate.model(fn.__name__, model)
        with _backend.using(model.device or _backend.current_device()):
            return fn(model, *args, **kwargs)

    return wrapper


@_on_model_device
def fit(
    model: Any,
    loss: Any,
    X: Any,
    y: Any,
    *,
    optimizer: Any = None,
    epochs: int = 10,
    batch_size: int | None = 32,
    shuffle: bool = True,
    drop_last: bool = False,
    validation_data: tuple[Any, Any] | None = None,
    validation_split: float | None = None,
    metrics: Sequence[str] | None = None,
    callbacks: Sequence[Callback] = (),
    seed: int | None = None,
    progress: bool = True,
    compile: bool | str = "auto",
    distributed: bool = False,
) -> History:
    """Train ``model`` on ``(X, y)`` and return a :class:`~xpnet.History`.

    Args:
        model: an :class:`xpnet.nn.Module` (its device and dtype decide where training
            runs).
        loss: an :class:`xpnet.losses.Loss` or a name (``"cross_entropy"``, ``"bce"``,
            ``"mse"``).
        X: inputs (N, ...) as host data or arrays of any backend.
        y: targets: integer labels (N,), one-hot (N, K), or floats for regression.
            Bool works too: (N,) as classes 0/1 (``y > 0.5``), (N, K) as 0/1 values
            (one-hot rows from ``y[:, None] == classes``); see ``losses.numeric_target``.
        optimizer: an :class:`xpnet.optim.Optimizer` over ``model.parameters()``, or
            ``"adam"`` (default, lr 1e-3) / ``"sgd"`` (lr 0.01): built by the first
            ``fit`` and continued (moments, step count, lr) by later ``fit`` calls with
            the same name on the same parameters, so 5 × ``fit(epochs=1)`` trains as
            ``fit(epochs=5)``; :func:`fit_optimizer` returns it.
        epochs: passes over the data.
        batch_size: minibatch size; ``None`` means full-batch gradient descent.
        shuffle: draw a fresh permutation each epoch.
        drop_last: drop the last partial batch (kept by default).
        validation_data: ``(X_val, y_val)`` evaluated after each epoch.
        validation_split: fraction of (X, y), taken from the end before shuffling, to
            hold out for validation (ignored when validation_data is given).
        metrics: names from :mod:`xpnet.metrics` (``"accuracy"``, ``"error"``,
            ``"top5_accuracy"``); default ``("accuracy",)`` for classification losses,
            none for regression losses (``loss.task`` None: MeanSquaredError, PoissonLoss, user losses).
        callbacks: :class:`xpnet.callbacks.Callback` objects.
        seed: reseeds xpnet's generator (shuffling, dropout) for a repeatable run.
        progress: show a progress bar (terminal/notebook) or one line per epoch.
        compile: ``"auto"`` (default) runs a compiled step where the backend has one
            (NumPy: preallocated in-place kernels; JAX: ``jax.jit``; CuPy: a CUDA
            graph) and the model's layers are all known to it, else the eager step with
            a one-line note; ``False`` runs the eager op-by-op step (the readable
            reference); ``True`` is ``"auto"`` that raises instead of falling back.
        distributed: data-parallel training under ``mpiexec -n N`` (see
            :mod:`xpnet.distributed`): every rank passes the same (X, y), each global
            batch is split across ranks, gradients are averaged by shard size, and
            every rank ends with the same parameters; history holds the numbers over
            all ranks; only rank 0 prints and writes checkpoints. Without ``mpiexec``
            it trains in one process.

    Every epoch starts with ``model.train()`` (dropout on in every module, as in Keras);
    validation, ``evaluate`` and ``predict`` run in eval mode and then put each module
    back in the mode it had.

    Returns:
        History with ``history["loss"]``, metrics, ``val_*`` entries and ``"lr"`` per
        epoch, and the wall time of each epoch. Ctrl-C stops at a step boundary and
        returns the history so far (``history.interrupted``).

    Raises:
        TypeError, ValueError: for a setting of the wrong type or range, named, before
            any work is done; ``ShapeError``/``LabelError`` for data that does not fit
            the model or the loss; ``ValueError`` for NaN or infinity in X (or float y).
        NonFiniteLossError: when an epoch's training loss is NaN or infinite (read once
            per epoch, when it is logged anyway): the step diverged.
    """
    _validate.fit_arguments(epochs=epochs, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                            validation_data=validation_data, validation_split=validation_split, metrics=metrics,
                            callbacks=callbacks, seed=seed, progress=progress, distributed=distributed)
    loss = _losses.get(loss)
    optimizer = _optimizer(optimizer, model)
    metric_fns = _metric_list(metrics, loss)
    if seed is not None:
        _random.seed(seed)
    Xd, yd = _to_device(model, X, y)
    if validation_data is None and validation_split:
        n_val = max(1, int(round(Xd.shape[0] * validation_split)))
        validation_data = (Xd[-n_val:, ...], yd[-n_val:, ...])
        Xd, yd = Xd[:-n_val, ...], yd[:-n_val, ...]
    if validation_data is not None:
        validation_data = _to_device(model, *validation_data, "fit (validation_data)")
    _validate.fit_data(model, loss, Xd, yd, validation_data, batch_size=batch_size, drop_last=drop_last,
                       metric_names=[m for m, _ in metric_fns], callbacks=callbacks, optimizer=optimizer)
    n = Xd.shape[0]

    sync = _distributed._fit_sync(distributed, model, n)
    progress = progress and sync.rank == 0
    history = History(params={"epochs": epochs, "batch_size": batch_size, "samples": n,
                              "optimizer": repr(optimizer), "loss": repr(loss)})
    run = Run(model, loss, optimizer, history, validation_data is not None, callbacks=list(callbacks), rank=sync.rank)
    for cb in run.callbacks:
        cb.set_run(run)
        cb.on_train_begin()
    device = _backend.device_of(Xd)
    steps = 1 if batch_size is None else -(-n // batch_size) if not drop_last else n // batch_size
    progress_bar = _Progress(progress, epochs, max(steps, 1))
    threshold = _threshold(loss)
    xp = array_namespace(Xd)
    if sync.sharded:
        # Under MPI every rank runs the eager step inside the seam that averages the
        # gradients (and agrees on faults) before the update.
        if compile is True:
            raise ValueError("fit(distributed=True) under mpiexec runs the eager step; use compile='auto' or False")
        step = _compile.EagerStep(model, loss, optimizer, metrics=metric_fns, threshold=threshold, seam=sync.step)
    else:
        step = _compile.cached_train_step(model, loss, optimizer, compile=compile, metrics=metric_fns,
                                          threshold=threshold)
    # A callback of the user's may change what a built step has frozen (momentum, weight
    # decay, a Dropout rate, the model's layers): after it runs, the step cache's key is
    # looked at again. xpnet's own callbacks change nothing of that (a schedule sets
    # only lr, which every step reads), and the look costs about what a digits step does.
    recheck = not sync.sharded and any(type(cb) not in _STEP_NEUTRAL_CALLBACKS for cb in run.callbacks)
    if step.note:
        progress_bar.note(step.note)
    step.begin()
    history.params["compile"] = step.strategy
    compile_seconds = step.compile_seconds
    earlier_steps_seconds = 0.0
    sum_dtype = device.dtype(model.dtype or _backend.default_dtype())
    # loss * batch size, then each metric's count, as 0-d device arrays; steps never
    # modify these in place, so each epoch starts again from the same zeros
    zeros = [xp.zeros((), dtype=sum_dtype, device=device.native) for _ in range(1 + len(metric_fns))]
    logs: dict[str, float] = {}
    try:
        with _DeferInterrupt() as interrupt, _trusted_targets(loss):
            interrupt = sync.agreed(interrupt)
            for epoch in range(epochs):
                start = time.perf_counter()
                progress_bar.begin(epoch)
                model.train()
                sums = list(zeros)
                seen = 0
                for idx in _batches(n, batch_size, shuffle, drop_last, device, sync, host=step.host_indices):
                    sums, nb = step.accumulate_at(Xd, yd, idx, sums)
                    seen += nb
                    progress_bar.step()
                    if interrupt.requested:
                        break
                total, *counts, seen = sync.sum([*(float(s) for s in sums), seen])
                if seen == 0:
                    break
                logs = {"loss": total / seen}
                if not math.isfinite(logs["loss"]):
                    raise NonFiniteLossError(
                        f"fit: the training loss became {logs['loss']} in epoch {epoch + 1}: training diverged; "
                        f"use a smaller learning rate (now {optimizer.lr:g}) or scale the inputs")
                for (name, _), c in zip(metric_fns, counts, strict=False):
                    rate = c / seen
                    logs[name] = 1.0 - rate if name == "error" else rate
                if validation_data is not None:
                    val = evaluate(model, loss, *validation_data, metrics=[m for m, _ in metric_fns])
                    logs.update({f"val_{k}": v for k, v in val.items()})
                logs["lr"] = optimizer.lr
                seconds = time.perf_counter() - start
                if interrupt.requested:
                    history.interrupted = True
                    history.append(logs, seconds)
                    break
                history.append(logs, seconds)
                progress_bar.epoch(epoch, logs, seconds)
                for cb in run.callbacks:
                    cb.on_epoch_end(epoch, logs)
                if run.stop_training:
                    break
                if recheck:
                    fresh = _compile.cached_train_step(model, loss, optimizer, compile=compile, metrics=metric_fns,
                                                       threshold=threshold)
                    if fresh is not step:
                        earlier_steps_seconds += step.compile_seconds - compile_seconds
                        step, compile_seconds = fresh, fresh.compile_seconds
                        if step.note:
                            progress_bar.note(step.note)
                        step.begin()
    except BaseException as error:
        sync.fail(error)  # under MPI: a fault the other ranks did not hear of ends the job
        raise
    finally:
        history.params["compile_seconds"] = earlier_steps_seconds + step.compile_seconds - compile_seconds
        progress_bar.close(finished=not history.interrupted)
        for cb in run.callbacks:
            cb.on_train_end(logs)
    stoppers = [cb for cb in run.callbacks if isinstance(cb, _callbacks.EarlyStopping)]
    restored = [cb for cb in stoppers if cb.restored_epoch is not None]
    weights = (f"the model has the weights of epoch {restored[-1].restored_epoch + 1} "
               f"({restored[-1].monitor_name} {restored[-1].best:.4g}), restored by EarlyStopping" if restored
               else "the model keeps its last completed update")
    if history.interrupted and sync.rank == 0:
        # whatever `progress` says: in a loop of fits, a run cut short must not pass unnoticed
        print(f"training interrupted during epoch {history.epochs} (its numbers cover the steps it completed); "
              f"{weights}", file=sys.stderr)
    elif history.stopped_early and stoppers and progress:
        stopper = next((cb for cb in stoppers if cb.wait >= cb.patience), stoppers[0])
        print(f"stopped early after epoch {history.epochs}: {stopper.monitor_name} did not improve for "
              f"{stopper.patience} epochs; {weights}", flush=True)
    return history


@_on_model_device
def evaluate(model: Any, loss: Any, X: Any, y: Any, *, batch_size: int | None = 1024,
             metrics: Sequence[str] | None = None) -> dict[str, float]:
    """Loss and metrics of ``model`` on ``(X, y)`` in evaluation mode, in batches (a
    large test set does not exhaust GPU memory).

    Args:
        model: as :func:`fit`.
        loss: as :func:`fit`.
        X: inputs (N, ...).
        y: targets (N,) labels, (N, K) one-hot or floats; bool as in :func:`fit`.
        batch_size: samples per forward pass; ``None``: the whole set in one pass
            (as in ``fit`` and ``predict``).
        metrics: as :func:`fit`.

    Returns:
        ``{"loss": float, "accuracy": float, ...}`` (Python floats).
    """
    _validate.evaluate_arguments(batch_size=batch_size, metrics=metrics)
    loss = _losses.get(loss)
    metric_fns = _metric_list(metrics, loss)
    Xd, yd = _to_device(model, X, y, "evaluate")
    n = Xd.shape[0]
    if n == 0:
        raise ValueError("evaluate got an empty data set")
    modes = model._modes()  # each module's own flag: a Dropout set to eval by hand stays so
    model.eval()
    threshold = _threshold(loss)
    if loss.validate:  # fit checked its validation set once; its per-epoch calls skip this
        _validate.evaluate_data(model, loss, Xd, yd)
    try:
        sums = None
        with _trusted_targets(loss):
            step = n if batch_size is None else batch_size
            for i in range(0, n, step):
                j = min(i + step, n)
                xb, yb = Xd[i:j, ...], yd[i:j, ...]
                out = model.forward(xb)
                batch = [loss.forward(out, yb) * float(xb.shape[0])]
                batch += [fn(yb, out, threshold) for _, fn in metric_fns]
                sums = batch if sums is None else [s + b for s, b in zip(sums, batch, strict=False)]
        total, *counts = (float(s) for s in sums)
    finally:
        model._restore_modes(modes)
    result = {"loss": total / n}
    for (name, _), c in zip(metric_fns, counts, strict=False):
        result[name] = 1.0 - c / n if name == "error" else c / n
    return result
