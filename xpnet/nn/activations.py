"""Parameter-free layers: activations, Softmax, Identity and Flatten."""

from __future__ import annotations

import math
from typing import Any

from .. import functional as F
from ..backend import array_namespace
from .module import Module, elementwise_backward

__all__ = ["ReLU", "Sigmoid", "Tanh", "Softmax", "Identity", "Flatten"]


class _Activation(Module):
    """Caches its input (or output) in forward; backward needs a forward first.

    Subclasses implement ``_backward(grad_out, cache)``; :meth:`backward` first makes
    sure the gradient lives with the cache, so a gradient from another backend or
    device is a :class:`~xpnet.errors.DeviceMismatchError` naming the layer instead
    of an array of the wrong backend handed on (NumPy * torch "works") or a bare
    TypeError from deep inside the backend.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cache: Any = None

    def _cached(self) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        return self._cache

    def _clear_cache(self) -> None:
        self._cache = None

    def backward(self, grad_out: Any) -> Any:
        """Shapes: the gradient w.r.t. the output (...) -> w.r.t. the input (...)."""
        cache = self._cached()
        return elementwise_backward(self, grad_out, cache, lambda: self._backward(grad_out, cache))

    def _backward(self, grad_out: Any, cache: Any) -> Any:
        raise NotImplementedError


class ReLU(_Activation):
    """``max(x, 0)``. Shapes: (...) -> (...)."""

    def forward(self, x: Any) -> Any:
        self._cache = x
        return F.relu(x)

    def _backward(self, grad_out: Any, cache: Any) -> Any:
        return F.relu_backward(grad_out, cache)


class Sigmoid(_Activation):
    """Logistic sigmoid, stable at any input. Shapes: (...) -> (...)."""

    def forward(self, x: Any) -> Any:
        self._cache = F.sigmoid(x)
        return self._cache

    def _backward(self, grad_out: Any, cache: Any) -> Any:
        return F.sigmoid_backward(grad_out, cache)


class Tanh(_Activation):
    """Hyperbolic tangent. Shapes: (...) -> (...)."""

    def forward(self, x: Any) -> Any:
        self._cache = F.tanh(x)
        return self._cache

    def _backward(self, grad_out: Any, cache: Any) -> Any:
        return F.tanh_backward(grad_out, cache)


class Softmax(_Activation):
    """Softmax over the last axis. Shapes: (N, K) -> (N, K).

    To train a classifier, end the model with logits and use
    :class:`xpnet.losses.SoftmaxCrossEntropy` (stabler and cheaper); this layer is
    for models that must output probabilities.
    """

    def forward(self, x: Any) -> Any:
        self._cache = F.softmax(x)
        return self._cache

    def _backward(self, grad_out: Any, cache: Any) -> Any:
        return F.softmax_backward(grad_out, cache)


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
        # an explicit width: reshape(x, (0, -1)) of an empty batch is ambiguous and fails
        return array_namespace(x).reshape(x, (x.shape[0], math.prod(x.shape[1:])))

    def backward(self, grad_out: Any) -> Any:
        """Shapes: (N, H*W*C) -> (N, H, W, C), the forward input's shape."""
        return array_namespace(grad_out).reshape(grad_out, self._cached())
