"""Inverted dropout."""

from __future__ import annotations

from typing import Any

from .. import _validate
from .. import random as _random
from ..backend import device_of, dtype_name
from .module import Module, elementwise_backward

__all__ = ["Dropout"]


class Dropout(Module):
    """Zeroes each input with probability ``p`` during training and scales the rest by
    ``1 / (1 - p)``, so evaluation (``model.eval()``) is the identity.

    The mask is drawn on the host from xpnet's seeded generator and moved to the
    input's device, so every backend drops the same units for the same seed.
    Shapes: (...) -> (...).
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = _validate.real("Dropout", "p (the probability of dropping a unit)", p, low=0.0, high=1.0,
                                high_open=True)
        self._mask: Any = None

    def forward(self, x: Any) -> Any:
        if not self.training or self.p == 0.0:
            self._mask = None
            return x
        keep = _random.generator().random(tuple(x.shape)) >= self.p
        scale = (keep / (1.0 - self.p)).astype(dtype_name(x.dtype))
        self._mask = device_of(x).asarray(scale)
        return x * self._mask

    def backward(self, grad_out: Any) -> Any:
        """Shapes: (...) -> (...), the forward input's shape."""
        if self._mask is None:
            return grad_out
        mask = self._mask
        return elementwise_backward(self, grad_out, mask, lambda: grad_out * mask)

    def _clear_cache(self) -> None:
        self._mask = None

    def get_config(self) -> dict[str, Any]:
        return {"p": self.p}

    def extra_repr(self) -> str:
        return f"p={self.p}"
