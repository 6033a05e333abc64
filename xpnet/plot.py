"""Pictures of training: learning curves, linear-classifier templates, optimizer paths
on a contour plot, and grids of sample images.

An optional extra (``pip install "xpnet[plot]"``): matplotlib is imported only when a
function here is called. Arrays may come from any backend.

Every function returns a :class:`matplotlib.figure.Figure` made through pyplot, so it
shows the way matplotlib users expect everywhere:

- in Jupyter, Colab and VS Code notebooks, as the last expression of a cell, once
  (pyplot's end-of-cell display would show it a second time; the figure leaves
  pyplot's list when the notebook displays it), or with ``plt.show()``. This holds
  for your own figure too when ``plot_contour_path(..., ax=...)`` draws on it;
- in a script, with ``plt.show()`` or ``fig.show()`` (an interactive backend opens a
  window; on a headless machine save it with ``fig.savefig("curves.png")``).

Close figures you no longer need with ``plt.close(fig)`` in long loops, as with any
pyplot figure. A call that raises leaves no figure behind: the arguments are checked
before the figure is made.
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import to_numpy

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_history", "plot_weights", "plot_contour_path", "plot_images"]

# A grid of thousands of subplots takes minutes to draw; ask for a slice instead.
_MAX_IMAGES = 256


def _figure_class() -> type[Figure]:
    """matplotlib's Figure, imported on first use: matplotlib is an optional extra."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError('xpnet.plot needs matplotlib: pip install "xpnet[plot]"') from exc
    return Figure


def _inline_backend() -> bool:
    """Whether pyplot draws into a notebook's output (Jupyter, Colab, VS Code)."""
    import matplotlib

    return "inline" in matplotlib.get_backend()


@contextlib.contextmanager
def _new_figure(**kwargs: Any) -> Iterator[Figure]:
    """A pyplot-managed figure that a notebook displays exactly once, closed again if
    drawing it raises: a failed call leaves no half-made figure in pyplot's list (a
    notebook would show it under the traceback, a script would keep it open).

    pyplot management is what makes ``plt.show()`` and ``fig.show()`` work in scripts
    and what registers the inline backend's image formatter in a notebook kernel.
    """
    _figure_class()
    import matplotlib.pyplot as plt

    fig = _shown_once(plt.figure(**kwargs))
    try:
        yield fig
    except BaseException:
        plt.close(fig)
        raise


def _shown_once(fig: Figure) -> Figure:
    """``fig``, made to leave pyplot's list when a notebook displays it, so the inline
    backend does not show it again at the end of the cell.

    An attribute of this figure, not a Figure subclass: it applies to a caller's own
    figure as well (``plot_contour_path(..., ax=...)``) and keeps figures picklable.
    """
    fig._repr_mimebundle_ = functools.partial(_display_once, fig)
    return fig


def _display_once(fig: Figure, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
    if not _inline_backend():
        return None
    import matplotlib.pyplot as plt

    plt.close(fig)
    try:
        from IPython import get_ipython

        get_ipython().display_formatter.formatters["image/png"].lookup(fig)
        return {}  # the inline backend's registered formatter renders the image
    except (AttributeError, KeyError, ImportError):
        from io import BytesIO

        buffer = BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        return {"image/png": buffer.getvalue()}


def _positive_int(value: Any, name: str, function: str) -> int:
    """``value`` as an int >= 1, or an error naming the argument."""
    try:
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < 1:
        raise ValueError(f"{function}: {name} must be a whole number >= 1, got {value!r}; e.g. {name}=5")
    return number


def _describe(value: Any) -> str:
    """``float 1.5``, ``str 'abc'``: the type and a short repr, for error messages."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _root_figure(ax: Axes) -> Figure:
    fig = ax.figure
    while not isinstance(fig, _figure_class()):  # an axes inside a SubFigure
        fig = fig.figure
    return fig


# ------------------------------------------------------------------ learning curves
def plot_history(history: Any, metrics: str | Sequence[str] | None = None, *, title: str | None = None) -> Figure:
    """Learning curves: one subplot per metric, training solid, validation dashed.

    Args:
        history: an :class:`xpnet.History` or a plain dict ``{"loss": [...],
            "val_loss": [...], "accuracy": [...], ...}`` with one float per epoch.
        metrics: the metrics to draw, e.g. ``"loss"`` or ``["loss", "accuracy"]``
            (``"val_accuracy"`` means ``"accuracy"``: each subplot shows both curves).
            Default: every metric present except ``"lr"``, loss first.
        title: a title over all subplots.

    Returns:
        The Figure; x axis = epoch 1, 2, ..., n.

    Raises:
        ValueError: the history has no recorded epochs, ``metrics`` names no metric, or
            a metric is not in it.
        TypeError: ``history`` is not a History or dict, or one of its entries is not a
            list of numbers.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping):
        raise TypeError(f"plot_history expects an xpnet.History or a dict of lists, got {type(history).__name__}")
    logs = {key: _epoch_values(key, values) for key, values in logs.items()}
    logs = {key: values for key, values in logs.items() if values}
    if not logs:
        raise ValueError("plot_history got an empty history (no epoch recorded); train for at least one epoch first")

    available = list(dict.fromkeys(key.removeprefix("val_") for key in logs))
    available.sort(key=lambda name: name != "loss")  # stable: loss first, the rest in recorded order
    if metrics is None:
        names = [name for name in available if name != "lr"] or available
    else:
        requested = [metrics] if isinstance(metrics, str) else metrics
        if not isinstance(requested, (list, tuple)) or not requested or not all(isinstance(n, str) for n in requested):
            raise ValueError(
                f"plot_history: metrics must name at least one metric, got {metrics!r}; pass e.g. metrics='loss' or "
                f"metrics=['loss', 'accuracy'], or leave metrics=None for all of {available}"
            )
        names = [name.removeprefix("val_") for name in requested]
        unknown = [name for name in names if name not in available]
        if unknown:
            raise ValueError(f"plot_history: unknown metric(s) {unknown}; this history has {available}")
        names = list(dict.fromkeys(names))

    from matplotlib.ticker import MaxNLocator

    ncols = min(len(names), 3)
    nrows = math.ceil(len(names) / ncols)
    with _new_figure(figsize=(4.8 * ncols, 3.6 * nrows), layout="constrained") as fig:
        for i, name in enumerate(names):
            ax = fig.add_subplot(nrows, ncols, i + 1)
            for key, label, style, color in ((name, "train", "-", "C0"), ("val_" + name, "validation", "--", "C1")):
                if key not in logs:
                    continue
                values = logs[key]
                # Markers keep a one-epoch run visible (a single point draws no line).
                marker = "o" if len(values) <= 50 else None
                ax.plot(
                    range(1, len(values) + 1),
                    values,
                    linestyle=style,
                    color=color,
                    marker=marker,
                    markersize=3,
                    label=label,
                )
            ax.set_title(name)
            ax.set_xlabel("epoch")
            ax.set_ylabel(name)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3)
            ax.legend()
        if title is not None:
            fig.suptitle(title)
    return fig


def _epoch_values(key: Any, values: Any) -> list[float]:
    """One float per epoch from ``history[key]``, or an error naming the key."""
    numbers = None
    if not isinstance(values, (str, bytes)):
        with contextlib.suppress(TypeError, ValueError):
            numbers = [float(v) for v in values]
    if numbers is None:
        raise TypeError(
            f"plot_history: history[{key!r}] must be a list with one number per epoch, got {_describe(values)}; "
            f"e.g. {{{key!r}: [0.9, 0.6, 0.4]}}"
        )
    return numbers


# ------------------------------------------------------------ linear-classifier templates
def _weight_matrix(weights: Any) -> tuple[np.ndarray, str]:
    """The (D, K) matrix to draw and what its columns are: ``"class"`` when it is a
    model's output layer, else ``"unit"`` (a hidden layer, or a layer or array whose
    place in a model is unknown)."""
    from .nn import Linear, Module

    what = "unit"
    if isinstance(weights, Module):
        linears = [m for m in weights.modules() if isinstance(m, Linear)]
        if not linears:
            raise ValueError(f"plot_weights: {type(weights).__name__} has no Linear layer whose weights to show")
        if len(linears) == 1 and weights is not linears[0]:
            what = "class"  # a model whose only Linear layer is its output: a linear classifier
        weights = linears[0].params["W"]
    return np.asarray(to_numpy(weights), dtype=np.float64), what


def _as_hwc(image: np.ndarray) -> np.ndarray:
    """(C, H, W) with C in {1, 3} -> (H, W, C); a single channel -> (H, W)."""
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = np.moveaxis(image, 0, -1)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return image


def _rescale(image: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a constant image becomes all zeros."""
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def _grid(fig: Figure, count: int, ncols: int) -> list[Axes]:
    nrows = math.ceil(count / ncols)
    return [fig.add_subplot(nrows, ncols, i + 1) for i in range(count)]


def plot_weights(
    weights: Any,
    image_shape: tuple[int, ...] = (32, 32, 3),
    *,
    class_names: Sequence[str] | None = None,
    ncols: int = 5,
) -> Figure:
    """A layer's weights as one image per output unit: a linear classifier's class
    templates (the course's CIFAR-10 exercise) or a first hidden layer's features.

    Args:
        weights: an array (D, K) from any backend - column ``k`` is class ``k``'s
            template - or an :class:`xpnet.nn.Linear`, or a model whose first Linear
            layer is used.
        image_shape: the shape of one input image, with ``prod(image_shape) == D``:
            (H, W, C) (channels last, as CIFAR-10 in the course), (C, H, W) with C in
            {1, 3}, or (H, W) for grayscale such as (8, 8) digits or (28, 28) MNIST.
        class_names: K titles. Default: ``"class 0"``, ... for a model whose only
            Linear layer is its output (a linear classifier); ``"unit 0"``, ... for
            anything else (a hidden layer such as ``model[0]``, a lone Linear or an
            array), since a hidden unit is not a class.
        ncols: tiles per row.

    Returns:
        The Figure, one axes per column of the weights; each template is min-max rescaled to [0, 1] on
        its own, so the tiles show patterns, not relative magnitudes.

    Raises:
        ValueError: ``image_shape`` is not a tuple of 2 or 3 positive ints, D does not match
            ``prod(image_shape)``, ``class_names`` has not K entries, or ``ncols`` is not
            a whole number >= 1.
    """
    W, what = _weight_matrix(weights)
    image_shape = _image_shape(image_shape)
    ncols = _positive_int(ncols, "ncols", "plot_weights")
    size = math.prod(image_shape)
    if W.ndim != 2:
        raise ValueError(f"plot_weights expects weights of shape (D, K), got shape {W.shape}")
    D, K = W.shape
    if D != size:
        hint = " (the weights look transposed: pass weights.T)" if K == size else ""
        raise ValueError(
            f"plot_weights got weights of shape {W.shape}: D={D} input features, but image_shape={image_shape} "
            f"has {size} pixels{hint}; pass the image_shape of one input image"
        )
    if class_names is not None and len(class_names) != K:
        raise ValueError(f"plot_weights got {len(class_names)} class_names for {K} classes")

    ncols = min(ncols, K)
    with _new_figure(figsize=(1.7 * ncols, 1.9 * math.ceil(K / ncols)), layout="constrained") as fig:
        for k, ax in enumerate(_grid(fig, K, ncols)):
            template = _rescale(_as_hwc(W[:, k].reshape(image_shape)))
            cmap = "gray" if template.ndim == 2 else None
            ax.imshow(template, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_title(class_names[k] if class_names is not None else f"{what} {k}", fontsize=9)
            ax.set_axis_off()
    return fig


def _image_shape(image_shape: Any) -> tuple[int, ...]:
    """``image_shape`` as a tuple of positive ints, or an error that shows the fix."""
    shape = None
    if isinstance(image_shape, (tuple, list)) and len(image_shape) in (2, 3):
        with contextlib.suppress(TypeError):
            shape = tuple(operator.index(n) for n in image_shape)
    if shape is None or min(shape) < 1:
        hint = ""
        with contextlib.suppress(TypeError):
            side = math.isqrt(operator.index(image_shape))
            if side > 0 and side * side == image_shape:
                hint = f"; for {image_shape} pixels of a square grayscale image pass image_shape=({side}, {side})"
        raise ValueError(
            f"plot_weights: image_shape must be the shape of one input image, (H, W), (H, W, C) or (C, H, W), "
            f"e.g. (8, 8) or (32, 32, 3); got {_describe(image_shape)}{hint}"
        )
    shown = _as_hwc(np.empty(shape)).shape
    if len(shown) == 3 and shown[-1] != 3:
        raise ValueError(
            f"plot_weights: image_shape={shape} has no colour axis of 1 or 3 channels; "
            "pass (H, W) for grayscale, (H, W, 3) or (3, H, W) for colour"
        )
    return shape


# ------------------------------------------------------------------ optimizer paths
def _path_points(path: Any) -> np.ndarray:
    """The (n, 2) NumPy points of ``path``: an array, or a sequence of (x, y) points,
    each an array of any backend, a pair of numbers or an :class:`xpnet.Variable`."""
    from .variable import Variable

    if isinstance(path, Variable):
        path = path.value
    if not isinstance(path, (list, tuple)):
        points = _float_array(path, "path")
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(
                f"plot_contour_path: path must be an (n, 2) array of (x, y) points, got shape {points.shape}"
            )
        return points
    variables = [p for p in path if isinstance(p, Variable)]
    if len({id(v) for v in variables}) < len(variables):
        raise ValueError(
            "plot_contour_path: path holds the same xpnet.Variable more than once, so every point is where it "
            "is now, not where it was; record a copy at each step: path.append(point.numpy())"
        )
    points = [_float_array(p.value if isinstance(p, Variable) else p, "path point").reshape(-1) for p in path]
    if any(p.shape != (2,) for p in points):
        shapes = sorted({p.shape for p in points})
        raise ValueError(f"plot_contour_path: path points must be (x, y) pairs, got points of shape {shapes}")
    return np.stack(points) if points else np.zeros((0, 2))


def _float_array(value: Any, what: str) -> np.ndarray:
    try:
        return np.asarray(to_numpy(value), dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"plot_contour_path: each {what} must be numbers (x, y), an array or an xpnet.Variable, "
            f"got {_describe(value)}"
        ) from None


def plot_contour_path(
    f: Callable[[np.ndarray, np.ndarray], Any],
    path: Any = None,
    *,
    xlim: tuple[float, float] = (-2, 2),
    ylim: tuple[float, float] = (-2, 2),
    levels: int | Sequence[float] = 30,
    ax: Axes | None = None,
    log_scale: bool = False,
) -> Figure:
    """Contour lines of ``f(x, y)`` with an optimizer's path on top.

    Args:
        f: a function of two NumPy arrays of the same shape (G, G) returning (G, G)
            values, e.g. ``lambda x, y: x**2 + 10 * y**2`` or Rosenbrock
            ``lambda x, y: (1 - x)**2 + 100 * (y - x**2)**2``.
        path: the iterates, an (n, 2) array from any backend or a sequence of n
            (x, y) points (pairs, arrays or :class:`xpnet.Variable` copies, e.g.
            ``point.numpy()`` recorded at each step); drawn as a line with markers,
            start and end marked.
        xlim: the range of x shown.
        ylim: the range of y shown.
        levels: the number of contour levels, or their values.
        ax: draw on this axes of your own figure, e.g. one of ``plt.subplots(1, 2)``
            (default: a new Figure).
        log_scale: space the levels logarithmically - for valleys like Rosenbrock's;
            values <= 0 get no contour line.

    Returns:
        The Figure holding the axes: with ``ax=``, your own figure, which from then on
        shows once in a notebook like the others (as a cell's last value, or with
        ``plt.show()``), not twice.

    Raises:
        ValueError: ``f`` did not return one value per grid point, ``path`` is not
            (n, 2) or holds the same Variable twice, or ``log_scale`` with no positive
            value of ``f`` on the grid.
        TypeError: a path point is not numbers.
    """
    points = None if path is None else _path_points(path)
    grid_x, grid_y = np.meshgrid(np.linspace(*xlim, 200), np.linspace(*ylim, 200))
    z = np.asarray(to_numpy(f(grid_x, grid_y)), dtype=np.float64)
    if z.shape != grid_x.shape:
        raise ValueError(
            f"plot_contour_path: f(x, y) on {grid_x.shape} grids returned shape {z.shape}; "
            "write f with NumPy operations that work elementwise"
        )
    contour_kwargs: dict[str, Any] = {"levels": levels}
    if log_scale:
        from matplotlib.colors import LogNorm

        positive = z[z > 0]
        if positive.size == 0:
            raise ValueError("plot_contour_path: log_scale=True needs f > 0 somewhere on the grid; use log_scale=False")
        low, high = float(positive.min()), float(positive.max())
        if isinstance(levels, int):
            contour_kwargs["levels"] = np.geomspace(low, high, levels) if high > low else [low]
        contour_kwargs["norm"] = LogNorm(vmin=low, vmax=high)
        z = np.ma.masked_less_equal(z, 0)

    def draw(ax: Axes) -> None:
        ax.contour(grid_x, grid_y, z, cmap="viridis", linewidths=0.8, **contour_kwargs)
        if points is not None and len(points):
            ax.plot(points[:, 0], points[:, 1], "-o", color="tab:red", markersize=3, linewidth=1.2, label="path")
            ax.plot(*points[0], marker="o", markersize=9, color="tab:green", linestyle="none", label="start")
            ax.plot(*points[-1], marker="*", markersize=14, color="black", linestyle="none", label="end")
            ax.legend(loc="best")
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_xlabel("x")
        ax.set_ylabel("y")

    if ax is not None:
        draw(ax)  # the caller's figure: theirs to close, even if drawing fails
        return _shown_once(_root_figure(ax))
    with _new_figure(figsize=(6, 5), layout="constrained") as fig:
        draw(fig.add_subplot())
    return fig


# --------------------------------------------------------------------- image grids
def _image_batch(images: Any) -> np.ndarray:
    """(N, D) / (N, H, W) / (N, H, W, C) / (N, C, H, W) -> (N, H, W) or (N, H, W, 3)."""
    x = to_numpy(images)
    if x.ndim == 2:
        n, d = x.shape
        side = math.isqrt(d)
        if d == 32 * 32 * 3:
            x = x.reshape(n, 32, 32, 3)
        elif side * side == d:
            x = x.reshape(n, side, side)
        else:
            raise ValueError(
                f"plot_images got flattened images of shape {x.shape}: D={d} is neither a perfect square "
                "(grayscale) nor 3072 (32x32x3); reshape them to (N, H, W) or (N, H, W, C) first. "
                f"If this is one {n}x{d} image, add the batch axis: images[None] has shape (1, {n}, {d})"
            )
    elif x.ndim == 4:
        if x.shape[-1] not in (1, 3) and x.shape[1] in (1, 3):
            x = np.moveaxis(x, 1, -1)
        if x.shape[-1] not in (1, 3):
            raise ValueError(f"plot_images got images of shape {x.shape}; expected (N, H, W, C) with C = 1 or 3")
        if x.shape[-1] == 1:
            x = x[..., 0]
    elif x.ndim != 3:
        raise ValueError(
            f"plot_images got an array of shape {x.shape}; expected (N, H, W), (N, H, W, C) or flattened (N, D)"
        )
    return x


def _class_labels(values: Any, n: int, what: str, class_names: Sequence[str] | None) -> np.ndarray | None:
    """``values`` as N integer labels, each with a name when ``class_names`` are given."""
    if values is None:
        return None
    raw = np.asarray(to_numpy(values)).reshape(-1)
    integral = raw.dtype.kind in "iub" or (raw.dtype.kind == "f" and bool(np.all(np.isfinite(raw) & (raw % 1 == 0))))
    if not integral:
        raise ValueError(
            f"plot_images: {what} must be integer class indices such as y[:{n}], got {raw.dtype.name} values "
            f"such as {raw[:3].tolist()}; to show names, pass the integers as {what} and the names as "
            f"class_names=[...]"
        )
    ints = raw.astype(np.int64)
    if len(ints) != n:
        raise ValueError(f"plot_images got {len(ints)} {what} for {n} images")
    if class_names is not None:
        outside = ints[(ints < 0) | (ints >= len(class_names))]
        if outside.size:
            raise ValueError(
                f"plot_images: label {outside[0]} has no class name; class_names has {len(class_names)} entries "
                f"(labels 0 to {len(class_names) - 1})"
            )
    return ints


def _class_name(label: int, class_names: Sequence[str] | None) -> str:
    return str(label) if class_names is None else str(class_names[label])


def plot_images(
    images: Any,
    labels: Any = None,
    *,
    class_names: Sequence[str] | None = None,
    ncols: int = 8,
    predictions: Any = None,
) -> Figure:
    """A grid of sample images with their labels (and predictions) as titles.

    Args:
        images: N images from any backend: (N, H, W) grayscale, (N, H, W, C) with C in
            {1, 3} (or channels first, (N, C, H, W)), or flattened (N, D) with D a perfect
            square (grayscale, e.g. 64 for 8x8 digits, 784 for MNIST) or D = 3072
            (32x32x3 CIFAR-10). uint8 is shown as 0-255; any other dtype is min-max
            rescaled to [0, 1] per image (so mean-subtracted data shows too).
        labels: N integer class labels, shown as titles.
        class_names: names for the labels (default: the numbers).
        ncols: images per row.
        predictions: N predicted labels; the title shows the prediction, and a wrong
            one is drawn in red as ``"pred (true)"`` when ``labels`` are given.

    Returns:
        The Figure, one axes per image.

    Raises:
        ValueError: an unsupported shape, no images, more than 256 images, labels /
            predictions that are not N integers (names go in ``class_names``), a label
            with no class name, or ``ncols`` not a whole number >= 1.
    """
    x = _image_batch(images)
    n = x.shape[0]
    if n == 0:
        raise ValueError("plot_images got no images (N = 0)")
    if n > _MAX_IMAGES:
        raise ValueError(f"plot_images got {n} images; at most {_MAX_IMAGES} fit a grid, pass a slice like images[:32]")
    true = _class_labels(labels, n, "labels", class_names)
    pred = _class_labels(predictions, n, "predictions", class_names)
    ncols = min(_positive_int(ncols, "ncols", "plot_images"), n)

    raw = x.dtype == np.uint8
    with _new_figure(figsize=(1.5 * ncols, 1.7 * math.ceil(n / ncols)), layout="constrained") as fig:
        for i, ax in enumerate(_grid(fig, n, ncols)):
            image = x[i] if raw else _rescale(np.asarray(x[i], dtype=np.float64))
            vmax = 255 if raw else 1.0
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=vmax, interpolation="nearest")
            ax.set_axis_off()
            if pred is not None:
                title = _class_name(pred[i], class_names)
                if true is not None and pred[i] != true[i]:
                    ax.set_title(f"{title} ({_class_name(true[i], class_names)})", fontsize=8, color="red")
                else:
                    ax.set_title(title, fontsize=8)
            elif true is not None:
                ax.set_title(_class_name(true[i], class_names), fontsize=8)
    return fig
