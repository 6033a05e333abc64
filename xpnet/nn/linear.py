"""Fully connected layer (``Affine`` in the course exercises)."""

from __future__ import annotations

from typing import Any

from .. import _validate
from .. import functional as F
from .. import init as _init
from ..backend import FLOAT_DTYPES, Device, check_same_device, dtype_name
from ..errors import DtypeMismatchError, ShapeError
from .module import Module, check_gradient_device

__all__ = ["Linear", "Affine"]


class Linear(Module):
    """``y = x @ W + b``.

    Shapes: x (N, in_features) -> y (N, out_features); parameters ``W``
    (in_features, out_features) and ``b`` (out_features,). ``W[:, k]`` is the template
    of output ``k``, as in the course's linear classifiers.

    Args:
        in_features: size of the input (D).
        out_features: size of the output (M).
        bias: whether to add ``b``.
        init: weight initializer: a name from :mod:`xpnet.init` (default
            ``"xavier_uniform"``), a float std (the course's ``weight_scale``), or a
            callable ``f(shape, *, dtype, device, rng)``. Biases start at zero.
        dtype: default ``xpnet.default_dtype()``.
        device: default the current device.
        rng: seed or ``numpy.random.Generator`` for the weights (default xpnet's).
    """

    no_decay = frozenset({"b"})

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: Any = "xavier_uniform",
        *,
        dtype: Any = None,
        device: str | Device | None = None,
        rng: Any = None,
    ):
        super().__init__()
        self.in_features = _validate.integer("Linear", "in_features", in_features, minimum=1)
        self.out_features = _validate.integer("Linear", "out_features", out_features, minimum=1)
        self.bias = _validate.boolean("Linear", "bias", bias)
        self.init = init if isinstance(init, (str, int, float)) else getattr(init, "__name__", "custom")
        shape = (self.in_features, self.out_features)
        weights = _init.get(init)(shape, dtype=dtype, device=device, rng=rng)
        if tuple(getattr(weights, "shape", ())) != shape:
            raise ShapeError(f"Linear: init {self.init!r} returned weights of shape "
                             f"{tuple(getattr(weights, 'shape', ()))}; expected {shape} (in_features, out_features)")
        self.params["W"] = weights
        if bias:
            self.params["b"] = _init.zeros((self.out_features,), dtype=dtype_name(weights.dtype), device=device)
        self.zero_grad()
        self._x = None

    def _name(self) -> str:
        return f"Linear({self.in_features}→{self.out_features})"

    def forward(self, x: Any) -> Any:
        """Shapes: (N, in_features) -> (N, out_features)."""
        W = self.params["W"]
        check_same_device(self._name(), {"input": x, "W": W})
        if x.ndim != 2 or x.shape[1] != self.in_features:
            hint = " (flatten images first with nn.Flatten())" if x.ndim > 2 else ""
            raise ShapeError(
                f"{self._name()} got input of shape {tuple(x.shape)}; expected (N, {self.in_features}){hint}"
            )
        if x.dtype != W.dtype:
            have, want = dtype_name(x.dtype), dtype_name(W.dtype)
            # a model computes in float32 or float64 only: int, bool or uint8 input
            # (raw image bytes) has no model conversion to offer
            other = (f" or the model with model.to(dtype='{have}')" if have in FLOAT_DTYPES
                     else f" (a model computes in {' or '.join(FLOAT_DTYPES)} only, so it cannot take {have})")
            raise DtypeMismatchError(
                f"{self._name()} has {want} parameters but got {have} input; "
                f"convert the input with xpnet.asarray(x, dtype='{want}'){other}"
            )
        self._x = x
        return F.linear(x, W, self.params.get("b"))

    def backward(self, grad_out: Any) -> Any:
        """Shapes: (N, out_features) -> (N, in_features); stores dW, db."""
        self.backward_params(grad_out)
        return F.linear_backward_input(grad_out, self.params["W"])

    def backward_params(self, grad_out: Any) -> None:
        """Stores dW (in_features, out_features) and db (out_features,) only."""
        if self._x is None:
            raise RuntimeError(f"{self._name()}.backward() called before forward()")
        if tuple(grad_out.shape) != (self._x.shape[0], self.out_features):
            raise ShapeError(
                f"{self._name()}.backward got gradient of shape {tuple(grad_out.shape)}; "
                f"expected ({self._x.shape[0]}, {self.out_features})"
            )
        try:
            self.grads["W"], db = F.linear_backward_params(grad_out, self._x)
        except (TypeError, ValueError, RuntimeError):  # RuntimeError: torch, cpu vs cuda
            # Only on failure: a gradient from another backend or device gets the
            # same message as forward's input; anything else is re-raised as it was.
            check_gradient_device(self, grad_out)
            raise
        if self.bias:
            self.grads["b"] = db

    def _clear_cache(self) -> None:
        self._x = None

    def get_config(self) -> dict[str, Any]:
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.bias}

    def extra_repr(self) -> str:
        return f"{self.in_features}→{self.out_features}" + ("" if self.bias else ", bias=False")


Affine = Linear
