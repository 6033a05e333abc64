"""The base class of every layer and model, and the parameter handle optimizers use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .. import backend as _backend
from ..errors import DeviceMismatchError, MissingGradientError, ShapeError

__all__ = ["Module", "Parameter"]

_LAYERS: dict[str, type[Module]] = {}


class Parameter:
    """A handle on one parameter of one module: ``value`` and ``grad`` read and write
    the module's ``params`` / ``grads`` dicts.

    Optimizers update through the handle (``p.value = p.value - lr * p.grad``), which
    works on backends whose arrays are immutable (JAX) as well as on the others.
    """

    __slots__ = ("module", "name")

    def __init__(self, module: Module, name: str):
        self.module = module
        self.name = name

    @property
    def value(self) -> Any:
        """The parameter's array; assigning replaces it in the module."""
        return self.module.params[self.name]

    @value.setter
    def value(self, array: Any) -> None:
        self.module.params[self.name] = array

    @property
    def grad(self) -> Any:
        """The gradient stored by the module's last ``backward`` (same shape as ``value``)."""
        try:
            return self.module.grads[self.name]
        except KeyError:
            layer = type(self.module).__name__
            raise MissingGradientError(
                f"{layer} has no gradient for its parameter {self.name!r}: {layer}.backward must store "
                f"self.grads[{self.name!r}] (an array of the parameter's shape) on every call; "
                f"xpnet.gradcheck.check_layer shows which gradients a layer gets wrong"
            ) from None

    @property
    def decay(self) -> bool:
        """Whether weight decay (L2) applies: weights yes, biases no (as in
        scikit-learn's ``alpha`` and the course exercises' regularization)."""
        return self.name not in self.module.no_decay

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ``value`` as a tuple of ints."""
        return tuple(self.value.shape)

    def __repr__(self) -> str:
        return f"Parameter({type(self.module).__name__}.{self.name}, shape={self.shape})"


class _SetInInit:
    """Class-level stand-in for an attribute ``Module.__init__`` sets on the instance.

    The instance's own attribute always wins over this (non-data) descriptor, so it
    costs nothing; it is only reached when ``__init__`` never ran, and then names the
    mistake instead of a bare AttributeError from deep inside ``fit``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        raise AttributeError(f"{type(obj).__name__} has no {self.name!r}: its __init__ must call "
                             f"super().__init__() before anything else")


class Module:
    """Base class: a layer with a hand-written ``forward`` and ``backward``.

    Subclasses set ``self.params`` (name -> array) in ``__init__``, cache what
    backward needs in ``forward``, and in ``backward`` store each parameter's
    gradient in ``self.grads`` (overwriting, not accumulating) and return the
    gradient w.r.t. the input. Inputs are never modified in place.
    """

    no_decay: frozenset[str] = frozenset()
    params = _SetInInit()
    grads = _SetInInit()
    training = _SetInInit()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register(cls)

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self.training = True

    # -- the two passes ---------------------------------------------------------
    def forward(self, x: Any) -> Any:
        """Compute the output for input ``x`` and cache what backward needs."""
        raise NotImplementedError

    def backward(self, grad_out: Any) -> Any:
        """Given dL/d(output), store parameter gradients and return dL/d(input)."""
        raise NotImplementedError

    def backward_params(self, grad_out: Any) -> None:
        """Store parameter gradients only; the gradient w.r.t. the input is not needed.

        Training calls this instead of :meth:`backward`: a model's first Linear layer
        then skips its input-gradient product (as large as its forward product).
        The default runs :meth:`backward` and drops the result.
        """
        self.backward(grad_out)

    def __call__(self, x: Any) -> Any:
        return self.forward(x)

    # -- structure ----------------------------------------------------------------
    def named_children(self) -> list[tuple[str, Module]]:
        """Direct sub-modules with their names.

        By default, as in PyTorch, the modules held in this module's attributes (and
        in list or tuple attributes, named ``"blocks.0"``, ...) in the order they were
        set: ``self.fc1 = nn.Linear(...)`` makes ``fc1`` a child, and its parameters
        ``"fc1.W"``, ``"fc1.b"``; modules in a dict attribute are named ``"heads.a"``. A subclass that overrides :meth:`children` gets those,
        named ``"0"``, ``"1"``, ...; :class:`~xpnet.nn.Sequential` names its layers so.
        """
        if type(self).children is not Module.children:
            return [(str(i), child) for i, child in enumerate(self.children())]
        return self._attribute_children()

    def _attribute_children(self, skip: tuple[str, ...] = ()) -> list[tuple[str, Module]]:
        """The modules held in attributes (not those named in ``skip``), in the order
        the attributes were set; see :meth:`named_children`."""
        found = []
        for name, value in vars(self).items():
            if name in skip:
                continue
            if isinstance(value, Module):
                found.append((name, value))
            elif isinstance(value, (list, tuple)):
                found.extend((f"{name}.{i}", v) for i, v in enumerate(value) if isinstance(v, Module))
            elif isinstance(value, dict):
                found.extend((f"{name}.{k}", v) for k, v in value.items() if isinstance(v, Module))
        return found

    def children(self) -> list[Module]:
        """Direct sub-modules (empty for a plain layer); see :meth:`named_children`."""
        return [child for _, child in self.named_children()]

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(qualified name, Parameter)`` pairs, e.g. ``("0.W", ...)`` in a Sequential
        or ``("fc1.W", ...)`` for a child held in attribute ``fc1``. A module reached
        twice (weights shared through two attributes) is listed once, under its first
        name, so an optimizer steps it once."""
        seen: set[int] = set()
        yield from self._named_parameters(prefix, seen)

    def _named_parameters(self, prefix: str, seen: set[int]) -> Iterator[tuple[str, Parameter]]:
        if id(self) in seen:
            return
        seen.add(id(self))
        for name in self.params:
            yield prefix + name, Parameter(self, name)
        for name, child in self.named_children():
            yield from child._named_parameters(f"{prefix}{name}.", seen)

    def parameters(self) -> list[Parameter]:
        """Every parameter of this module and its children, as handles for an optimizer."""
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator[Module]:
        """This module and all sub-modules, depth first, each once."""
        seen: set[int] = set()
        stack: list[Module] = [self]
        while stack:
            module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield module
            stack.extend(reversed(list(module.children())))  # children() may be a generator

    def num_parameters(self) -> int:
        """Total number of scalar parameters."""
        total = 0
        for p in self.parameters():
            n = 1
            for s in p.shape:
                n *= int(s)
            total += n
        return total

    # -- state --------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Set every stored gradient to zeros of its parameter's shape, dtype, device."""
        for m in self.modules():
            for name, value in m.params.items():
                m.grads[name] = _zeros_like(value)

    def train(self, mode: bool = True) -> Module:
        """Switch this module and its children to training (or eval) mode; returns self."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode) takes True or False, got {type(mode).__name__} {mode!r}")
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        """Switch to evaluation mode (dropout off); returns self."""
        return self.train(False)

    def _modes(self) -> list[tuple[Module, bool]]:
        """Every module's own train/eval flag, for :meth:`_restore_modes` (a Dropout
        put in eval mode by hand stays there after ``predict``)."""
        return [(m, m.training) for m in self.modules()]

    @staticmethod
    def _restore_modes(modes: list[tuple[Module, bool]]) -> None:
        for m, mode in modes:
            m.training = mode

    @property
    def device(self) -> _backend.Device | None:
        """The device the parameters live on (``None`` for a module without any)."""
        params = self.parameters()
        return _backend.device_of(params[0].value) if params else None

    @property
    def dtype(self) -> str | None:
        """The parameters' dtype name (``None`` for a module without any)."""
        params = self.parameters()
        return _backend.dtype_name(params[0].value.dtype) if params else None

    def to(self, device: str | _backend.Device | None = None, dtype: Any = None) -> Module:
        """Move (and/or cast) every parameter and gradient; returns self.

        Args:
            device: target device string or Device; ``None`` keeps each where it is.
            dtype: ``"float32"``/``"float64"`` or a dtype object; ``None`` keeps it.
        """
        target = _backend.resolve_device(device) if device is not None else None
        name = _backend._float_dtype_name(dtype) if dtype is not None else None
        # Convert everything first and assign after: a conversion that fails half-way
        # (a device that runs out of memory) leaves the model whole where it was, not
        # split across two devices. A gradient a compiled step did not store is None.
        moved = [(store, key, None if value is None else _convert(value, target, name))
                 for m in self.modules() for store in (m.params, m.grads) for key, value in store.items()]
        for store, key, value in moved:
            store[key] = value
        return self.clear_cache()

    def clear_cache(self) -> Module:
        """Drop the arrays this module and its children cached in ``forward`` (so a
        saved or pickled model does not carry its last batch, and a moved one holds no
        arrays of the old device). Subclasses that cache override :meth:`_clear_cache`.
        Returns self."""
        for m in self.modules():
            m._clear_cache()
        return self

    def _clear_cache(self) -> None:
        """Hook: drop this module's own forward caches."""

    def state_dict(self) -> dict[str, Any]:
        """``{qualified name: array}`` for every parameter (the arrays themselves)."""
        return {name: p.value for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, Any]) -> Module:
        """Copy values (from any backend or the host) into the parameters, keeping
        this model's device and dtype. Names and shapes must match exactly; a
        mismatch of either raises ``ValueError`` before anything is copied."""
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict expects a dict {{name: array}} as model.state_dict() returns, "
                            f"got {type(state).__name__}")
        own = dict(self.named_parameters())
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or extra:
            raise ValueError(f"state does not match {type(self).__name__}: missing {missing}, unexpected {extra}")
        for key, p in own.items():
            value = state[key]
            shape = tuple(value.shape) if hasattr(value, "shape") else tuple(_backend.to_numpy(value).shape)
            if shape != p.shape:
                raise ValueError(f"parameter {key!r}: expected shape {p.shape}, got {shape}")
        for key, p in own.items():
            p.value = _backend.device_of(p.value).asarray(_backend.to_numpy(state[key]), dtype=p.value.dtype)
        return self

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this module (used by ``xpnet.save``)."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Module:
        """Rebuild a module from :meth:`get_config`'s output."""
        return cls(**config)

    # -- inference -----------------------------------------------------------------
    def predict(self, x: Any, batch_size: int | None = 1024) -> Any:
        """Outputs for ``x`` in evaluation mode, computed in batches so a large test
        set does not exhaust GPU memory. ``x`` may be host data: it is moved to the
        model's device and dtype. Returns an array on the model's device.

        Shapes: x (N, ...) -> (N, M).
        """
        from .. import _validate

        _validate.predict_arguments("predict", batch_size)
        xp_x = self._prepare_input(_validate.as_host("predict", "x", x))
        n = xp_x.shape[0]
        modes = self._modes()
        self.eval()
        try:
            with _backend.using(_backend.device_of(xp_x)):  # CuPy computes on its current GPU
                if batch_size is None or n <= batch_size:
                    return self.forward(xp_x)
                try:
                    first = self.forward(xp_x[:batch_size, ...])
                except ShapeError as exc:  # name the data's shape, not the first batch's
                    text = str(exc).replace(f"shape {(batch_size, *xp_x.shape[1:])}", f"shape {tuple(xp_x.shape)}", 1)
                    raise ShapeError(f"predict: x of shape {tuple(xp_x.shape)} does not fit the model: {text}") from None
                chunks = [first] + [self.forward(xp_x[i : min(i + batch_size, n), ...])
                                    for i in range(batch_size, n, batch_size)]
                return array_namespace_of(chunks[0]).concat(chunks, axis=0)
        finally:
            self._restore_modes(modes)

    def predict_proba(self, x: Any, batch_size: int | None = 1024) -> Any:
        """Class probabilities: softmax of the outputs (sigmoid for one output), unless
        the model already ends in a Softmax or Sigmoid layer. Shapes: (N, ...) -> (N, K)."""
        from .. import functional as F

        out = self.predict(x, batch_size)
        from .activations import Sigmoid, Softmax

        if isinstance(self._last_layer(), (Softmax, Sigmoid)):
            return out
        return F.sigmoid(out) if out.shape[-1] == 1 else F.softmax(out)

    def predict_classes(self, x: Any, batch_size: int | None = 1024) -> Any:
        """Predicted class labels (argmax of the outputs; threshold 0 / 0.5 for one
        output). Shapes: (N, ...) -> (N,) of integers."""
        out = self.predict_proba(x, batch_size)
        xp = array_namespace_of(out)
        if out.shape[-1] == 1:
            return xp.astype(out[:, 0] > 0.5, xp.int64)
        return xp.argmax(out, axis=-1)

    def _last_layer(self) -> Module:
        """The layer whose output is the model's: the last of an ordered container
        (Sequential, or a class whose ``children()`` gives them in order); itself for a
        module whose children come from its attributes, whose order says nothing
        about which runs last."""
        if type(self).children is Module.children:
            return self
        kids = list(self.children())
        return kids[-1]._last_layer() if kids else self

    def _prepare_input(self, x: Any) -> Any:
        device, dtype = self.device, self.dtype
        if device is None:
            return _backend.asarray(x)
        return _backend.asarray(x, dtype=dtype, device=device)

    # -- printing ------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def check_gradient_device(layer: Module, grad_out: Any) -> None:
    """Raise :class:`~xpnet.errors.DeviceMismatchError` naming ``layer`` when
    ``grad_out`` is on another backend or device than the layer's parameters (or its
    cached input). Called only after a backward failed, so it costs nothing when
    nothing is wrong."""
    reference = next((p.value for p in layer.parameters()), None)
    if reference is None:
        reference = next((v for v in vars(layer).values() if _backend._is_array(v)), None)
    if reference is None or not _backend._is_array(grad_out):
        return
    where, there = _backend.device_of(grad_out), _backend.device_of(reference)
    if where != there:
        raise DeviceMismatchError(
            f"{layer!r}.backward got a gradient on {where.name} but the layer is on {there.name}; move the gradient "
            f"with xpnet.asarray(grad, device={there.name!r}) or the model with model.to({where.name!r})"
        )


def elementwise_backward(layer: Module, grad_out: Any, like: Any, backward: Any) -> Any:
    """``backward()`` for an elementwise layer (activations, Dropout), once
    ``grad_out`` is known to live with ``like`` (the layer's cached array) and to
    have its shape: a gradient of another backend is a named
    :class:`~xpnet.errors.DeviceMismatchError` (NumPy * torch "works" and hands
    on a torch array), one of another shape a :class:`~xpnet.errors.ShapeError`
    (a (1, K) gradient broadcasts against (N, K)). Shapes: grad_out like ``like``."""
    if type(grad_out) is not type(like):
        check_gradient_device(layer, grad_out)
    if grad_out.shape != like.shape:
        raise ShapeError(f"{layer!r}.backward got a gradient of shape {tuple(grad_out.shape)}; expected "
                         f"{tuple(like.shape)}, the shape of the last forward's output")
    try:
        return backward()
    except (TypeError, ValueError, RuntimeError):
        check_gradient_device(layer, grad_out)  # another device of the same backend (torch: RuntimeError)
        raise


def array_namespace_of(array: Any) -> Any:
    return _backend.array_namespace(array)


def _zeros_like(value: Any) -> Any:
    return array_namespace_of(value).zeros_like(value)


def _convert(value: Any, device: _backend.Device | None, dtype: str | None) -> Any:
    source = _backend.device_of(value)
    target = device or source
    if target == source:
        if dtype is None or _backend.dtype_name(value.dtype) == dtype:
            return value
        return source.xp.astype(value, source.dtype(dtype))
    return target.asarray(source.to_numpy(value), dtype=dtype or value.dtype)


def _register(cls: type[Module]) -> None:
    """Register a layer class for loading by name. xpnet's own layers keep their
    bare names: a user's ``class ReLU(nn.Module)`` (the course exercise) goes under
    its qualified name, ``"__main__.ReLU"``, and never replaces ``nn.ReLU`` in a model
    loaded afterwards, and a second user class of the same name from another module
    (two projects' ``Block``) does not replace the first. A class redefined in the
    same module under the same name (a notebook cell run again) replaces its
    earlier self."""
    name = cls.__name__
    owner = _LAYERS.get(name)
    if owner is not None and (owner.__module__, owner.__qualname__) != (cls.__module__, cls.__qualname__):
        name = f"{cls.__module__}.{cls.__qualname__}"
    _LAYERS[name] = cls
    cls._xpnet_layer_name = name


def _is_builtin(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "xpnet"


def layer_type(module: Module) -> str:
    """The name ``module``'s class is saved under (see :func:`layer_class`)."""
    return type(module).__dict__.get("_xpnet_layer_name") or type(module).__name__


def check_rebuildable(model: Module) -> None:
    """Raise ``TypeError`` if some module of ``model`` cannot be rebuilt from its
    :meth:`~Module.get_config` (a constructor that needs arguments the inherited,
    empty ``get_config`` does not give): ``xpnet.save`` calls this so the mistake
    shows when saving, not as a "corrupt" file when loading."""
    import inspect

    from .containers import Sequential

    cls = type(model)
    if isinstance(model, Sequential):
        for layer in model.layers:  # Sequential.from_config rebuilds each layer from its own config
            check_rebuildable(layer)
        if cls is not Sequential and cls.from_config.__func__ is Sequential.from_config.__func__:
            _check_sequential_subclass(cls, model.layers)
        return
    if cls.from_config.__func__ is not Module.from_config.__func__:
        return  # its own from_config knows what it needs
    # cls(**config) builds the module's children itself: only its own config matters
    config = model.get_config()
    try:
        signature = inspect.signature(cls)
    except ValueError:
        return  # no signature to check (a C-implemented __init__)
    arguments = [name for name, p in signature.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if arguments and cls.get_config is Module.get_config:
        # as Keras refuses: load would call cls() and rebuild it with the defaults,
        # silently another layer (Scale(5.0) back as Scale(1.0))
        raise TypeError(
            f"cannot save {cls.__name__}: its __init__ takes {', '.join(arguments)}, but {cls.__name__} does not "
            f"define get_config(), so load would rebuild it with the defaults; define get_config() to return "
            f"them, e.g. {{{', '.join(f'{a!r}: self.{a}' for a in arguments)}}}"
        )
    try:
        signature.bind(**config)
    except TypeError as exc:
        raise TypeError(
            f"cannot save {cls.__name__}: {cls.__name__}.get_config() returns {config!r}, which does not "
            f"rebuild it ({exc}); define get_config() to return the constructor's arguments, e.g. "
            f"{{'features': self.features}}"
        ) from None


def _check_sequential_subclass(cls: type, layers: list[Module]) -> None:
    """Sequential.from_config rebuilds a subclass as ``cls(*layers)``: refuse to save
    one whose __init__ does not take its layers that way (it builds them itself)."""
    import inspect

    try:
        inspect.signature(cls).bind(*layers)
    except ValueError:
        return  # no signature to check
    except TypeError as exc:
        raise TypeError(
            f"cannot save {cls.__name__}: load rebuilds a Sequential subclass as {cls.__name__}(*layers), but "
            f"{cls.__name__}.__init__ does not take its {len(layers)} layers ({exc}). Either let __init__ take "
            f"them (def __init__(self, *layers): super().__init__(*layers)), or define a classmethod "
            f"from_config(cls, config) that rebuilds it from get_config()"
        ) from None


def layer_class(name: str) -> type[Module]:
    """The Module subclass registered under ``name`` (for loading saved models)."""
    try:
        return _LAYERS[name]
    except KeyError:
        raise KeyError(f"unknown layer type {name!r}; known: {', '.join(sorted(_LAYERS))}") from None
