"""The record of a training run returned by :func:`xpnet.fit`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["History"]


@dataclass
class History:
    """Per-epoch numbers of a training run, as Python floats.

    Attributes:
        history: ``{"loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy":
            [...], "lr": [...]}`` - one entry per completed epoch (keys depend on the
            metrics asked for and whether there was validation data), like Keras'
            ``History.history``.
        epoch_times: wall-clock seconds of each epoch.
        params: the run's settings (``epochs``, ``batch_size``, ...).
        stopped_early: True when an early-stopping callback ended the run.
        interrupted: True when Ctrl-C ended the run (the model keeps its last
            completed update).
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    epoch_times: list[float] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    interrupted: bool = False

    @property
    def epochs(self) -> int:
        """Number of epochs logged; after Ctrl-C this includes the interrupted, partial one
        (``interrupted`` is then True)."""
        return len(self.epoch_times)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def append(self, logs: dict[str, float], seconds: float) -> None:
        """Record one finished epoch's numbers and wall time."""
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        self.epoch_times.append(float(seconds))

    def plot(self, metrics: Any = None, **kwargs: Any) -> Any:
        """Learning curves (train and validation) as a matplotlib Figure; see
        :func:`xpnet.plot.plot_history`."""
        from .plot import plot_history

        return plot_history(self, metrics=metrics, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for saving next to a model)."""
        return {"history": self.history, "epoch_times": self.epoch_times, "params": self.params,
                "stopped_early": self.stopped_early, "interrupted": self.interrupted}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={self.epochs}, last={last})"
