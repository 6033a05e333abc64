"""xpnet.plot: each picture is a Figure with the expected axes, and renders to a real PNG."""

import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.axes  # noqa: E402
import matplotlib.colors  # noqa: E402
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import xpnet  # noqa: E402
from xpnet import plot  # noqa: E402
from xpnet.history import History  # noqa: E402

CIFAR_CLASSES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def assert_renders(fig, tmp_path, name="fig.png"):
    """Saves ``fig`` as a PNG that is not tiny and not a single uniform colour."""
    assert isinstance(fig, Figure)
    path = tmp_path / name
    fig.savefig(path)
    assert path.stat().st_size > 1000
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50
    assert np.ptp(pixels[..., :3]) > 0.1, "the picture is a single colour"
    return pixels


def make_history(epochs=5):
    h = History()
    for e in range(epochs):
        logs = {
            "loss": 2.0 / (e + 1),
            "accuracy": 0.3 + 0.1 * e,
            "val_loss": 2.2 / (e + 1),
            "val_accuracy": 0.25 + 0.1 * e,
            "lr": 0.1 * 0.9**e,
        }
        h.append(logs, seconds=0.1)
    return h


def line_styles(ax):
    return {line.get_label(): line.get_linestyle() for line in ax.get_lines()}


# ------------------------------------------------------------------ plot_history
def test_plot_history_one_subplot_per_metric_train_solid_val_dashed(tmp_path):
    fig = plot.plot_history(make_history(), title="run 1")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]  # "lr" left out by default
    for ax in fig.axes:
        assert line_styles(ax) == {"train": "-", "validation": "--"}
        assert ax.get_legend() is not None
        assert all(gl.get_visible() for gl in ax.get_xgridlines())
    x, y = fig.axes[0].get_lines()[0].get_data()
    assert list(x) == [1, 2, 3, 4, 5]  # epochs count from 1
    np.testing.assert_allclose(y, [2.0, 1.0, 2 / 3, 0.5, 0.4])
    assert fig._suptitle.get_text() == "run 1"
    assert_renders(fig, tmp_path)


def test_plot_history_selected_metrics_and_plain_dict(tmp_path):
    logs = make_history().history
    fig = plot.plot_history(logs, metrics="val_accuracy")
    assert [ax.get_title() for ax in fig.axes] == ["accuracy"]
    fig = plot.plot_history(logs, metrics=["lr", "loss"])
    assert [ax.get_title() for ax in fig.axes] == ["lr", "loss"]
    assert line_styles(fig.axes[0]) == {"train": "-"}
    assert_renders(fig, tmp_path)


def test_plot_history_single_epoch_without_validation_is_visible(tmp_path):
    fig = plot.plot_history({"loss": [0.7]})
    (line,) = fig.axes[0].get_lines()
    assert line.get_marker() == "o"  # one point draws no line segment
    assert_renders(fig, tmp_path)


def test_plot_history_unknown_metric_lists_available():
    with pytest.raises(ValueError, match=r"unknown metric.*'f1'.*\['loss', 'accuracy', 'lr'\]"):
        plot.plot_history(make_history(), metrics=["loss", "f1"])


@pytest.mark.parametrize("empty", [History(), {}, {"loss": [], "val_loss": []}])
def test_plot_history_empty_raises(empty):
    with pytest.raises(ValueError, match="empty history"):
        plot.plot_history(empty)


def test_history_plot_goes_through_plot_history(monkeypatch):
    calls = []

    def spy(history, metrics=None, **kwargs):
        calls.append((history, metrics, kwargs))
        return "figure"

    monkeypatch.setattr(plot, "plot_history", spy)
    h = make_history()
    assert h.plot("loss", title="t") == "figure"
    assert calls == [(h, "loss", {"title": "t"})]


def test_history_plot_returns_figure(tmp_path):
    fig = make_history().plot(metrics=["accuracy"])
    assert [ax.get_title() for ax in fig.axes] == ["accuracy"]
    assert_renders(fig, tmp_path)


# ------------------------------------------------------------------ plot_weights
def test_plot_weights_linear_cifar_templates(tmp_path):
    layer = xpnet.nn.Linear(3072, 10, rng=0)
    fig = plot.plot_weights(layer, class_names=CIFAR_CLASSES)
    assert len(fig.axes) == 10
    assert [ax.get_title() for ax in fig.axes] == CIFAR_CLASSES
    images = [ax.get_images()[0] for ax in fig.axes]
    assert all(im.get_array().shape == (32, 32, 3) for im in images)
    for k in (0, 9):
        template = np.asarray(images[k].get_array())
        assert template.min() == pytest.approx(0.0) and template.max() == pytest.approx(1.0)
        w = xpnet.to_numpy(layer.params["W"])[:, k].reshape(32, 32, 3)
        np.testing.assert_allclose(template, (w - w.min()) / (w.max() - w.min()), rtol=1e-6, atol=1e-6)
    assert_renders(fig, tmp_path, "weights.png")


def test_plot_weights_numpy_grayscale_digits(tmp_path):
    W = np.random.default_rng(0).normal(size=(64, 10))
    fig = plot.plot_weights(W, image_shape=(8, 8), ncols=5)
    assert len(fig.axes) == 10
    im = fig.axes[3].get_images()[0]
    assert im.get_array().shape == (8, 8)
    assert im.get_cmap().name == "gray"
    assert fig.axes[3].get_title() == "unit 3"  # an array's columns may be hidden units, not classes
    assert fig.axes[5].get_subplotspec().rowspan.start == 1  # ncols=5: two rows
    assert_renders(fig, tmp_path)


def test_plot_weights_uses_first_linear_of_a_model():
    model = xpnet.nn.Sequential(xpnet.nn.Linear(64, 4, rng=0), xpnet.nn.ReLU(), xpnet.nn.Linear(4, 3, rng=1))
    fig = plot.plot_weights(model, image_shape=(8, 8))
    assert len(fig.axes) == 4
    w = xpnet.to_numpy(model[0].params["W"])[:, 2].reshape(8, 8)
    np.testing.assert_allclose(fig.axes[2].get_images()[0].get_array(), (w - w.min()) / np.ptp(w), atol=1e-6)


def test_plot_weights_titles_hidden_units_as_units_and_classifier_outputs_as_classes():
    mlp = xpnet.nn.Sequential(xpnet.nn.Linear(64, 32, rng=0), xpnet.nn.ReLU(), xpnet.nn.Linear(32, 10, rng=1))
    for hidden in (mlp[0], mlp):
        titles = [ax.get_title() for ax in plot.plot_weights(hidden, image_shape=(8, 8)).axes]
        assert titles == [f"unit {k}" for k in range(32)]
    classifier = xpnet.nn.Sequential(xpnet.nn.Linear(64, 10, rng=0))
    titles = [ax.get_title() for ax in plot.plot_weights(classifier, image_shape=(8, 8)).axes]
    assert titles == [f"class {k}" for k in range(10)]


def test_plot_weights_from_any_backend(xp_device, tmp_path):
    layer = xpnet.nn.Linear(64, 3, rng=0)
    fig = plot.plot_weights(layer.params["W"], image_shape=(8, 8))
    assert len(fig.axes) == 3
    assert_renders(fig, tmp_path)


def test_plot_weights_wrong_image_shape_names_both():
    with pytest.raises(ValueError, match=r"\(100, 10\).*D=100.*\(32, 32, 3\).*3072"):
        plot.plot_weights(np.zeros((100, 10)))
    with pytest.raises(ValueError, match="transposed"):
        plot.plot_weights(np.zeros((10, 64)), image_shape=(8, 8))
    with pytest.raises(ValueError, match="3 class_names for 10 classes"):
        plot.plot_weights(np.zeros((64, 10)), image_shape=(8, 8), class_names=["a", "b", "c"])


def test_plot_weights_constant_template_does_not_divide_by_zero():
    fig = plot.plot_weights(np.ones((64, 2)), image_shape=(8, 8))  # RuntimeWarnings are errors here
    assert np.all(np.asarray(fig.axes[0].get_images()[0].get_array()) == 0)


# ------------------------------------------------------------------ plot_contour_path
def quadratic(x, y):
    return x**2 + 10 * y**2


def rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def descend(grad, start, lr, steps, decay=1.0):
    p, path = np.array(start, dtype=float), [tuple(start)]
    for _ in range(steps):
        p = p - lr * grad(p)
        lr *= decay
        path.append(tuple(p))
    return path


def test_plot_contour_path_draws_contours_path_start_and_end(tmp_path):
    path = descend(lambda p: np.array([2 * p[0], 20 * p[1]]), (-1.8, 1.5), lr=0.08, steps=25, decay=0.97)
    fig = plot.plot_contour_path(quadratic, path)
    (ax,) = fig.axes
    assert len(ax.collections) >= 1  # the contour set
    assert [line.get_label() for line in ax.get_lines()] == ["path", "start", "end"]
    xs, ys = ax.get_lines()[0].get_data()
    assert len(xs) == 26 and ax.get_lines()[0].get_marker() == "o"
    assert ax.get_lines()[1].get_data()[0][0] == pytest.approx(-1.8)
    assert ax.get_lines()[2].get_data()[1][0] == pytest.approx(path[-1][1])
    assert ax.get_xlim() == (-2, 2) and ax.get_ylim() == (-2, 2)
    assert_renders(fig, tmp_path, "contour.png")


def test_plot_contour_path_on_given_axes_with_log_scale(tmp_path):
    fig0, axes = plt.subplots(1, 2)
    path = np.array([[-1.5, 2.0], [-1.0, 1.0], [0.0, 0.2], [0.9, 0.8]])
    fig = plot.plot_contour_path(rosenbrock, path, ax=axes[1], xlim=(-2, 2), ylim=(-1, 3), log_scale=True)
    assert fig is fig0
    assert len(axes[0].get_lines()) == 0 and len(axes[1].get_lines()) == 3
    (contours,) = axes[1].collections
    assert isinstance(contours.norm, matplotlib.colors.LogNorm)
    assert axes[1].get_ylim() == (-1, 3)
    assert_renders(fig, tmp_path)


def test_plot_contour_path_without_path_and_backend_path(xp_device, tmp_path):
    fig = plot.plot_contour_path(quadratic, levels=10)
    assert len(fig.axes[0].get_lines()) == 0
    path = xpnet.asarray(np.array([[1.0, 1.0], [0.5, 0.2], [0.1, 0.0]]))
    fig = plot.plot_contour_path(quadratic, path)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_data()[0], [1.0, 0.5, 0.1])
    assert_renders(fig, tmp_path)


def test_plot_contour_path_bad_input():
    with pytest.raises(ValueError, match=r"\(n, 2\).*\(3, 3\)"):
        plot.plot_contour_path(quadratic, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="returned shape"):
        plot.plot_contour_path(lambda x, y: 1.0)
    with pytest.raises(ValueError, match="log_scale"):
        plot.plot_contour_path(lambda x, y: -(x**2) - y**2 - 1, log_scale=True)


# ------------------------------------------------------------------ plot_images
def test_plot_images_cifar_rows_with_predictions(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(12, 3072), dtype=np.uint8)
    labels = np.arange(12) % 10
    predictions = labels.copy()
    predictions[[1, 4]] = 0
    fig = plot.plot_images(images, labels, class_names=CIFAR_CLASSES, predictions=predictions, ncols=6)
    assert len(fig.axes) == 12
    assert all(ax.get_images()[0].get_array().shape == (32, 32, 3) for ax in fig.axes)
    titles = [ax.title for ax in fig.axes]
    assert titles[0].get_text() == "plane" and titles[1].get_text() == "plane (car)"
    red = [i for i, t in enumerate(titles) if matplotlib.colors.same_color(t.get_color(), "red")]
    assert red == [1, 4]
    assert_renders(fig, tmp_path, "images.png")


@pytest.mark.parametrize(
    "shape, shown",
    [
        ((5, 64), (8, 8)),
        ((5, 28, 28), (28, 28)),
        ((5, 16, 16, 1), (16, 16)),
        ((5, 16, 16, 3), (16, 16, 3)),
        ((5, 3, 16, 16), (16, 16, 3)),
    ],
)
def test_plot_images_shapes_and_float_rescaling(shape, shown, tmp_path):
    images = np.random.default_rng(1).normal(size=shape)  # mean-subtracted-like floats
    fig = plot.plot_images(images, labels=[0, 1, 2, 3, 4])
    assert len(fig.axes) == 5
    shown_array = np.asarray(fig.axes[2].get_images()[0].get_array())
    assert shown_array.shape == shown
    assert shown_array.min() == pytest.approx(0.0) and shown_array.max() == pytest.approx(1.0)
    assert fig.axes[2].get_title() == "2"
    assert_renders(fig, tmp_path)


def test_plot_images_from_any_backend(xp_device):
    images = xpnet.asarray(np.random.default_rng(2).random((4, 8, 8)))
    fig = plot.plot_images(images, predictions=xpnet.asarray(np.array([1, 2, 3, 4])))
    assert [ax.get_title() for ax in fig.axes] == ["1", "2", "3", "4"]


def test_plot_images_bad_input():
    with pytest.raises(ValueError, match="D=50 is neither a perfect square"):
        plot.plot_images(np.zeros((4, 50)))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        plot.plot_images(np.zeros((4, 8, 8, 5)))
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        plot.plot_images(np.zeros((4, 8, 8)), labels=[0, 1, 2])
    with pytest.raises(ValueError, match="label 12 has no class name"):
        plot.plot_images(np.zeros((1, 8, 8)), labels=[12], class_names=CIFAR_CLASSES)
    with pytest.raises(ValueError, match=r"images\[:32\]"):
        plot.plot_images(np.zeros((1000, 64)))


# ------------------------------------------------------------------ failed calls
def _bad_calls():
    """Mistakes a student makes, each with the error and the words that show the fix."""
    history = make_history()
    model = xpnet.nn.Sequential(xpnet.nn.Linear(64, 10, rng=0))
    images = np.random.default_rng(3).random((16, 8, 8))
    return {
        "history metrics=[]": (lambda: plot.plot_history(history, metrics=[]), ValueError,
                               r"at least one metric, got \[\].*metrics='loss'.*\['loss', 'accuracy', 'lr'\]"),
        "history of a float": (lambda: plot.plot_history({"loss": 1.5}), TypeError,
                               r"history\['loss'\] must be a list with one number per epoch, got float 1.5"),
        "history of a string": (lambda: plot.plot_history({"loss": "0.5"}), TypeError, r"got str '0.5'"),
        "weights image_shape=64": (lambda: plot.plot_weights(model, image_shape=64), ValueError,
                                   r"shape of one input image.*got int 64.*image_shape=\(8, 8\)"),
        "weights 4 channels": (lambda: plot.plot_weights(np.zeros((256, 2)), image_shape=(4, 8, 8)), ValueError,
                               r"image_shape=\(4, 8, 8\) has no colour axis"),
        "weights ncols=2.5": (lambda: plot.plot_weights(model, image_shape=(8, 8), ncols=2.5), ValueError,
                              r"ncols must be a whole number >= 1, got 2.5"),
        "weights ncols=0": (lambda: plot.plot_weights(model, image_shape=(8, 8), ncols=0), ValueError,
                            r"ncols must be a whole number >= 1, got 0"),
        "images names as labels": (lambda: plot.plot_images(images, ["cat"] * 16), ValueError,
                                   r"labels must be integer class indices.*\['cat', 'cat', 'cat'\].*class_names"),
        "images fractional predictions": (lambda: plot.plot_images(images, predictions=np.full(16, 0.5)),
                                          ValueError, r"predictions must be integer class indices"),
        "images one unbatched image": (lambda: plot.plot_images(np.zeros((28, 28))), ValueError,
                                       r"one 28x28 image, add the batch axis: images\[None\]"),
        "images label without a name": (lambda: plot.plot_images(np.zeros((4, 8, 8), np.uint8), [0, 1, 2, 3],
                                                                 class_names=["a", "b"]),
                                         ValueError, r"label 2 has no class name.*labels 0 to 1"),
        "images ncols=2.5": (lambda: plot.plot_images(images, ncols=2.5), ValueError, r"ncols must be a whole"),
        "contour (5, 3) path": (lambda: plot.plot_contour_path(quadratic, np.ones((5, 3))), ValueError,
                                r"\(n, 2\).*\(5, 3\)"),
        "contour scalar f": (lambda: plot.plot_contour_path(lambda x, y: 1.0), ValueError, "returned shape"),
        "contour log of negative f": (lambda: plot.plot_contour_path(lambda x, y: -(x**2) - 1, log_scale=True),
                                      ValueError, "log_scale"),
        "contour path of words": (lambda: plot.plot_contour_path(quadratic, ["a", "b"]), TypeError,
                                  r"path point must be numbers \(x, y\).*got str 'a'"),
    }


@pytest.mark.parametrize("name", list(_bad_calls()))
def test_a_mistake_says_how_to_fix_it_and_leaves_no_figure(name):
    call, error, message = _bad_calls()[name]
    before = plt.get_fignums()
    with pytest.raises(error, match=message):
        call()
    assert plt.get_fignums() == before


@pytest.mark.parametrize(
    "call",
    [
        lambda: plot.plot_history(make_history()),
        lambda: plot.plot_weights(np.ones((64, 3)), image_shape=(8, 8)),
        lambda: plot.plot_contour_path(quadratic, [(1.0, 1.0), (0.0, 0.0)]),
        lambda: plot.plot_images(np.zeros((3, 8, 8)), labels=[0, 1, 2]),
    ],
    ids=["history", "weights", "contour", "images"],
)
def test_a_figure_that_fails_while_drawing_is_closed(call, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    # Every function draws through these; an error here stands for one matplotlib raises while drawing.
    monkeypatch.setattr(matplotlib.axes.Axes, "set_xlabel", broken)
    monkeypatch.setattr(matplotlib.axes.Axes, "set_axis_off", broken)
    before = plt.get_fignums()
    with pytest.raises(RuntimeError, match="drawing failed"):
        call()
    assert plt.get_fignums() == before


def test_a_mistake_with_ax_leaves_the_callers_axes_untouched():
    fig, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="returned shape"):
        plot.plot_contour_path(lambda x, y: 1.0, [(1.0, 1.0)], ax=axes[0])
    assert not axes[0].collections and not axes[0].get_lines()
    assert plt.get_fignums() == [fig.number]  # the caller's figure stays theirs to close


def test_plot_contour_path_accepts_a_path_of_variables():
    steps = [xpnet.Variable([1.0, 2.0], dtype="float64"), xpnet.Variable([0.5, 1.0], dtype="float64")]
    fig = plot.plot_contour_path(quadratic, steps)
    xs, ys = fig.axes[0].get_lines()[0].get_data()
    np.testing.assert_allclose(xs, [1.0, 0.5])
    np.testing.assert_allclose(ys, [2.0, 1.0])
    whole = xpnet.Variable(np.array([[1.0, 2.0], [0.5, 1.0]]), dtype="float64")
    np.testing.assert_allclose(plot.plot_contour_path(quadratic, whole).axes[0].get_lines()[0].get_data()[1],
                               [2.0, 1.0])


def test_plot_contour_path_catches_a_path_that_repeats_one_variable():
    point = xpnet.Variable([1.0, 2.0], dtype="float64")
    before = plt.get_fignums()
    with pytest.raises(ValueError, match=r"same xpnet.Variable more than once.*point.numpy\(\)"):
        plot.plot_contour_path(quadratic, [point, point, point])
    assert plt.get_fignums() == before


def test_figures_pickle_like_any_matplotlib_figure():
    import pickle

    fig = plot.plot_images(np.zeros((2, 8, 8)), labels=[0, 1])
    copy = pickle.loads(pickle.dumps(fig))
    assert [ax.get_title() for ax in copy.axes] == ["0", "1"]


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    for call in (
        lambda: plot.plot_history({"loss": [1.0]}),
        lambda: plot.plot_weights(np.zeros((4, 1)), (2, 2)),
        lambda: plot.plot_contour_path(quadratic),
        lambda: plot.plot_images(np.zeros((1, 4))),
    ):
        with pytest.raises(ImportError, match=r'pip install "xpnet\[plot\]"'):
            call()


def test_public_api():
    assert set(plot.__all__) == {"plot_history", "plot_weights", "plot_contour_path", "plot_images"}


# ------------------------------------------------------------------ showing figures
SCRIPT = """
import matplotlib.pyplot as plt
import numpy as np
import xpnet
from xpnet import plot

figures = [
    xpnet.History({"loss": [1.0, 0.5]}).plot(),
    plot.plot_weights(np.ones((4, 2)), image_shape=(2, 2)),
    plot.plot_contour_path(lambda x, y: x**2 + y**2, [(1.0, 1.0), (0.0, 0.0)]),
    plot.plot_images(np.zeros((2, 4))),
]
assert plt.get_fignums() == [f.number for f in figures], plt.get_fignums()
for figure in figures:
    figure.show()
plt.show()
print("shown", len(figures))
"""


def test_figures_show_in_a_script_with_plt_show_and_fig_show():

    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(_repo_root())}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "shown 4" in done.stdout


def _repo_root():
    from pathlib import Path

    return Path(xpnet.__file__).resolve().parent.parent


NOTEBOOK_CELLS = [
    "import numpy as np\nimport xpnet\nfrom xpnet import plot",
    "xpnet.History({'loss': [1.0, 0.5]}).plot()",
    "plot.plot_weights(np.ones((4, 2)), image_shape=(2, 2))",
    "fig = plot.plot_images(np.zeros((2, 4)))\nimport matplotlib.pyplot as plt\nplt.show()",
    "fig = plot.plot_contour_path(lambda x, y: x**2 + y**2)\nprint('not the last value')",
    "print('no figure here')",
    # Drawing on your own axes: the returned figure is yours, still shown once as the last value.
    "fig, axes = plt.subplots(1, 2)\nplot.plot_contour_path(lambda x, y: x**2 + y**2, ax=axes[0])\n"
    "plot.plot_contour_path(lambda x, y: x**2 + y**2, ax=axes[1])",
]


EXECUTE_NOTEBOOK = """
import json, os, sys
import nbclient, nbformat
cells = json.loads(sys.argv[1])
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
print(json.dumps([sum("image/png" in out.get("data", {}) for out in cell.outputs) for cell in nb.cells]))
"""


def test_figures_display_once_in_an_executed_notebook():
    pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    import json

    # A stock kernel: no %matplotlib magic and no backend forced from outside. A subprocess, because
    # starting a kernel imports ipykernel into this process, which other code reads as "in a notebook".
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_repo_root()), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", EXECUTE_NOTEBOOK, json.dumps(NOTEBOOK_CELLS), str(_repo_root())],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    images = json.loads(done.stdout.strip().splitlines()[-1])
    assert images == [0, 1, 1, 1, 1, 0, 1]
