"""Parameter-free layers: activations, Softmax, Identity and Flatten."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from ..backend import array_namespace
from .module import Module

__all__ = ["ReLU", "Sigmoid", "Tanh", "Softmax", "Identity", "Flatten"]


class _Activation(Module):
    """Caches its input (or output) in forward; backward needs a forward first."""

    def __init__(self) -> None:
        super().__init__()
        self._cache: Any = None

    def _cached(self) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        return self._cache

    def _clear_cache(self) -> None:
        self._cache = None


class ReLU(_Activation):
    """``max(x, 0)``. Shapes: (...) -> (...)."""

    def forward(self, x: Any) -> Any:
        self._cache = x
        return F.relu(x)

    def backward(self, grad_out: Any) -> Any:
        return F.relu_backward(grad_out, self._cached())


class Sigmoid(_Activation):
    """Logistic sigmoid, stable at any input. Shapes: (...) -> (...)."""

    def forward(self, x: Any) -> Any:
        self._cache = F.sigmoid(x)
        return self._cache

    def backward(self, grad_out: Any) -> Any:
        return F.sigmoid_backward(grad_out, self._cached())


class Tanh(_Activation):
    """Hyperbolic tangent. Shapes: (...) -> (...)."""

    def forward(self, x: Any) -> Any:
        self._cache = F.tanh(x)
        return self._cache

    def backward(self, grad_out: Any) -> Any:
        return F.tanh_backward(grad_out, self._cached())


class Softmax(_Activation):
    """Softmax over the last axis. Shapes: (N, K) -> (N, K).

    To train a classifier, end the model with logits and use
    :class:`xpnet.losses.SoftmaxCrossEntropy` (stabler and cheaper); this layer is
    for models that must output probabilities.
    """

    def forward(self, x: Any) -> Any:
        self._cache = F.softmax(x)
        return self._cache

    def backward(self, grad_out: Any) -> Any:
        return F.softmax_backward(grad_out, self._cached())


class Identity(Module):
    """Returns its input unchanged. Shapes: (...) -> (...)."""

    def forward(self, x: Any) -> Any:
        return x

    def backward(self, grad_out: Any) -> Any:
        return grad_out


class Flatten(_Activation):
    """Flattens everything after the batch axis: images (N, H, W, C) -> (N, H*W*C)."""

    def forward(self, x: Any) -> Any:
        self._cache = tuple(x.shape)
        n = x.shape[0]
        return array_namespace(x).reshape(x, (n, -1))

    def backward(self, grad_out: Any) -> Any:
        return array_namespace(grad_out).reshape(grad_out, self._cached())
