"""Callbacks for :func:`xpnet.fit`: early stopping, checkpointing, LR schedules.

A callback receives the run through :meth:`Callback.set_run` before training and is
called at ``on_train_begin()``, ``on_epoch_end(epoch, logs)`` and
``on_train_end(logs)``. ``logs`` holds the epoch's numbers as Python floats
(``"loss"``, ``"accuracy"``, ``"val_loss"``, ...). Setting ``run.stop_training =
True`` ends training after the current epoch.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from typing import Any

from . import _validate
from .backend import array_namespace

__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler"]


class Callback:
    """Base class; override the hooks you need."""

    run: Any = None

    def set_run(self, run: Any) -> None:
        """Called once before training with the run (``run.model``, ``run.optimizer``,
        ``run.history``, ``run.stop_training``)."""
        self.run = run

    def on_train_begin(self) -> None:
        """Before the first epoch."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """After each epoch (0-based ``epoch``), with that epoch's numbers."""

    def on_train_end(self, logs: dict[str, float]) -> None:
        """After the last epoch, also after early stopping or Ctrl-C."""

    def _check_logs(self, names: frozenset[str], has_validation: bool) -> None:
        """Called by :func:`xpnet.fit` before training with the names every epoch will
        log: raise ``ValueError`` for a name this callback needs and will not get."""


_MODES = ("auto", "min", "max")


def _monitor_name(owner: str, monitor: Any) -> str:
    if not isinstance(monitor, str) or not monitor:
        raise TypeError(f"{owner}: monitor must be a logged name such as 'val_loss', got {monitor!r}")
    return monitor


def _logged_name(name: str) -> str:
    """The name ``fit`` logs for ``name``: metric aliases resolved as ``metrics=``
    resolves them (``"acc"`` and ``"val_acc"`` are ``"accuracy"`` and ``"val_accuracy"``)."""
    from .metrics import get

    prefix = "val_" if name.startswith("val_") else ""
    base = name[len(prefix):]
    if base in ("loss", "lr"):
        return name
    try:
        return prefix + get(base)[0]
    except ValueError:
        return name  # not a metric name: check() lists what the run logs


class _Monitor:
    """Tracks the best value of one logged quantity."""

    def __init__(self, monitor: str, mode: str, min_delta: float, has_validation: bool):
        self.requested = monitor
        monitor = _logged_name(monitor)
        if monitor.startswith("val_") and not has_validation:
            monitor = monitor[len("val_"):]  # no validation data: watch the training number
        if mode == "auto":
            mode = "max" if ("acc" in monitor and "loss" not in monitor) else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(float(min_delta))
        self.best = math.inf if mode == "min" else -math.inf

    def check(self, owner: str, names: frozenset[str]) -> None:
        if self.monitor not in names:
            fallback = (f" (without validation data it watches {self.monitor!r})"
                        if self.requested.startswith("val_") and not self.monitor.startswith("val_") else "")
            raise ValueError(f"{owner}: cannot monitor {self.requested!r}{fallback}: this run logs "
                             f"{sorted(names)} (val_* needs validation_data or validation_split; "
                             f"metrics are added with fit(metrics=[...]))")

    def value(self, logs: dict[str, float]) -> float:
        self.check("callback", frozenset(logs))
        return logs[self.monitor]

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs; with ``restore_best_weights`` the model ends with the weights
    of its best epoch.

    Args:
        monitor: a logged name, default ``"val_loss"`` (falls back to ``"loss"`` when
            there is no validation data).
        patience: epochs without improvement to tolerate.
        min_delta: smallest change that counts as improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracies).
        restore_best_weights: copy the best weights back at the end (also after
            Ctrl-C); ``restored_epoch`` is then the 0-based epoch they come from.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True):
        owner = "EarlyStopping"
        self.monitor_name = _monitor_name(owner, monitor)
        self.patience = _validate.integer(owner, "patience", patience, minimum=0)
        self.min_delta = _validate.real(owner, "min_delta", min_delta, low=0.0)
        self.mode = _validate.choice(owner, "mode", mode, _MODES)
        self.restore_best_weights = _validate.boolean(owner, "restore_best_weights", restore_best_weights)

    def _check_logs(self, names: frozenset[str], has_validation: bool) -> None:
        _Monitor(self.monitor_name, self.mode, self.min_delta, has_validation).check("EarlyStopping", names)

    def on_train_begin(self) -> None:
        self._tracker = _Monitor(self.monitor_name, self.mode, self.min_delta, self.run.has_validation)
        self.wait, self.best_epoch, self._best_state, self.restored_epoch = 0, None, None, None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        value = self._tracker.value(logs)
        if self._tracker.improved(value):
            self._tracker.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_state = {k: array_namespace(v).asarray(v, copy=True)
                                    for k, v in self.run.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.run.stop_training = True
            self.run.history.stopped_early = True

    def on_train_end(self, logs: dict[str, float]) -> None:
        if self.restore_best_weights and self._best_state is not None:
            self.run.model.load_state_dict(self._best_state)
            self.restored_epoch = self.best_epoch  # fit's Ctrl-C message says whose weights the model has

    @property
    def best(self) -> float:
        """The best monitored value seen."""
        return self._tracker.best


class ModelCheckpoint(Callback):
    """Save the model (and optimizer state and history) after each epoch with
    :func:`xpnet.save` (atomic writes: an interrupted save leaves the last file intact).

    Args:
        path: file path; may contain ``{epoch}`` and any logged name, e.g.
            ``"ckpt-{epoch:03d}-{val_loss:.3f}.npz"``. ``{epoch}`` counts from 1 and
            carries on across ``fit`` calls (as :class:`LearningRateScheduler` counts),
            so a second ``fit`` with the same callback writes new files instead of
            overwriting the first ones under the wrong epoch.
        save_best_only: only save when ``monitor`` improves on the best value this
            callback has seen, in this ``fit`` call or an earlier one (Keras' rule).
        monitor: as :class:`EarlyStopping`.
        mode: as :class:`EarlyStopping`.
        save_optimizer: include the optimizer state, and the state of the run's
            :class:`LearningRateScheduler` (the checkpoint's ``schedule_state``), to
            resume training.
        initial_epoch: epochs trained before this callback's first ``fit``: the first
            file is epoch ``initial_epoch + 1``. To resume, pass the ``"epoch"`` that a
            ModelCheckpoint file records in its metadata
            (``xpnet.io.load_checkpoint(path).metadata["epoch"]``).
        initial_value_threshold: with ``save_best_only``, the value to beat before the
            first save (Keras' name), e.g. the ``"best"`` a ``save_best_only`` file
            records in its metadata, so a resumed run does not replace the best file
            with a worse first epoch. ``None``: the first epoch is saved.

    Every file records ``metadata={"epoch": n}`` (the 1-based epoch it holds, counted
    as ``{epoch}`` is); a ``save_best_only`` file also records ``"monitor"`` and
    ``"best"`` (the value that made it the best).

    The folder of ``path`` must exist: ``fit`` checks it before training, and fills
    the path in once with sample values (epoch 1, every logged value 0.0) so that a
    format spec the values do not take (``{epoch:s}``) fails before training too.
    ModelCheckpoint creates no folders: a folder named by ``{epoch}``
    (``"runs/{epoch}/model.npz"``) must exist for each file saved into it, and a
    folder named by a logged value is refused (keep those in the file name). Each file
    holds the learning rate of the next epoch, whatever the order of the callbacks.
    Under ``fit(distributed=True)`` only rank 0 writes (the ranks' models are identical).
    """

    def __init__(self, path: str | os.PathLike[str], save_best_only: bool = False, monitor: str = "val_loss",
                 mode: str = "auto", save_optimizer: bool = True, initial_epoch: int = 0,
                 initial_value_threshold: float | None = None):
        owner = "ModelCheckpoint"
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"{owner}: path must be a str or os.PathLike, got {type(path).__name__} {path!r}")
        self.path = os.fspath(path)
        if not isinstance(self.path, str):
            raise TypeError(f"{owner}: path must be text, got bytes {self.path!r}")
        self._fields = _validate.format_fields(owner, "path", self.path)
        self.save_best_only = _validate.boolean(owner, "save_best_only", save_best_only)
        self.save_optimizer = _validate.boolean(owner, "save_optimizer", save_optimizer)
        self.monitor_name = _monitor_name(owner, monitor)
        self.mode = _validate.choice(owner, "mode", mode, _MODES)
        self.epoch = _validate.integer(owner, "initial_epoch", initial_epoch, minimum=0)  # epochs counted so far
        self.initial_value_threshold = _validate.real(owner, "initial_value_threshold", initial_value_threshold,
                                                      allow_none=True)
        self._tracker: _Monitor | None = None  # made at the first fit and kept: the best seen in every fit
        self.saved: list[str] = []

    def _check_logs(self, names: frozenset[str], has_validation: bool) -> None:
        missing = sorted(self._fields - names - {"epoch"})
        if missing:
            raise ValueError(f"ModelCheckpoint: path {self.path!r} uses {', '.join(missing)}, which this run does "
                             f"not log; it logs epoch, {', '.join(sorted(names))} (val_* needs validation_data "
                             f"or validation_split)")
        if self.save_best_only:
            _Monitor(self.monitor_name, self.mode, 0.0, has_validation).check("ModelCheckpoint", names)
        # Formatted once with values of the kinds each epoch brings (epoch an int, the logs floats), so that a
        # format spec the values do not take fails here rather than after the first epoch.
        try:
            first = self.path.format(**dict.fromkeys(names, 0.0), epoch=self.epoch + 1)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise ValueError(f"ModelCheckpoint: path {self.path!r} cannot be filled in: {type(exc).__name__}: "
                             f"{exc}. Each epoch formats it with epoch (an int counted from 1) and the logged "
                             f"values (floats), e.g. 'ckpt-{{epoch:03d}}-{{val_loss:.3f}}.npz'") from None
        folder = os.path.dirname(self.path)
        if not folder:
            return
        if "{" not in folder:
            if not os.path.isdir(folder):
                raise FileNotFoundError(f"ModelCheckpoint: cannot save to {self.path!r}: folder {folder!r} does "
                                        f"not exist; create it first, e.g. os.makedirs({folder!r}, exist_ok=True)")
            return
        # A folder named by a field changes from file to file, and ModelCheckpoint creates no folders (as
        # for a plain one): each must exist when its file is saved.
        fixed = folder[: folder.index("{")]
        fixed = fixed.rstrip("/" + os.sep) if fixed.endswith(("/", os.sep)) else os.path.dirname(fixed)
        needs = (f"ModelCheckpoint creates no folders, so every folder the fields of {self.path!r} name must "
                 f"exist before a file is saved into it; or keep the fields in the file name, e.g. "
                 f"'ckpt-{{epoch}}.npz'")
        if fixed and not os.path.isdir(fixed):
            raise FileNotFoundError(f"ModelCheckpoint: cannot save to {self.path!r}: folder {fixed!r} does not "
                                    f"exist. {needs}")
        logged = sorted(_validate.format_fields("ModelCheckpoint", "path", folder) - {"epoch"})
        if logged:
            raise ValueError(f"ModelCheckpoint: path {self.path!r} names folders after {', '.join(logged)}, "
                             f"whose values are not known before training, so those folders cannot exist yet. "
                             f"{needs}")
        first_folder = os.path.dirname(first)
        if not os.path.isdir(first_folder):
            raise FileNotFoundError(f"ModelCheckpoint: cannot save epoch {self.epoch + 1} to {first!r}: folder "
                                    f"{first_folder!r} "
                                    f"does not exist. {needs}")

    def on_train_begin(self) -> None:
        tracker = _Monitor(self.monitor_name, self.mode, 0.0, self.run.has_validation)
        # Keep the best of earlier fits unless this run watches another quantity (val_loss in one fit, loss
        # in a fit without validation data): values of different quantities do not compare.
        if self._tracker is None or self._tracker.monitor != tracker.monitor:
            if self._tracker is None and self.initial_value_threshold is not None:
                tracker.best = self.initial_value_threshold
            self._tracker = tracker
        steps = getattr(self.run.optimizer, "t", 0)
        if "epoch" in self._fields and self.epoch == 0 and steps > 0 and getattr(self.run, "rank", 0) == 0:
            warnings.warn(f"ModelCheckpoint: the optimizer has already taken {steps} steps, but this callback "
                          f"names its first file {self.path!r} with epoch 1, over any file an earlier run wrote "
                          f"there; to continue the numbering pass initial_epoch=<epochs trained so far> (a "
                          f"ModelCheckpoint file's metadata['epoch']), or reuse the earlier callback, which "
                          f"counts on", UserWarning, stacklevel=_validate._outside_xpnet())

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        from .io import save

        self.epoch += 1  # counted on every rank and for every epoch, saved or not
        if getattr(self.run, "rank", 0) != 0:  # under MPI the ranks hold the same model: rank 0 writes it
            return
        metadata: dict[str, Any] = {"epoch": self.epoch}
        if self.save_best_only:
            value = self._tracker.value(logs)
            if not self._tracker.improved(value):
                return
            self._tracker.best = value
            metadata.update(monitor=self._tracker.monitor, best=value)
        path = self.path.format(epoch=self.epoch, **logs)
        schedulers = [cb for cb in self.run.callbacks if isinstance(cb, LearningRateScheduler)]
        for cb in schedulers:
            cb._advance(epoch)  # the file holds the next epoch's lr even if the scheduler comes later in the list
        # a schedule object of your own without state_dict() cannot be saved: the file holds the optimizer only
        saveable = [cb for cb in schedulers if not cb._is_object() or hasattr(cb.schedule, "state_dict")]
        resume = self.save_optimizer
        written = save(self.run.model, path, optimizer=self.run.optimizer if resume else None,
                       history=self.run.history, schedule=saveable[0] if resume and saveable else None,
                       metadata=metadata)
        self.saved.append(str(written))

    @property
    def best(self) -> float | None:
        """The best monitored value seen (with ``save_best_only``), across ``fit`` calls;
        ``None`` before the first ``fit``."""
        return None if self._tracker is None else self._tracker.best


class LearningRateScheduler(Callback):
    """Set the learning rate after each epoch.

    Args:
        schedule: an :class:`xpnet.optim.LRSchedule` (e.g. ``ExponentialDecay(opt,
            0.95)``), stepped once per epoch; or a function ``f(epoch, lr) -> lr``
            (Keras' form) called with the number of the next epoch (1 after the
            first), counted by this callback across ``fit`` calls, as a schedule
            object counts its steps.

    :meth:`state_dict` and :meth:`load_state_dict` save and restore that count
    (``ModelCheckpoint`` saves it with the optimizer), so a resumed run continues the
    schedule instead of starting it again.
    """

    def __init__(self, schedule: Any | Callable[[int, float], float]):
        if not callable(schedule) and not (hasattr(schedule, "step") and hasattr(schedule, "lr_at")):
            raise TypeError(f"LearningRateScheduler: schedule must be an xpnet.optim.LRSchedule or a function "
                            f"f(epoch, lr) -> lr, got {type(schedule).__name__} {schedule!r}")
        self.schedule = schedule
        self.t = 0  # epochs stepped by a function schedule (a schedule object keeps its own)
        self._stepped: int | None = None

    def _is_object(self) -> bool:
        return hasattr(self.schedule, "step") and hasattr(self.schedule, "lr_at")

    def on_train_begin(self) -> None:
        self._stepped = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self._advance(epoch)

    def _advance(self, epoch: int) -> None:
        """Step once for ``epoch`` of this run; ModelCheckpoint may ask first."""
        if self._stepped == epoch:
            return
        self._stepped = epoch
        if self._is_object():
            self.schedule.step()
            return
        self.t += 1
        value = self.schedule(self.t, self.run.optimizer.lr)
        try:
            if isinstance(value, (str, bytes, bool)):
                raise TypeError
            lr = float(value)
        except (TypeError, ValueError):
            name = getattr(self.schedule, "__qualname__", type(self.schedule).__name__)
            raise TypeError(f"LearningRateScheduler: the schedule function {name} returned "
                            f"{type(value).__name__} {value!r} for epoch {self.t}; it must return the new "
                            f"learning rate, a number >= 0 (a missing `return`?)") from None
        self.run.optimizer.lr = lr

    def state_dict(self) -> dict[str, Any]:
        """The schedule object's ``state_dict()``, or ``{"type": "function", "t": epochs
        stepped}`` for a function (JSON-serialisable)."""
        if self._is_object():
            return self.schedule.state_dict()
        return {"type": "function", "t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (a checkpoint's ``schedule_state``)."""
        if self._is_object():
            self.schedule.load_state_dict(state)
            return
        owner = "LearningRateScheduler.load_state_dict"
        if not isinstance(state, dict) or state.get("type") != "function":
            kind = state.get("type") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{owner}: this scheduler holds a function, the state is for {kind!r}; "
                             f"build the schedule the checkpoint was trained with")
        self.t = _validate.integer(owner, "t", state.get("t"), minimum=0)
