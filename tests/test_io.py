"""xpnet.io: save/load round trips, optimizer resume, atomic writes, corrupt files."""

from __future__ import annotations

import json
import tracemalloc
import zipfile

import numpy as np
import pytest

import xpnet
from xpnet import io as xio
from xpnet.errors import CorruptFileError
from xpnet.history import History
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.nn import Dropout, Linear, ReLU, Sequential
from xpnet.optim import SGD, Adam
from xpnet.testing import TOLERANCES, available_devices

DEVICES = ["cpu", "strict", "strict:device1", "jax", "torch"]


def make_model(dtype: str = "float32") -> Sequential:
    with xpnet.using("cpu", dtype=dtype):
        return Sequential(Linear(4, 8), ReLU(), Dropout(0.2), Linear(8, 3))


def data(n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.normal(size=(n, 4)), rng.integers(0, 3, size=n)


def host_params(model) -> dict[str, np.ndarray]:
    return {name: xpnet.to_numpy(value).copy() for name, value in model.state_dict().items()}


def assert_same_params(a, b) -> None:
    pa, pb = host_params(a), host_params(b)
    assert pa.keys() == pb.keys()
    for name in pa:
        assert pa[name].dtype == pb[name].dtype, name
        assert np.array_equal(pa[name], pb[name]), f"parameter {name} differs"


def train(model, optimizer, steps: int, seed: int = 0) -> None:
    xpnet.seed(seed)  # the same dropout masks for both runs being compared
    x, y = data()
    xs, ys = xpnet.asarray(x, dtype=model.dtype, device=model.device), xpnet.asarray(y, device=model.device)
    loss = SoftmaxCrossEntropy()
    model.train()
    for _ in range(steps):
        loss.forward(model.forward(xs), ys)
        model.backward(loss.backward())
        optimizer.step()


def require(name: str) -> xpnet.Device:
    found = available_devices([name])
    if not found:
        pytest.skip(f"device {name} is not available here")
    return found[0]


# --------------------------------------------------------------------- round trips
def test_round_trip_parameters_predictions_and_architecture(tmp_path):
    model = make_model()
    train(model, SGD(model.parameters(), lr=0.5), 3)
    biases = [xpnet.to_numpy(v) for k, v in model.state_dict().items() if k.endswith(".b")]
    assert len(biases) == 2 and all(np.all(b != 0) for b in biases)  # a bias never restored would show
    path = xio.save(model, tmp_path / "model.npz")
    loaded = xio.load(path)
    assert type(loaded) is Sequential
    assert repr(loaded) == repr(model)
    assert_same_params(model, loaded)
    x, _ = data()
    assert np.array_equal(xpnet.to_numpy(loaded.predict(x)), xpnet.to_numpy(model.predict(x)))


def test_npz_suffix_is_appended_and_returned(tmp_path):
    path = xio.save(make_model(), tmp_path / "model")
    assert path == tmp_path / "model.npz"
    assert path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    assert repr(xio.load(tmp_path / "model")) == repr(xio.load(path))


def test_float64_is_preserved(tmp_path):
    model = make_model("float64")
    loaded = xio.load(xio.save(model, tmp_path / "m.npz"))
    assert loaded.dtype == "float64"
    assert_same_params(model, loaded)


def test_load_with_dtype_converts(tmp_path):
    model = make_model("float64")
    loaded = xio.load(xio.save(model, tmp_path / "m.npz"), dtype="float32")
    assert loaded.dtype == "float32"
    for name, value in host_params(loaded).items():
        assert value.dtype == np.float32
        assert np.array_equal(value, host_params(model)[name].astype(np.float32))


def test_load_defaults_to_current_device(tmp_path):
    dev = require("strict")
    path = xio.save(make_model(), tmp_path / "m.npz")
    with xpnet.using(dev):
        loaded = xio.load(path)
    assert loaded.device == dev


@pytest.mark.parametrize("source", DEVICES)
@pytest.mark.parametrize("target", DEVICES)
def test_save_on_one_backend_load_on_another(tmp_path, source, target):
    src, dst = require(source), require(target)
    model = make_model().to(src)
    path = xio.save(model, tmp_path / "m.npz")
    header = json.loads(bytes(np.load(path, allow_pickle=False)["xpnet_header"]).decode())
    assert header["device"] == src.name
    loaded = xio.load(path, device=dst)
    assert loaded.device == dst
    assert loaded.dtype == "float32"
    assert_same_params(model, loaded)
    x, _ = data()
    rtol, atol = TOLERANCES["float32"]
    np.testing.assert_allclose(
        xpnet.to_numpy(loaded.predict(x)), xpnet.to_numpy(model.predict(x)), rtol=rtol, atol=atol
    )


def test_loading_leaves_random_stream_alone(tmp_path):
    path = xio.save(make_model(), tmp_path / "m.npz")
    xpnet.seed(3)
    expected = xpnet.random.generator().random(5)
    xpnet.seed(3)
    xio.load(path)
    assert np.array_equal(xpnet.random.generator().random(5), expected)


# ---------------------------------------------------------------- optimizer resume
@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda params: SGD(params, lr=0.1, momentum=0.9),
        lambda params: Adam(params, lr=0.01),
    ],
    ids=["sgd-momentum", "adam"],
)
def test_optimizer_resume_equivalence(tmp_path, make_optimizer):
    model = make_model()
    optimizer = make_optimizer(model.parameters())
    train(model, optimizer, 3, seed=1)
    path = xio.save(model, tmp_path / "ckpt.npz", optimizer=optimizer)

    fresh = make_optimizer(make_model().parameters())
    resumed = xio.load(path, optimizer=fresh)
    assert fresh.t == optimizer.t == 3
    assert all(p.module in list(resumed.modules()) for p in fresh.params)

    restarted = xio.load(path)  # same weights, optimizer state lost: must diverge
    cold = make_optimizer(restarted.parameters())

    train(model, optimizer, 3, seed=2)
    train(resumed, fresh, 3, seed=2)
    train(restarted, cold, 3, seed=2)
    assert_same_params(model, resumed)
    assert not np.array_equal(host_params(model)["0.W"], host_params(restarted)["0.W"])


def test_checkpoint_optimizer_state_resumes(tmp_path):
    model = make_model()
    optimizer = Adam(model.parameters(), lr=0.01)
    train(model, optimizer, 2)
    path = xio.save(model, tmp_path / "ckpt.npz", optimizer=optimizer)
    ckpt = xio.load_checkpoint(path)
    assert ckpt.optimizer_state["type"] == "Adam"
    assert ckpt.optimizer_state["t"] == 2
    assert set(ckpt.optimizer_state["arrays"]) == {f"{i}.{k}" for i in range(4) for k in ("m", "v")}
    again = Adam(ckpt.model.parameters(), lr=0.01)
    again.load_state_dict(ckpt.optimizer_state)
    train(model, optimizer, 2, seed=5)
    train(ckpt.model, again, 2, seed=5)
    assert_same_params(model, ckpt.model)


def test_optimizer_type_mismatch_is_a_clear_error(tmp_path):
    model = make_model()
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, optimizer, 1)
    path = xio.save(model, tmp_path / "ckpt.npz", optimizer=optimizer)
    with pytest.raises(ValueError, match="holds SGD state, but the given optimizer is Adam"):
        xio.load(path, optimizer=Adam(make_model().parameters()))


def test_optimizer_requested_but_not_saved(tmp_path):
    path = xio.save(make_model(), tmp_path / "m.npz")
    with pytest.raises(ValueError, match="no optimizer state"):
        xio.load(path, optimizer=SGD(make_model().parameters()))
    assert xio.load_checkpoint(path).optimizer_state is None


def test_optimizer_over_another_model_is_refused_at_save(tmp_path):
    with pytest.raises(ValueError, match="not a parameter of this model"):
        xio.save(make_model(), tmp_path / "m.npz", optimizer=SGD(make_model().parameters()))
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------- history, metadata
def test_history_and_metadata_round_trip(tmp_path):
    history = History()
    history.append({"loss": 1.25, "accuracy": 0.5}, 0.1)
    history.append({"loss": 0.75, "accuracy": 0.625}, 0.2)
    history.params = {"epochs": 2, "batch_size": 16}
    metadata = {"dataset": "toy", "epoch": 2, "tags": ["a", "b"]}
    path = xio.save(make_model(), tmp_path / "m.npz", history=history, metadata=metadata)
    ckpt = xio.load_checkpoint(path)
    assert isinstance(ckpt.history, History)
    assert ckpt.history.to_dict() == history.to_dict()
    assert ckpt.history["loss"] == [1.25, 0.75]
    assert ckpt.metadata == metadata


def test_non_json_metadata_is_a_type_error_and_writes_nothing(tmp_path):
    with pytest.raises(TypeError, match="metadata must be JSON-serialisable"):
        xio.save(make_model(), tmp_path / "m.npz", metadata={"rng": np.random.default_rng()})
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------- no pickle
def test_file_has_no_pickled_data(tmp_path):
    model = make_model()
    optimizer = Adam(model.parameters())
    train(model, optimizer, 1)
    path = xio.save(model, tmp_path / "m.npz", optimizer=optimizer, history=History(), metadata={"k": 1})
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    assert all(not value.dtype.hasobject for value in arrays.values())
    assert arrays["xpnet_header"].dtype == np.uint8
    assert {"param/0.W", "param/0.b", "param/3.W", "param/3.b", "optim/0.m", "optim/3.v"} <= set(arrays)
    header = json.loads(arrays["xpnet_header"].tobytes())
    assert (header["format"], header["format_version"]) == ("xpnet-model", 1)
    assert header["xpnet_version"] == xpnet.__version__
    assert header["architecture"]["type"] == "Sequential"
    assert header["dtype"] == "float32"
    assert header["parameters"][0] == {"name": "0.W", "shape": [4, 8], "dtype": "float32"}


# ------------------------------------------------------------------------ atomicity
def test_failed_replace_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    old = make_model()
    path = xio.save(old, tmp_path / "m.npz")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xio.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        xio.save(make_model(), path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    assert_same_params(old, xio.load(path))


def test_failure_while_writing_keeps_old_file(tmp_path, monkeypatch):
    old = make_model()
    path = xio.save(old, tmp_path / "m.npz")
    calls = []

    def write_then_die(member, array, allow_pickle):
        calls.append(array.shape)
        if len(calls) == 2:
            raise KeyboardInterrupt
        np.lib.format.write_array(member, array, allow_pickle=allow_pickle)

    monkeypatch.setattr(xio.np.lib.format, "write_array", write_then_die, raising=True)
    with pytest.raises(KeyboardInterrupt):
        xio.save(make_model(), path)
    monkeypatch.undo()
    assert len(calls) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
    assert_same_params(old, xio.load(path))


def test_killed_save_truncated_file_is_corrupt(tmp_path):
    path = xio.save(make_model(), tmp_path / "m.npz")
    raw = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="cut.npz"):
        xio.load(cut)


# ----------------------------------------------------------------------- corruption
def _write_npz(path, arrays, allow_pickle=False):
    with zipfile.ZipFile(path, "w") as archive:
        for key, value in arrays.items():
            with archive.open(key + ".npy", "w") as member:
                np.lib.format.write_array(member, value, allow_pickle=allow_pickle)
    return path


def _contents(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def _header(arrays) -> dict:
    return json.loads(arrays["xpnet_header"].tobytes())


def _with_header(arrays, header) -> dict[str, np.ndarray]:
    return {**arrays, "xpnet_header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz") as info:
        xio.load(tmp_path / "nothing.npz")
    assert info.value.filename == str(tmp_path / "nothing.npz")


def _saved(tmp_path) -> dict[str, np.ndarray]:
    return _contents(xio.save(make_model(), tmp_path / "good.npz"))


def _bad_shape(arrays):
    return {**arrays, "param/0.W": np.zeros((5, 8), np.float32)}


def _bad_shape_in_header_too(arrays):
    header = _header(arrays)
    header["parameters"][0]["shape"] = [5, 8]
    return _with_header(_bad_shape(arrays), header)


def _unknown_layer(arrays):
    header = _header(arrays)
    header["architecture"]["config"]["layers"][1]["type"] = "NoSuchLayer"
    return _with_header(arrays, header)


def _wrong_format(arrays):
    return _with_header(arrays, {**_header(arrays), "format": "keras-model"})


def _newer_version(arrays):
    return _with_header(arrays, {**_header(arrays), "format_version": 2})


def _missing_param(arrays):
    return {k: v for k, v in arrays.items() if k != "param/3.b"}


def _extra_param(arrays):
    return {**arrays, "param/9.W": np.zeros((2, 2), np.float32)}


def _no_header(arrays):
    return {k: v for k, v in arrays.items() if k != "xpnet_header"}


def _header_not_json(arrays):
    return {**arrays, "xpnet_header": np.frombuffer(b"{not json", dtype=np.uint8)}


@pytest.mark.parametrize(
    "damage, message",
    [
        (_no_header, "no 'xpnet_header' entry"),
        (_header_not_json, "not valid JSON"),
        (_wrong_format, "format 'keras-model'"),
        (_newer_version, "format version 2"),
        (_missing_param, r"missing parameter arrays \['3.b'\]"),
        (_extra_param, r"unexpected entries \['param/9.W'\]"),
        (_bad_shape, "parameter '0.W' has shape"),
        (_bad_shape_in_header_too, r"'0.W' has shape \(5, 8\), the rebuilt Sequential expects \(4, 8\)"),
        (_unknown_layer, "unknown layer type 'NoSuchLayer'"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_damaged_contents_are_corrupt(tmp_path, damage, message):
    path = _write_npz(tmp_path / "bad.npz", damage(_saved(tmp_path)))
    with pytest.raises(CorruptFileError, match=message) as info:
        xio.load(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_sane_copy_of_test_fixture_loads(tmp_path):
    # The corruption cases rewrite a good file; unchanged, the rewrite must load.
    path = _write_npz(tmp_path / "copy.npz", _saved(tmp_path))
    assert repr(xio.load(path)) == repr(xio.load(tmp_path / "good.npz"))


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the file is empty"),
        (np.random.default_rng(0).bytes(2048), "not an .npz archive"),
        (b"PK\x03\x04" + np.random.default_rng(1).bytes(500), "not a readable .npz archive"),
    ],
    ids=["empty", "random", "zip-magic-then-garbage"],
)
def test_non_npz_files_are_corrupt(tmp_path, content, message):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match=message) as info:
        xio.load(path)
    assert str(path) in str(info.value)


def test_single_npy_file_is_corrupt(tmp_path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.zeros(3))
    with pytest.raises(CorruptFileError, match="single .npy array"):
        xio.load(path)


def test_flipped_bytes_inside_an_entry_are_corrupt(tmp_path):
    path = xio.save(make_model(), tmp_path / "m.npz")
    raw = bytearray(path.read_bytes())
    start = raw.index(b"param/0.W.npy")
    for i in range(start + 200, start + 260):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match="m.npz"):
        xio.load(path)


def test_object_array_is_refused(tmp_path):
    arrays = _saved(tmp_path)
    arrays["param/0.b"] = np.array([{"evil": 1}] * 8, dtype=object)
    path = _write_npz(tmp_path / "obj.npz", arrays, allow_pickle=True)
    with pytest.raises(CorruptFileError, match=r"obj.npz.*'param/0.b' is an object"):
        xio.load(path)


def test_history_given_as_dict_is_checked_at_save(tmp_path):
    path = xio.save(make_model(), tmp_path / "m.npz", history={"history": {"loss": [2.0]}, "epoch_times": [0.5]})
    assert xio.load_checkpoint(path).history["loss"] == [2.0]
    with pytest.raises(TypeError, match="losses"):
        xio.save(make_model(), tmp_path / "other.npz", history={"losses": [1.0]})
    assert not (tmp_path / "other.npz").exists()


def test_optimizer_state_of_wrong_shape_is_corrupt(tmp_path):
    model = make_model()
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, optimizer, 1)
    arrays = _contents(xio.save(model, tmp_path / "ckpt.npz", optimizer=optimizer))
    arrays["optim/0.velocity"] = np.zeros((3, 3), np.float32)
    path = _write_npz(tmp_path / "bad.npz", arrays)
    with pytest.raises(CorruptFileError, match=r"bad.npz.*optimizer state '0.velocity' has shape \(3, 3\)"):
        xio.load(path)


# ------------------------------------------------------------ headers you did not write
def _trained_checkpoint(tmp_path) -> dict[str, np.ndarray]:
    model = make_model()
    optimizer = Adam(model.parameters(), lr=0.01)
    train(model, optimizer, 2)
    history = History.from_dict({"history": {"loss": [1.5, 1.2]}, "epoch_times": [0.1, 0.1]})
    return _contents(xio.save(model, tmp_path / "full.npz", optimizer=optimizer, history=history))


def _paths(value, prefix=()):
    """Every (key path) into a JSON value, containers included."""
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, (*prefix, key))


def _replaced(header, path, new):
    header = json.loads(json.dumps(header))
    target = header
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return header


_WRONG_VALUES = [None, True, -1, 0, 2.5, 10**30, float("inf"), float("nan"), "x", [], {}, [[1]], {"a": {}}]


def test_every_wrong_field_type_is_corrupt_file_error(tmp_path):
    """Each header field, replaced by a value of every JSON type: the file loads or is a
    CorruptFileError naming it; never a TypeError/KeyError/AttributeError from inside."""
    arrays = _trained_checkpoint(tmp_path)
    header = _header(arrays)
    # every field once: later items of a list of like entries (parameters, arrays, losses) add nothing
    paths = [p for p in _paths(header) if p and p[0] != "metadata"
             and not any(isinstance(k, int) and k > 0 for k in p if "layers" not in p)]
    assert len(paths) > 40
    path = tmp_path / "fuzz.npz"
    refused = 0
    for field in paths:
        for value in _WRONG_VALUES:
            _write_npz(path, _with_header(arrays, _replaced(header, field, value)))
            try:
                xio.load_checkpoint(path)
            except CorruptFileError as exc:
                assert "fuzz.npz" in str(exc), (field, value)
                refused += 1
            except Exception as exc:  # noqa: BLE001 - the point of the test
                raise AssertionError(f"header field {field} = {value!r} raised {type(exc).__name__}: {exc}") from exc
    assert refused > len(paths)


@pytest.mark.parametrize(
    "header_json, message",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"format": "xpnet-model", "format_version": 1, "x": ' + "[" * 500 + "]" * 500 + "}", "nested 501 levels"),
    ],
    ids=["beyond-python-recursion", "beyond-xpnet-limit"],
)
def test_deeply_nested_header_is_corrupt(tmp_path, header_json, message):
    arrays = {**_saved(tmp_path), "xpnet_header": np.frombuffer(header_json.encode(), dtype=np.uint8)}
    path = _write_npz(tmp_path / "deep.npz", arrays)
    with pytest.raises(CorruptFileError, match=message):
        xio.load(path)


def test_tiny_file_claiming_a_huge_layer_allocates_nothing(tmp_path):
    arrays = _saved(tmp_path)
    header = _header(arrays)
    header["architecture"]["config"]["layers"][0]["config"].update(in_features=60000, out_features=60000)
    path = _write_npz(tmp_path / "huge.npz", _with_header(arrays, header))
    tracemalloc.start()
    try:
        with pytest.raises(CorruptFileError, match=r"huge.npz.*more parameters than the file stores.*\(60000, 60000\)"):
            xio.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20, f"loading a 60000x60000 claim allocated {peak / 2**20:.0f} MiB"
    assert xio.load(tmp_path / "good.npz") is not None  # the limit is lifted again


def test_header_architecture_that_does_not_fit_the_arrays_is_corrupt(tmp_path):
    arrays = _saved(tmp_path)
    header = _header(arrays)
    header["architecture"]["config"]["layers"][0]["config"].update(in_features=5)
    path = _write_npz(tmp_path / "wide.npz", _with_header(arrays, header))
    with pytest.raises(CorruptFileError, match="wide.npz"):
        xio.load(path)


@pytest.mark.parametrize("key", ["0", "x.m", "9.m"])
def test_optimizer_state_key_that_names_no_slot_is_corrupt(tmp_path, key):
    arrays = _trained_checkpoint(tmp_path)
    header = _header(arrays)
    old = header["optimizer"]["arrays"][0]
    header["optimizer"]["arrays"][0] = key
    arrays = {("optim/" + key if k == "optim/" + old else k): v for k, v in arrays.items()}
    path = _write_npz(tmp_path / "slot.npz", _with_header(arrays, header))
    model = make_model()
    with pytest.raises(CorruptFileError, match=rf"slot.npz.*optimizer state '{key}' refers to no saved parameter"):
        xio.load(path, optimizer=Adam(model.parameters(), lr=0.01))


def test_save_refuses_metadata_that_load_would_refuse(tmp_path):
    deep: list = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(ValueError, match="nest more than 200 levels"):
        xio.save(make_model(), tmp_path / "deep.npz", metadata=deep)
    assert not (tmp_path / "deep.npz").exists()


def test_save_and_load_around_folders_and_links(tmp_path):
    """save('runs/') wrote runs.npz beside the folder; load('runs') beside a folder
    runs/ raised IsADirectoryError although save had written runs.npz; save('.')
    was a pathlib error; saving to a link replaced the link instead of writing
    through it."""
    import os

    model = make_model()
    (tmp_path / "runs").mkdir()
    for folder in (str(tmp_path / "runs") + os.sep, str(tmp_path / "runs"), ".", ""):
        with pytest.raises(IsADirectoryError, match=r"it names a folder; give a file name such as"):
            xio.save(model, folder)
    written = xio.save(model, tmp_path / "model")
    assert written == tmp_path / "model.npz"
    (tmp_path / "model").mkdir()  # a folder of the same name: load still finds model.npz
    assert_same_params(xio.load(tmp_path / "model"), model)
    with pytest.raises(IsADirectoryError, match=r"A folder, not a saved xpnet model"):
        xio.load(tmp_path / "runs")
    assert xio.save(model, tmp_path / "upper.NPZ") == tmp_path / "upper.NPZ"  # the suffix in any case
    (tmp_path / "real").mkdir()
    xio.save(make_model(), tmp_path / "real" / "m.npz")
    os.symlink(tmp_path / "real" / "m.npz", tmp_path / "link.npz")
    xio.save(model, tmp_path / "link.npz")
    assert os.path.islink(tmp_path / "link.npz")
    assert_same_params(xio.load(tmp_path / "real" / "m.npz"), model)


def test_a_foreign_npz_member_without_a_npy_header_is_corrupt(tmp_path):
    path = tmp_path / "foreign.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xpnet_header.npy", b"garbage")
    with pytest.raises(CorruptFileError, match=r"entry 'xpnet_header' is not a NumPy array"):
        xio.load(path)
