"""A user-defined layer, checked the way xpnet checks its own.

``Scale`` multiplies each input feature by a learned factor: ``y = x * gamma``.
Run this file to print its gradient check and backend parity reports; run
``python -m pytest -q`` in this folder for the same checks as tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import xpnet
from xpnet.backend import array_namespace


class Scale(xpnet.nn.Module):
    """``y = x * gamma``, one factor per feature, starting at 1.

    Shapes: x (N, D) -> y (N, D); parameter ``gamma`` (D,).
    """

    def __init__(self, features: int, *, dtype: Any = None, device: Any = None):
        super().__init__()
        self.features = int(features)
        self.params["gamma"] = xpnet.asarray(np.ones(self.features), dtype=dtype, device=device)
        self.zero_grad()
        self._x = None

    def forward(self, x: Any) -> Any:
        self._x = x  # backward needs the input
        return x * self.params["gamma"]

    def backward(self, grad_out: Any) -> Any:
        if self._x is None:
            raise RuntimeError("Scale.backward() called before forward()")
        xp = array_namespace(grad_out)
        self.grads["gamma"] = xp.sum(grad_out * self._x, axis=0)  # overwrite, never accumulate
        return grad_out * self.params["gamma"]

    def _clear_cache(self) -> None:
        self._x = None  # called by model.clear_cache() and model.to(...)

    def get_config(self) -> dict[str, Any]:
        return {"features": self.features}  # lets xpnet.save / xpnet.load rebuild it

    def extra_repr(self) -> str:
        return str(self.features)


if __name__ == "__main__":
    x = np.random.default_rng(0).standard_normal((8, 4))
    layer = Scale(4)
    layer.params["gamma"] = xpnet.asarray([0.5, -1.0, 2.0, 3.0])  # not all ones: a sharper check
    print(xpnet.gradcheck.check_layer(layer, x).raise_if_failed())
    print(xpnet.testing.check_layer_parity(lambda: Scale(4), x))
