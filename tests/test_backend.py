"""Device selection (``xpnet.use`` / ``using``), the CUDA failure modes, and moving
data between devices (``asarray``, ``to_numpy``, ``device_of``)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet import backend
from xpnet.backend import dtype_name
from xpnet.errors import (
    BackendUnavailableError,
    ConflictingCupyError,
    CudaDriverError,
    CupyNotInstalledError,
    DeviceIndexError,
    NoGPUError,
    UnknownDeviceError,
)

HAS_JAX = importlib.util.find_spec("jax") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None

needs_jax = pytest.mark.skipif(not HAS_JAX, reason="jax is not installed")
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")


@pytest.fixture(autouse=True)
def _restore_setting():
    """Every test here changes the module-level device/dtype; put them back after."""
    with xpnet.using():
        yield


# ------------------------------------------------------------------ use / using
@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("cpu", "cpu"),
        ("numpy", "cpu"),
        ("strict", "strict"),
        ("strict:device1", "strict:device1"),
        pytest.param("jax", "jax:cpu", marks=needs_jax),
        pytest.param("jax:cpu", "jax:cpu", marks=needs_jax),
        pytest.param("torch", "torch:cpu", marks=needs_torch),
        pytest.param("torch:cpu", "torch:cpu", marks=needs_torch),
    ],
)
def test_use_returns_canonical_device(spec, canonical):
    dev = xpnet.use(spec)
    assert isinstance(dev, xpnet.Device)
    assert dev.name == canonical
    assert str(dev) == canonical
    assert xpnet.current_device() == dev
    assert xpnet.current_device().name == canonical


def test_use_accepts_a_device_object():
    dev = xpnet.use("strict:device1")
    xpnet.use("cpu")
    assert xpnet.use(dev) == dev
    assert xpnet.current_device().name == "strict:device1"


def test_use_persists_across_threads():
    """The setting is module-level, not a ContextVar: a new thread (like a new
    notebook cell run by a different executor) sees the same device."""
    xpnet.use("strict", dtype="float64")
    seen = {}

    def read():
        seen["device"] = xpnet.current_device().name
        seen["dtype"] = xpnet.default_dtype()

    worker = threading.Thread(target=read)
    worker.start()
    worker.join()
    assert seen == {"device": "strict", "dtype": "float64"}


def test_using_blocks_in_parallel_threads_do_not_change_each_other():
    """fit and the scikit-learn estimators run inside ``using(model.device)``; with a
    process-global save-and-restore, two overlapping blocks in threads (a threaded
    GridSearchCV) restored each other's "previous" device and left the user's default
    changed. Each block's choice is now its own thread's."""
    xpnet.use("strict:device1", dtype="float64")
    inside = threading.Barrier(2)
    first_left = threading.Event()
    seen = {}

    def work(name, device, dtype):
        with xpnet.using(device, dtype=dtype):
            inside.wait()  # both blocks entered
            if name == "b":
                first_left.wait()  # "a" has left its block meanwhile
            seen[name] = (xpnet.current_device().name, xpnet.default_dtype())
        if name == "a":
            first_left.set()

    threads = [threading.Thread(target=work, args=("a", "cpu", "float32")),
               threading.Thread(target=work, args=("b", "strict", "float32"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": ("cpu", "float32"), "b": ("strict", "float32")}
    assert (xpnet.current_device().name, xpnet.default_dtype()) == ("strict:device1", "float64")


def test_use_inside_using_lasts_until_the_block_ends_for_every_thread():
    xpnet.use("cpu", dtype="float32")
    seen = []
    with xpnet.using("strict"):
        xpnet.use("strict:device1", dtype="float64")
        assert xpnet.current_device().name == "strict:device1"
        worker = threading.Thread(target=lambda: seen.append(xpnet.current_device().name))
        worker.start()
        worker.join()
    assert seen == ["strict:device1"]
    assert (xpnet.current_device().name, xpnet.default_dtype()) == ("cpu", "float32")


def test_use_persists_between_calls():
    xpnet.use("strict:device1")
    xpnet.asarray([1.0, 2.0])  # unrelated work does not reset it
    assert xpnet.current_device().name == "strict:device1"


def test_using_restores_device_and_dtype_on_normal_exit():
    xpnet.use("cpu", dtype="float32")
    with xpnet.using("strict", dtype="float64") as dev:
        assert dev.name == "strict"
        assert xpnet.current_device().name == "strict"
        assert xpnet.default_dtype() == "float64"
    assert xpnet.current_device().name == "cpu"
    assert xpnet.default_dtype() == "float32"


def test_using_restores_device_and_dtype_when_the_block_raises():
    xpnet.use("cpu", dtype="float32")
    with pytest.raises(KeyError, match="boom"), xpnet.using("strict:device1", dtype="float64"):
        assert xpnet.current_device().name == "strict:device1"
        raise KeyError("boom")
    assert xpnet.current_device().name == "cpu"
    assert xpnet.default_dtype() == "float32"


def test_using_nested_and_dtype_only():
    xpnet.use("strict", dtype="float32")
    with xpnet.using(dtype="float64") as dev:
        assert dev.name == "strict"  # no device given: keeps the current one
        assert xpnet.default_dtype() == "float64"
        with xpnet.using("cpu"):
            assert xpnet.current_device().name == "cpu"
            assert xpnet.default_dtype() == "float64"
        assert xpnet.current_device().name == "strict"
    assert xpnet.default_dtype() == "float32"


def test_using_restores_after_an_unknown_device():
    xpnet.use("strict")
    with pytest.raises(UnknownDeviceError), xpnet.using("tpu"):
        pass
    assert xpnet.current_device().name == "strict"


def test_use_dtype_changes_default_dtype():
    xpnet.use("cpu", dtype="float64")
    assert xpnet.default_dtype() == "float64"
    xpnet.use("cpu")  # dtype=None keeps the current default
    assert xpnet.default_dtype() == "float64"
    xpnet.use("cpu", dtype="float32")
    assert xpnet.default_dtype() == "float32"


def _dtype_spellings():
    import array_api_strict

    out = [
        ("float64", "float64"),
        ("float32", "float32"),
        (np.float64, "float64"),
        (np.float32, "float32"),
        (np.dtype("float64"), "float64"),
        (np.dtype("float32"), "float32"),
        (array_api_strict.float64, "float64"),
        (array_api_strict.float32, "float32"),
    ]
    if HAS_TORCH:
        import torch

        out += [(torch.float64, "float64"), (torch.float32, "float32")]
    if HAS_JAX:
        import jax.numpy as jnp

        out += [(jnp.float64, "float64"), (jnp.float32, "float32"), (jnp.dtype("float64"), "float64")]
    return out


@pytest.mark.parametrize(("dtype", "name"), _dtype_spellings(), ids=repr)
def test_use_accepts_every_dtype_spelling(dtype, name):
    other = "float32" if name == "float64" else "float64"
    xpnet.use("cpu", dtype=other)
    xpnet.use("cpu", dtype=dtype)
    assert xpnet.default_dtype() == name
    assert isinstance(xpnet.default_dtype(), str)


@pytest.mark.parametrize("dtype", ["int32", np.int64, "bool", "float16"], ids=repr)
def test_use_rejects_non_parameter_dtypes(dtype):
    xpnet.use("strict", dtype="float32")
    with pytest.raises(TypeError, match="float32 or float64"):
        xpnet.use("cpu", dtype=dtype)
    # a rejected call changes nothing
    assert xpnet.default_dtype() == "float32"
    assert xpnet.current_device().name == "strict"


def test_use_rejects_unknown_dtype():
    with pytest.raises(TypeError, match="unknown dtype"):
        xpnet.use("cpu", dtype="float128x")


def test_xpnet_device_env_var_sets_the_starting_device():
    root = str(Path(xpnet.__file__).resolve().parent.parent)
    env = {**os.environ, "XPNET_DEVICE": "strict"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    code = "import xpnet; print(xpnet.current_device().name, xpnet.default_dtype())"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["strict", "float32"]


def test_without_env_var_the_starting_device_is_cpu():
    root = str(Path(xpnet.__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if k != "XPNET_DEVICE"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    code = "import xpnet; print(xpnet.current_device().name)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cpu"


# ------------------------------------------------------------------ unknown strings
@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "cpu:1", "jax:tpu", "", "cuda:-1", "torch:tpu", "gpu:0:1"])
def test_unknown_device_strings(spec):
    xpnet.use("strict")
    with pytest.raises(UnknownDeviceError) as info:
        xpnet.use(spec)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert repr(spec) in message
    for valid in ("cpu", "cuda:N", "jax", "torch", "strict", "auto"):
        assert valid in message
    assert xpnet.current_device().name == "strict"


def test_unknown_device_type():
    with pytest.raises(UnknownDeviceError):
        xpnet.use(3)


def test_device_strings_are_case_and_space_insensitive():
    assert xpnet.use(" CPU ").name == "cpu"
    assert xpnet.use("STRICT").name == "strict"


def test_strict_device_string_is_case_insensitive():
    assert xpnet.use("Strict:Device1").name == "strict:device1"


# ------------------------------------------------------------------ CUDA failure modes
@pytest.fixture
def fresh_probe(monkeypatch):
    """An empty CuPy probe cache, so each scenario is probed anew and leaves nothing behind."""
    monkeypatch.setattr(backend._CupyBackend, "_probed", {})
    monkeypatch.setattr(backend._CupyBackend, "_auto_explained", False)
    yield
    backend._CupyBackend._probed.clear()


def _fake_cupy(get_device_count):
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    return fake


def _raise_insufficient_driver():
    raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient for CUDA runtime version")


def _no_cupy(monkeypatch):
    monkeypatch.setattr(backend, "_cupy_distributions", lambda: [])
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError


def _driver_missing(monkeypatch):
    monkeypatch.setattr(backend, "_cupy_distributions", lambda: ["cupy-cuda12x"])
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(_raise_insufficient_driver))


def _zero_gpus(monkeypatch):
    monkeypatch.setattr(backend, "_cupy_distributions", lambda: ["cupy-cuda12x"])
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0))


def _one_gpu(monkeypatch):
    monkeypatch.setattr(backend, "_cupy_distributions", lambda: ["cupy-cuda12x"])
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 1))


def _two_cupys(monkeypatch):
    monkeypatch.setattr(backend, "_cupy_distributions", lambda: ["cupy-cuda11x", "cupy-cuda12x"])
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 1))


def test_cuda_without_cupy(monkeypatch, fresh_probe):
    _no_cupy(monkeypatch)
    with pytest.raises(CupyNotInstalledError) as info:
        xpnet.use("cuda")
    assert 'pip install "xpnet[cuda12x]"' in str(info.value)
    assert isinstance(info.value, ImportError)
    assert not isinstance(info.value, (CudaDriverError, NoGPUError))


def test_cuda_without_cupy_in_this_environment(fresh_probe):
    """Unpatched: this test environment really has no CuPy."""
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here")
    with pytest.raises(CupyNotInstalledError, match=r'pip install "xpnet\[cuda12x\]"'):
        xpnet.use("cuda")


def test_cuda_with_insufficient_driver(monkeypatch, fresh_probe):
    _driver_missing(monkeypatch)
    with pytest.raises(CudaDriverError) as info:
        xpnet.use("cuda")
    message = str(info.value)
    assert "cudaErrorInsufficientDriver" in message
    assert "driver" in message.lower()
    assert not isinstance(info.value, (CupyNotInstalledError, NoGPUError))
    assert isinstance(info.value.__cause__, RuntimeError)


def test_cuda_with_no_gpu(monkeypatch, fresh_probe):
    _zero_gpus(monkeypatch)
    with pytest.raises(NoGPUError) as info:
        xpnet.use("gpu")
    assert "no GPU" in str(info.value)
    assert 'xpnet.use("cpu")' in str(info.value)
    assert not isinstance(info.value, (CupyNotInstalledError, CudaDriverError))


def test_cuda_index_out_of_range(monkeypatch, fresh_probe):
    _one_gpu(monkeypatch)
    with pytest.raises(DeviceIndexError) as info:
        xpnet.use("cuda:3")
    message = str(info.value)
    assert "cuda:3" in message
    assert "1 GPU(s)" in message
    assert "cuda:0" in message
    assert isinstance(info.value, IndexError)


def test_conflicting_cupy_distributions(monkeypatch, fresh_probe):
    _two_cupys(monkeypatch)
    with pytest.raises(ConflictingCupyError) as info:
        xpnet.use("cuda")
    message = str(info.value)
    assert "cupy-cuda11x" in message and "cupy-cuda12x" in message
    assert "pip uninstall -y cupy-cuda11x cupy-cuda12x" in message
    assert "pip install cupy-cuda12x" in message


def test_cuda_failure_classes_are_distinct():
    classes = [CupyNotInstalledError, CudaDriverError, NoGPUError, DeviceIndexError, ConflictingCupyError]
    for cls in classes:
        assert issubclass(cls, BackendUnavailableError)
        assert issubclass(cls, RuntimeError)
        assert not any(issubclass(cls, other) for other in classes if other is not cls)


@pytest.mark.parametrize("scenario", [_no_cupy, _driver_missing, _zero_gpus, _one_gpu, _two_cupys])
def test_gpu_available_is_false_and_never_raises(monkeypatch, fresh_probe, scenario):
    scenario(monkeypatch)
    assert xpnet.gpu_available() is False
    assert xpnet.gpu_available() is False  # the cached probe too


@pytest.mark.parametrize("scenario", [_no_cupy, _driver_missing, _zero_gpus, _two_cupys])
def test_auto_falls_back_to_cpu(monkeypatch, fresh_probe, scenario):
    scenario(monkeypatch)
    xpnet.use("strict")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the fallback's reason: see the test below
        assert xpnet.use("auto").name == "cpu"
    assert xpnet.current_device().name == "cpu"


@pytest.mark.parametrize(
    "scenario, reason",
    [(_driver_missing, "CudaDriverError"), (_zero_gpus, "NoGPUError"), (_two_cupys, "ConflictingCupyError")],
)
def test_auto_says_once_why_installed_cupy_was_not_used(monkeypatch, fresh_probe, scenario, reason):
    scenario(monkeypatch)
    with pytest.warns(UserWarning, match=rf'xpnet.use\("auto"\) chose the CPU: CuPy is installed.*\({reason}: ') as info:
        xpnet.use("auto")
    assert info[0].filename == __file__  # points at the caller's line, not inside xpnet
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert xpnet.use("auto").name == "cpu"  # once per process, not at every call


def test_auto_without_cupy_is_silent(monkeypatch, fresh_probe):
    _no_cupy(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert xpnet.use("auto").name == "cpu"


@pytest.mark.parametrize("scenario", [_no_cupy, _driver_missing, _zero_gpus, _one_gpu, _two_cupys])
def test_every_cuda_error_ends_with_the_cpu_alternative(monkeypatch, fresh_probe, scenario):
    scenario(monkeypatch)
    with pytest.raises(BackendUnavailableError) as info:
        xpnet.use("cuda:3" if scenario is _one_gpu else "cuda")
    assert str(info.value).endswith('xpnet.use("auto") picks the GPU when one works and the CPU otherwise, '
                                    'xpnet.use("cpu") always the CPU'), str(info.value)


def test_probe_result_is_cached(monkeypatch, fresh_probe):
    calls = []

    def count():
        calls.append(1)
        return 0

    monkeypatch.setattr(backend, "_cupy_distributions", lambda: ["cupy-cuda12x"])
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count))
    for _ in range(3):
        with pytest.raises(NoGPUError):
            xpnet.use("cuda")
    assert len(calls) == 1


@pytest.mark.cuda
def test_real_gpu_round_trip():
    if not xpnet.gpu_available():
        pytest.skip("no CUDA GPU answers an allocation here (xpnet.gpu_available() is False)")
    dev = xpnet.use("cuda")
    assert dev.name == "cuda:0"
    assert dev.is_gpu
    host = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = xpnet.asarray(host)
    assert xpnet.device_of(x) == dev
    assert dtype_name(x.dtype) == "float32"
    back = xpnet.to_numpy(x)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host)


# ------------------------------------------------------------------ asarray / to_numpy
def test_asarray_float_data_gets_default_dtype(xp_device):
    host = np.linspace(-1.0, 1.0, 6).reshape(2, 3)  # float64 on the host
    x = xpnet.asarray(host)
    assert dtype_name(x.dtype) == "float32"
    assert xpnet.device_of(x) == xp_device
    np.testing.assert_allclose(xpnet.to_numpy(x), host, rtol=1e-6)
    x_list = xpnet.asarray([[0.5, 1.5]])
    assert dtype_name(x_list.dtype) == "float32"
    with xpnet.using(dtype="float64"):
        y = xpnet.asarray(host.astype(np.float32))
        assert dtype_name(y.dtype) == "float64"
        assert xpnet.device_of(y) == xp_device
        z = xpnet.asarray(host)
        assert dtype_name(z.dtype) == "float64"
        np.testing.assert_array_equal(xpnet.to_numpy(z), host)


def test_asarray_integer_and_bool_keep_their_kind(xp_device):
    labels = xpnet.asarray(np.array([0, 2, 1, 2]))
    assert dtype_name(labels.dtype) == "int64"
    assert xpnet.device_of(labels) == xp_device
    np.testing.assert_array_equal(xpnet.to_numpy(labels), [0, 2, 1, 2])
    small = xpnet.asarray(np.array([3, 1], dtype=np.int32))
    assert dtype_name(small.dtype) == "int32"
    mask = xpnet.asarray(np.array([True, False]))
    assert dtype_name(mask.dtype) == "bool"
    with xpnet.using(dtype="float64"):
        assert dtype_name(xpnet.asarray([1, 2]).dtype) == "int64"


def test_asarray_explicit_dtype_wins(xp_device):
    x = xpnet.asarray(np.array([1.25, 2.5]), dtype="float64")
    assert dtype_name(x.dtype) == "float64"
    y = xpnet.asarray(np.array([1, 2]), dtype="float32")
    assert dtype_name(y.dtype) == "float32"
    np.testing.assert_array_equal(xpnet.to_numpy(y), [1.0, 2.0])
    z = xpnet.asarray(x, dtype=np.float32)  # already on the device, explicit dtype still applies
    assert dtype_name(z.dtype) == "float32"
    for arr in (x, y, z):
        assert xpnet.device_of(arr) == xp_device


def test_asarray_same_device_float64_is_cast_to_default(xp_device):
    x = xpnet.asarray(np.array([0.1, 0.2]), dtype="float64")
    y = xpnet.asarray(x)
    assert dtype_name(y.dtype) == "float32"
    assert xpnet.device_of(y) == xp_device


def test_to_numpy_round_trips_values(xp_device):
    rng = np.random.default_rng(0)
    host = rng.standard_normal((4, 5))
    for dtype in ("float32", "float64"):
        x = xpnet.asarray(host, dtype=dtype)
        back = xpnet.to_numpy(x)
        assert isinstance(back, np.ndarray)
        assert back.dtype == np.dtype(dtype)
        assert back.shape == (4, 5)
        np.testing.assert_array_equal(back, host.astype(dtype))
    labels = xpnet.to_numpy(xpnet.asarray(np.array([[1, -2], [3, 4]])))
    np.testing.assert_array_equal(labels, [[1, -2], [3, 4]])


def _source_devices():
    names = ["cpu", "strict", "strict:device1"]
    names += ["jax"] if HAS_JAX else []
    names += ["torch"] if HAS_TORCH else []
    return names


@pytest.mark.parametrize("source", _source_devices())
def test_asarray_moves_arrays_from_another_device(xp_device, source):
    host = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    with xpnet.using(source):
        other = xpnet.asarray(host)
    assert xpnet.device_of(other).name == backend.resolve_device(source).name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # jax->torch: see test_moving_jax_to_torch_copies
        moved = xpnet.asarray(other)
    assert xpnet.device_of(moved) == xp_device
    assert dtype_name(moved.dtype) == "float32"
    np.testing.assert_array_equal(xpnet.to_numpy(moved), host)
    explicit = xpnet.asarray(moved, device=source)
    assert xpnet.device_of(explicit).name == backend.resolve_device(source).name
    np.testing.assert_array_equal(xpnet.to_numpy(explicit), host)


def test_asarray_device_argument_overrides_current():
    xpnet.use("cpu")
    x = xpnet.asarray([1.0, 2.0], device="strict:device1")
    assert xpnet.device_of(x).name == "strict:device1"
    assert xpnet.current_device().name == "cpu"


@needs_jax
@needs_torch
def test_moving_jax_to_torch_copies():
    """JAX's host view is read-only; torch must get a writable copy, not an alias."""
    with xpnet.using("jax"):
        j = xpnet.asarray(np.ones(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = xpnet.asarray(j, device="torch")
    assert xpnet.device_of(t).name == "torch:cpu"
    assert not np.shares_memory(t.numpy(), np.asarray(j))


@pytest.mark.parametrize("target", [pytest.param("torch", marks=needs_torch), "strict", "strict:device1"])
def test_asarray_to_another_backend_copies(target):
    host = np.zeros(3, dtype=np.float32)
    x = xpnet.asarray(host, device=target)
    x[0] = 5.0
    np.testing.assert_array_equal(host, [0.0, 0.0, 0.0])
    host[1] = 7.0
    np.testing.assert_array_equal(xpnet.to_numpy(x), [5.0, 0.0, 0.0])


@pytest.mark.parametrize("name", ["cpu", "strict", pytest.param("torch", marks=needs_torch)])
def test_device_asarray_always_copies(name):
    dev = backend.resolve_device(name)
    host = np.arange(3.0)
    x = dev.asarray(host)
    x[0] = 9.0
    np.testing.assert_array_equal(host, [0.0, 1.0, 2.0])
    assert dtype_name(dev.asarray(host, dtype="float32").dtype) == "float32"


def test_asarray_float16_array_gets_default_dtype():
    xpnet.use("cpu")
    x = xpnet.asarray(np.ones(3, dtype=np.float16))
    assert dtype_name(x.dtype) == "float32"


def test_device_of_rejects_non_arrays():
    for obj in ([1.0, 2.0], 3.0, "cpu", None):
        with pytest.raises(TypeError, match="expected an array"):
            xpnet.device_of(obj)


def test_device_of_numpy_is_cpu():
    assert xpnet.device_of(np.zeros(2)).name == "cpu"


def test_to_numpy_of_host_data():
    host = np.arange(3.0)
    assert xpnet.to_numpy(host) is host
    np.testing.assert_array_equal(xpnet.to_numpy([1, 2, 3]), [1, 2, 3])


def test_dtype_name_rejects_unknown():
    with pytest.raises(TypeError):
        dtype_name("complex128")
    with pytest.raises(TypeError):
        dtype_name(object())


def test_selecting_a_gpu_makes_it_cupys_current_device(monkeypatch):
    """array-api-compat's CuPy wrapper ignores device= in zeros/arange; xpnet must make the
    selected GPU CuPy's current one, and `using` must restore the previous one."""
    current = []

    class FakeDevice:
        def __init__(self, index):
            self.index = index

        def use(self):
            current.append(self.index)

    fake = _fake_cupy(lambda: 2)
    fake.cuda.Device = FakeDevice
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(xpnet.backend._CupyBackend, "_probed", {0: None, 1: None})
    previous = xpnet.current_device()
    try:
        xpnet.use("cuda:1")
        assert current == [1]
        with xpnet.using("cuda:0"):
            assert current == [1, 0]
        assert current == [1, 0, 1]
        assert xpnet.current_device().name == "cuda:1"
    finally:
        xpnet.backend._settings.device = previous
