"""Layers with hand-written forward and backward passes.

Every layer has ``forward(x)``, ``backward(grad_out) -> grad_in``, ``params`` and
``grads`` (dicts name -> array), ``train()``/``eval()``; models add ``parameters()``,
``zero_grad()``, ``to(device, dtype)``, ``predict(x)``.
"""

from .activations import Flatten, Identity, ReLU, Sigmoid, Softmax, Tanh
from .containers import Sequential
from .dropout import Dropout
from .linear import Affine, Linear
from .module import Module, Parameter

__all__ = [
    "Module",
    "Parameter",
    "Linear",
    "Affine",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Softmax",
    "Identity",
    "Flatten",
    "Dropout",
    "Sequential",
]
