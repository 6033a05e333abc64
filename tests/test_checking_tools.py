"""The checking tools users run on their own layers: ``xpnet.gradcheck`` must fail a
wrong backward (also one that writes into its ``grad_out``) and pass a correct one at
any output scale; ``xpnet.testing.check_layer_parity`` must compare the gradient of
every parameter, inside a Sequential or a user's own module too."""

import numpy as np
import pytest

import xpnet
from xpnet import gradcheck, nn
from xpnet.errors import ShapeError
from xpnet.testing import check_layer_parity

RNG = np.random.default_rng(7)
X = RNG.standard_normal((6, 4))


class DoublesGradOutInPlace(nn.Linear):
    """Wrong by 2x, and hides it from a check that reuses g for its objective."""

    def backward(self, grad_out):
        grad_out *= 2.0
        return super().backward(grad_out)


class MasksGradOutInPlace(nn.ReLU):
    """Right values, but ``g *= mask`` changes the caller's gradient."""

    def forward(self, x):
        self._mask = x > 0
        return x * self._mask

    def backward(self, grad_out):
        grad_out *= self._mask
        return grad_out


class ZeroesInput(nn.Identity):
    def forward(self, x):
        x[...] = 0.0
        return x


class OffByOnePercent(nn.Linear):
    """dW 1 % too large: what a check must still catch at its default tolerances."""

    def backward(self, grad_out):
        dx = super().backward(grad_out)
        self.grads["W"] = self.grads["W"] * 1.01
        return dx


class DoublesWOffNumpy(nn.Linear):
    """Right on NumPy (the parity reference), dW 2x on every other backend."""

    def backward(self, grad_out):
        dx = super().backward(grad_out)
        if xpnet.device_of(grad_out).backend != "numpy":
            self.grads["W"] = self.grads["W"] * 2.0
        return dx


class TwoLayerBlock(nn.Module):
    """A user module with children, not a Sequential."""

    def __init__(self, inner):
        super().__init__()
        self.first, self.second = nn.Linear(4, 5), inner

    def children(self):
        return [self.first, self.second]

    def forward(self, x):
        return self.second.forward(self.first.forward(x))

    def backward(self, grad_out):
        return self.first.backward(self.second.backward(grad_out))


# ------------------------------------------------------------------ gradcheck, in place
def test_check_layer_fails_a_backward_that_doubles_grad_out_in_place():
    report = gradcheck.check_layer(DoublesGradOutInPlace(4, 3), X)
    assert not report.passed
    assert not report["W"].passed and not report["b"].passed and not report["input"].passed
    assert "DoublesGradOutInPlace.backward modified its grad_out in place" in report["g in place"].note
    with pytest.raises(AssertionError, match="g = g \\* mask, not g \\*= mask"):
        report.raise_if_failed()


def test_check_layer_reports_g_times_mask_in_place_even_when_the_values_are_right():
    x = np.where(RNG.random((5, 3)) < 0.5, -1.0, 1.0) * RNG.uniform(0.1, 2.0, (5, 3))  # away from the kink
    report = gradcheck.check_layer(MasksGradOutInPlace(), x)
    assert report["input"].passed
    assert [c.name for c in report.checks if not c.passed] == ["g in place"]


def test_check_layer_reports_a_forward_that_writes_into_its_input_and_spares_the_callers():
    x, g = X.copy(), RNG.standard_normal(X.shape)
    x_before, g_before = x.copy(), g.copy()
    report = gradcheck.check_layer(ZeroesInput(), x)
    assert "ZeroesInput.forward or .backward modified its input in place" in report["x in place"].note
    gradcheck.check_layer(DoublesGradOutInPlace(4, 3), x, grad_out=g[:, :3])
    assert np.array_equal(x, x_before) and np.array_equal(g, g_before)


def test_check_model_reports_a_layer_that_modifies_the_loss_gradient():
    xpnet.seed(0)
    model = nn.Sequential(nn.Linear(4, 3), DoublesGradOutInPlace(3, 2))
    report = gradcheck.check_model(model, "mse", X, RNG.standard_normal((6, 2)))
    assert not report["1.W"].passed
    assert "Sequential.backward (or a layer in it) modified its grad_out in place" in report["g in place"].note


def test_check_layer_grad_out_of_the_wrong_shape_says_which_shape():
    with pytest.raises(ShapeError, match=r"grad_out has shape \(6, 2\), expected the output's shape \(6, 3\)"):
        gradcheck.check_layer(nn.Linear(4, 3), X, grad_out=np.ones((6, 2)))


# ------------------------------------------------------------------ gradcheck, scale
def _regression_model():
    xpnet.seed(0)
    return nn.Sequential(nn.Linear(20, 10), nn.Tanh(), nn.Linear(10, 3))


@pytest.mark.parametrize("target_scale", [1.0, 100.0, 1000.0])
def test_check_model_passes_a_correct_model_with_large_targets(target_scale):
    rng = np.random.default_rng(0)
    x, targets = rng.standard_normal((16, 20)), rng.standard_normal((16, 3)) * target_scale
    gradcheck.check_model(_regression_model(), "mse", x, targets).raise_if_failed()


@pytest.mark.parametrize("target_scale", [1.0, 100.0])
def test_a_one_percent_error_still_fails_at_any_output_scale(target_scale):
    rng = np.random.default_rng(0)
    x, targets = rng.standard_normal((16, 20)), rng.standard_normal((16, 3)) * target_scale
    model = _regression_model()
    model.layers[2] = OffByOnePercent(10, 3)
    report = gradcheck.check_model(model, "mse", x, targets)
    assert [c.name for c in report.checks if not c.passed] == ["2.W"]
    assert not gradcheck.check_layer(OffByOnePercent(4, 3), X)["W"].passed


def test_numerical_gradient_divides_by_the_step_actually_taken():
    # 1e9 + 1e-6 rounds to 1e9 + 8 ulps (9.5e-7): dividing by 2h would give 0.95
    grad = gradcheck.numerical_gradient(lambda v: v[0] * 1.0, np.array([1e9]))
    assert grad[0] == pytest.approx(1.0, rel=1e-12)


def test_the_report_names_the_float64_copy_it_checked_on_one_line():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())  # float32
    header = str(gradcheck.check_layer(model, X)).splitlines()[0]
    assert header == "gradient check of Sequential(Linear(4→3), ReLU()) in float64 on cpu: passed"
    header = str(gradcheck.check_model(model, "mse", X, np.ones((6, 3)))).splitlines()[0]
    assert header.startswith("gradient check of Sequential(Linear(4→3), ReLU()) with MeanSquaredError() in float64")


# ------------------------------------------------------------------ parity, composite modules
def _other_backends():
    params = [pytest.param("strict", id="strict")]
    params.append(pytest.param("torch", id="torch", marks=pytest.mark.skipif(
        not any(d.backend == "torch" for d in xpnet.testing.available_devices(["torch"])),
        reason="torch is not installed")))
    return params


@pytest.mark.parametrize("device", _other_backends())
@pytest.mark.parametrize("wrap, name", [
    pytest.param(lambda inner: inner, "W", id="plain"),
    pytest.param(lambda inner: nn.Sequential(inner), "0.W", id="sequential"),
    pytest.param(lambda inner: nn.Sequential(nn.Linear(4, 4), nn.Tanh(), inner), "2.W", id="deeper-sequential"),
    pytest.param(lambda inner: TwoLayerBlock(inner), "1.W", id="user-module"),
])
def test_parity_compares_every_parameter_gradient_by_qualified_name(device, wrap, name):
    width = 5 if name == "1.W" else 4
    with pytest.raises(AssertionError, match=rf"{device}\S*/float32 grad {name.replace('.', '[.]')}: values differ"):
        check_layer_parity(lambda: wrap(DoublesWOffNumpy(width, 3)), X, devices=[device], dtypes=["float32"])
    check_layer_parity(lambda: wrap(nn.Linear(width, 3)), X, devices=[device], dtypes=["float32"])


def test_parity_names_a_parameter_whose_gradient_backward_never_stored():
    class ForgetsBias(nn.Linear):
        """Zero gradients from __init__ must not pass for the bias gradient it never stores."""

        def __init__(self, *args):
            super().__init__(*args)
            self.zero_grad()

        def backward(self, grad_out):
            saved = dict(self.grads)
            dx = super().backward(grad_out)
            self.grads["b"] = saved.get("b")
            if self.grads["b"] is None:
                del self.grads["b"]
            return dx

    with pytest.raises(AssertionError, match=r"no gradient for parameter 0\.b .*ForgetsBias\.backward must store"):
        check_layer_parity(lambda: nn.Sequential(ForgetsBias(4, 3)), X, devices=["cpu"])


def test_parity_says_how_to_fix_a_backward_that_modifies_grad_out():
    x = np.where(RNG.random((5, 3)) < 0.5, -1.0, 1.0) * RNG.uniform(0.1, 2.0, (5, 3))
    with pytest.raises(AssertionError, match=r"cpu/float64 grad_out was modified in place; .*g = g \* mask"):
        check_layer_parity(MasksGradOutInPlace, x, devices=["cpu"])


def test_numerical_gradient_of_a_float32_point_is_computed_in_float64():
    """A float32 x (xpnet's default dtype) rounded a 1e-6 step away: gradients of
    sum(v * v) at [1.3, -0.7, 2.1] came out as [2.38, -1.43, 4.05]."""
    from xpnet.errors import DtypeMismatchError

    x = xpnet.asarray(np.array([1.3, -0.7, 2.1]), dtype="float32")
    grad = gradcheck.numerical_gradient(lambda v: (v * v).sum(), x)
    np.testing.assert_allclose(grad, 2 * xpnet.to_numpy(x).astype(np.float64), rtol=1e-7)
    layer = xpnet.nn.Linear(3, 2)  # float32 parameters refuse float64 input
    with pytest.raises(DtypeMismatchError, match=r"numerical_gradient evaluates f at float64 points .* "
                                                 r"model.to\(dtype='float64'\)"):
        gradcheck.numerical_gradient(lambda v: layer.forward(v[None, :]).sum(), x)


# ------------------------------------------------- the mistakes a student makes first
DOCS_X = np.random.default_rng(0).standard_normal((8, 4))  # how the docs and notebooks build x


class TransposedWeightGradient(nn.Linear):
    """dW = g.T @ x instead of x.T @ g: right shape in a square Linear, wrong values."""

    def backward(self, grad_out):
        dx = super().backward(grad_out)
        self.grads["W"] = grad_out.T @ self._x
        return dx

    def forward(self, x):
        self._x = x
        return super().forward(x)


class LeakyReluMaskFromGradOut(nn.Module):
    def forward(self, x):
        self._x = x
        return xpnet.backend.array_namespace(x).where(x > 0, x, 0.1 * x)

    def backward(self, grad_out):
        return xpnet.backend.array_namespace(grad_out).where(grad_out > 0, grad_out, 0.1 * grad_out)


@pytest.mark.parametrize("layer", [TransposedWeightGradient(4, 4), LeakyReluMaskFromGradOut()],
                         ids=["transposed dW", "mask from grad_out"])
def test_check_layer_fails_mistakes_symmetric_in_x_and_g_with_the_docs_data(layer):
    report = gradcheck.check_layer(layer, DOCS_X)
    assert not report.passed, report
    assert not np.allclose(gradcheck.default_grad_out(DOCS_X.shape, 0), DOCS_X)


class ReturnsNothing(nn.Tanh):
    def backward(self, grad_out):
        super().backward(grad_out)


class Accumulates(nn.Linear):
    def backward(self, grad_out):
        before = dict(self.grads)
        dx = super().backward(grad_out)
        for k in ("W", "b"):
            self.grads[k] = before[k] + self.grads[k]
        return dx


class StoresIntoTheBuffer(nn.Linear):
    """Writes the right values into the gradient array already stored (works in training)."""

    def backward(self, grad_out):
        old = {k: self.grads.get(k) for k in ("W", "b")}
        dx = super().backward(grad_out)
        for k, buffer in old.items():
            if buffer is not None:
                buffer[...] = self.grads[k]
                self.grads[k] = buffer
        return dx


def test_a_backward_that_returns_none_is_named_in_both_tools():
    report = gradcheck.check_layer(ReturnsNothing(), X)
    assert "backward returned None: it must return dL/dx of shape (6, 4)" in report["input"].note
    with pytest.raises(AssertionError, match=r"ReturnsNothing.backward returned None.*\(6, 4\)"):
        check_layer_parity(ReturnsNothing, X, devices=["cpu"])


def test_a_backward_that_accumulates_is_named_in_both_tools():
    report = gradcheck.check_layer(Accumulates(4, 3), X)
    assert "added to the stored gradient instead of overwriting it" in report["W"].note, report
    with pytest.raises(AssertionError, match=r"read self.grads\['W'\] before storing it.*overwrite, don't accumulate"):
        check_layer_parity(lambda: Accumulates(4, 3), X, devices=["cpu"])


def test_right_values_written_into_the_stored_buffer_pass():
    assert gradcheck.check_layer(StoresIntoTheBuffer(4, 3), X).passed


class DrawsFromNumpyRandom(nn.Module):
    """A textbook inverted dropout, right backward, wrong random numbers."""

    def forward(self, x):
        self._mask = (np.random.random(tuple(x.shape)) >= 0.5) / 0.5
        return x * self._mask

    def backward(self, grad_out):
        return grad_out * self._mask


class CountsCalls(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * self.calls

    def backward(self, grad_out):
        return grad_out * self.calls


class NumpyRandomWeights(nn.Linear):
    def __init__(self):
        super().__init__(4, 3)
        self.params["W"] = xpnet.asarray(np.random.randn(4, 3))


@pytest.mark.parametrize("layer", [DrawsFromNumpyRandom, CountsCalls])
def test_check_layer_says_when_a_forward_is_not_reproducible(layer):
    report = gradcheck.check_layer(layer(), X)
    assert not report.passed and "forward is not reproducible" in report["forward"].note
    assert "xpnet.random.generator()" in str(report)


def test_check_model_says_when_a_forward_is_not_reproducible():
    report = gradcheck.check_model(nn.Sequential(nn.Linear(4, 2), DrawsFromNumpyRandom()), "mse", X,
                                   np.zeros((6, 2)))
    assert "forward is not reproducible" in report["forward"].note


def test_parity_says_when_a_forward_is_not_reproducible():
    with pytest.raises(AssertionError, match="forward is not reproducible.*xpnet.random.generator"):
        check_layer_parity(NumpyRandomWeights, X, devices=["cpu"])


def test_a_failed_tensor_names_its_worst_element():
    class LastBiasWrong(nn.Linear):
        def backward(self, grad_out):
            dx = super().backward(grad_out)
            self.grads["b"] = self.grads["b"] + xpnet.asarray([0.0, 0.0, 1.0])
            return dx

    report = gradcheck.check_layer(LastBiasWrong(4, 3), X)
    b = report["b"]
    assert b.worst_index == (2,)
    assert b.analytic_value - b.numerical_value == pytest.approx(1.0)
    assert f"worst at [2]: analytic {b.analytic_value:.6g}, numerical {b.numerical_value:.6g}" in str(report)


# ------------------------------------------------------------------- arguments
@pytest.mark.parametrize("call, message", [
    (lambda: check_layer_parity(nn.Linear(4, 3), X), r"layer_factory must be a callable that builds the layer "
                                                      r"\(lambda: Linear\(4, 3\)\), got a Linear instance"),
    (lambda: check_layer_parity(lambda: 3, X, devices=["cpu"]), "layer_factory returned int 3, expected an "
                                                                 "xpnet.nn.Module"),
    (lambda: xpnet.testing.check_loss_parity(xpnet.losses.MeanSquaredError(), X, X),
     "loss_factory must be a callable that builds the loss"),
    (lambda: check_layer_parity(lambda: nn.Linear(4, 3), X, devices="torch"),
     r"check_layer_parity: devices must be a list, e.g. \['torch'\], got the str 'torch'"),
    (lambda: check_layer_parity(lambda: nn.Linear(4, 3), X, dtypes="float32"),
     r"check_layer_parity: dtypes must be a list, e.g. \['float32'\], got the str 'float32'"),
    (lambda: check_layer_parity(lambda: nn.Linear(4, 3), X, seed=1.5), "check_layer_parity: seed must be an integer"),
    (lambda: gradcheck.check_layer(nn.Linear(4, 3), X, seed="a"), "check_layer: seed must be an integer"),
])
def test_argument_mistakes_name_the_tool_and_the_argument(call, message):
    with pytest.raises(TypeError, match=message):
        call()


@pytest.mark.parametrize("kwargs", [{"devices": []}, {"dtypes": []}, {"devices": ["cpu"], "dtypes": ()}])
def test_parity_that_would_compare_nothing_is_an_error(kwargs):
    with pytest.raises(ValueError, match="is empty, so nothing would be compared"):
        check_layer_parity(lambda: nn.Linear(4, 3), X, **kwargs)
    with pytest.raises(ValueError, match="is empty, so nothing would be compared"):
        xpnet.testing.check_loss_parity(xpnet.losses.MeanSquaredError, X, X, **kwargs)


def test_parity_with_no_working_selected_device_is_an_error(monkeypatch):
    if xpnet.testing.available_devices(["cuda"]):
        pytest.skip("a GPU answers here: the selection is not empty")
    monkeypatch.setenv("XPNET_TEST_DEVICES", "cuda")
    with pytest.raises(xpnet.errors.BackendUnavailableError, match="nothing would be compared.*cuda unavailable"):
        check_layer_parity(lambda: nn.Linear(4, 3), X)


# ---------------------------------------------------------------- float32 tolerance
PIXELS = np.random.default_rng(0).integers(0, 256, (64, 784)).astype(float)  # MNIST before scaling


def test_float32_parity_on_raw_pixels_says_how_to_set_the_tolerance_and_accepts_one():
    with pytest.raises(AssertionError, match=r"float32 rounds every sum.*pass rtol=/atol="):
        check_layer_parity(lambda: nn.Linear(784, 10), PIXELS, devices=["cpu"], dtypes=["float32"])
    report = check_layer_parity(lambda: nn.Linear(784, 10), PIXELS, devices=["cpu"], dtypes=["float32"],
                                rtol=1e-3, atol=1e-4)
    assert report.checked == ["cpu/float32"]


def test_assert_close_takes_a_tolerance():
    with pytest.raises(AssertionError):
        xpnet.testing.assert_close(np.array([1.0, 2.0]), np.array([1.0, 2.001]), dtype="float64")
    xpnet.testing.assert_close(np.array([1.0, 2.0]), np.array([1.0, 2.001]), dtype="float64", rtol=1e-3)



class RecordsNamespace(nn.Module):
    """A parameterless layer that records, on its class, the namespace each forward ran on
    (the tools check a deep copy, so an instance attribute would not reach the test)."""

    seen: list = []

    def forward(self, x):
        RecordsNamespace.seen.append(x.__array_namespace__().__name__)
        return x * 1.0

    def backward(self, grad_out):
        return grad_out * 1.0


@pytest.mark.parametrize("tool", ["check_layer", "check_model"])
def test_a_parameterless_module_is_checked_where_x_lives(tool):
    strict = xpnet.backend.resolve_device("strict")
    x = strict.asarray(X, dtype="float64")
    RecordsNamespace.seen = []
    if tool == "check_layer":
        report = gradcheck.check_layer(RecordsNamespace(), x)
    else:
        report = gradcheck.check_model(nn.Sequential(RecordsNamespace()), "mse", x,
                                       strict.asarray(np.ones(X.shape)))
    report.raise_if_failed()
    assert RecordsNamespace.seen and set(RecordsNamespace.seen) == {"array_api_strict"}
