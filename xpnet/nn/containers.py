"""Sequential: layers applied one after another."""

from __future__ import annotations

from typing import Any

from .module import Module, check_gradient_device

__all__ = ["Sequential"]


class Sequential(Module):
    """Chain of layers: ``forward`` runs them in order, ``backward`` in reverse.

    Like PyTorch's ``nn.Sequential``: ``model[0]`` is the first layer, ``len(model)``
    the number of layers, parameters are named ``"0.W"``, ``"0.b"``, ...
    """

    def __init__(self, *layers: Module):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential layer {i} is a {type(layer).__name__}, not an xpnet.nn.Module")
        self.layers: list[Module] = list(layers)

    def children(self) -> list[Module]:
        return self.layers

    def forward(self, x: Any) -> Any:
        """Shapes: the first layer's input -> the last layer's output."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: Any) -> Any:
        """Back-propagates through every layer; returns the gradient w.r.t. the input."""
        try:
            for layer in reversed(self.layers):
                grad_out = layer.backward(grad_out)
        except (TypeError, ValueError, RuntimeError):  # RuntimeError: torch, cpu vs cuda
            if self.layers:
                check_gradient_device(self.layers[-1], grad_out)
            raise
        return grad_out

    def backward_params(self, grad_out: Any) -> None:
        """Back-propagate for training: layers before the first one with parameters are
        skipped, and that one computes only its parameter gradients."""
        first = next((i for i, layer in enumerate(self.layers) if any(m.params for m in layer.modules())), None)
        if first is None:
            return
        try:
            for layer in reversed(self.layers[first + 1 :]):
                grad_out = layer.backward(grad_out)
            self.layers[first].backward_params(grad_out)
        except (TypeError, ValueError, RuntimeError):  # RuntimeError: torch, cpu vs cuda
            check_gradient_device(self.layers[-1], grad_out)
            raise

    def append(self, layer: Module) -> Sequential:
        """Add a layer at the end; returns self."""
        self.layers.append(layer)
        return self

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def get_config(self) -> dict[str, Any]:
        return {"layers": [{"type": type(m).__name__, "config": m.get_config()} for m in self.layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        from .module import layer_class

        return cls(*(layer_class(spec["type"]).from_config(spec["config"]) for spec in config["layers"]))

    def __repr__(self) -> str:
        lines = []
        for i, layer in enumerate(self.layers):
            n = layer.num_parameters()
            suffix = f"  # {n:,} params" if n else ""
            lines.append(f"  ({i}): {layer!r}{suffix}")
        where = f", {self.dtype} on {self.device}" if self.device is not None else ""
        body = "\n".join(lines)
        return f"Sequential(\n{body}\n)  # {self.num_parameters():,} parameters{where}"
