"""Sequential: layers applied one after another."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .module import Module, check_gradient_device, layer_type

__all__ = ["Sequential"]


class Sequential(Module):
    """Chain of layers: ``forward`` runs them in order, ``backward`` in reverse.

    Like PyTorch's ``nn.Sequential``: ``model[0]`` is the first layer, ``len(model)``
    the number of layers, parameters are named ``"0.W"``, ``"0.b"``, ...
    """

    def __init__(self, *layers: Module):
        super().__init__()
        self.layers: list[Module] = []
        _check_layers(self, layers)
        self.layers = list(layers)

    def named_children(self) -> list[tuple[str, Module]]:
        """The layers in order, named ``"0"``, ``"1"``, ...; then, as in PyTorch, any
        other module a subclass keeps in an attribute (``self.aux = nn.Linear(...)``),
        named by the attribute, so that its parameters train, move and save too."""
        layers = [(str(i), layer) for i, layer in enumerate(self.layers)]
        ids = {id(layer) for layer in self.layers}
        return layers + [(n, m) for n, m in self._attribute_children(skip=("layers",)) if id(m) not in ids]

    def _last_layer(self) -> Module:
        return self.layers[-1]._last_layer() if self.layers else self

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
        skipped, and that one computes only its parameter gradients. A subclass whose
        ``forward`` or ``backward`` runs more than the layers (a head, a skip
        connection) gets its own ``backward``, as a hand-written loop calls it."""
        if type(self).forward is not Sequential.forward or type(self).backward is not Sequential.backward:
            self.backward(grad_out)
            return
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
        _check_layers(self, [*self.layers, layer])
        self.layers.append(layer)
        return self

    def __getitem__(self, i: int | slice) -> Module:
        """``model[i]`` is layer ``i``; ``model[a:b]`` a Sequential of those layers
        (the same layer objects, as in PyTorch)."""
        if isinstance(i, slice):
            return Sequential(*self.layers[i])
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def get_config(self) -> dict[str, Any]:
        return {"layers": [{"type": layer_type(m), "config": m.get_config()} for m in self.layers]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        from .module import layer_class

        return cls(*(layer_class(spec["type"]).from_config(spec["config"]) for spec in config["layers"]))

    def __repr__(self) -> str:
        lines = []
        # the layers, then any other child (a subclass's head), whose parameters the
        # summary counts too
        for name, layer in self.named_children():
            n = layer.num_parameters()
            # a Sequential's own repr ends with its summary; indent its lines under ours
            suffix = f"  # {n:,} params" if n and not isinstance(layer, Sequential) else ""
            text = repr(layer).replace("\n", "\n  ")
            lines.append(f"  ({name}): {text}{suffix}")
        where = f", {self.dtype} on {self.device}" if self.device is not None else ""
        body = "\n".join(lines)
        return f"{type(self).__name__}(\n{body}\n)  # {self.num_parameters():,} parameters{where}"


def _positions(layer: Module) -> Iterator[Module]:
    """The modules whose forward a Sequential runs for this layer: the layer, and the
    layers of a nested Sequential. A user module's attribute children are not
    followed: it may only read them (a tied embedding), not run them twice."""
    yield layer
    if isinstance(layer, Sequential):
        for inner in layer.layers:
            yield from _positions(inner)


def _check_layers(container: Sequential, layers: Any) -> None:
    """Every layer a Module, and no module object in two positions: each layer caches
    its input in forward for its backward, so a second use of one object overwrites
    the first one's cache and backward computes wrong gradients without an error."""
    where: dict[int, int] = {id(container): -1}
    for i, layer in enumerate(layers):
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential layer {i} is a {type(layer).__name__}, not an xpnet.nn.Module")
        for m in _positions(layer):
            first = where.setdefault(id(m), i)
            if first == i:
                continue
            if first == -1:
                raise ValueError(f"Sequential layer {i} is (or contains) the Sequential itself")
            name = type(m).__name__
            share = (" To share weights between two positions, write one layer whose forward and backward "
                     "use them twice." if m.params else "")
            raise ValueError(
                f"Sequential layer {i} is (or contains) the same {name} object as layer {first}. Each layer "
                f"caches its input for backward, so a second use overwrites the first one's cache and "
                f"gives wrong gradients: create a new {name}(...) for each position.{share}"
            )
