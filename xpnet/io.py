"""Saving and loading models: one ``.npz`` file, no pickle.

A saved file is a zip of ``.npy`` arrays (what ``numpy.savez`` writes):

- ``xpnet_header``: UTF-8 JSON as a uint8 array: format name and version, xpnet
  version, the architecture (``{"type", "config"}`` from ``get_config``), parameter
  dtype, the device it was saved from, parameter names/shapes, and optionally the
  optimizer's hyperparameters, the learning-rate schedule's state, the training
  history and user metadata;
- ``param/<qualified name>``: every parameter as a host NumPy array;
- ``optim/<index>.<state>``: optimizer state (momentum, Adam moments).

Files are written atomically (temporary file, fsync, ``os.replace``), so a crash
mid-save leaves the previous file intact, and loading uses
``numpy.load(allow_pickle=False)``, so a file can never run code.

>>> xpnet.io.save(model, "mnist.npz", optimizer=opt, history=hist)
>>> model = xpnet.io.load("mnist.npz", device="cuda")
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import pathlib
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import init as _init
from . import random as _random
from .backend import FLOAT_DTYPES, default_dtype, to_numpy, using
from .errors import CorruptFileError
from .history import History
from .nn.module import Module, check_rebuildable, layer_class, layer_type

__all__ = ["save", "load", "load_checkpoint", "Checkpoint"]

FORMAT_NAME = "xpnet-model"
FORMAT_VERSION = 1

_HEADER = "xpnet_header"
_PARAM = "param/"
_OPTIM = "optim/"


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns.

    Attributes:
        model: the rebuilt model, on the requested device and dtype.
        history: the saved :class:`~xpnet.history.History`, or ``None``.
        metadata: the user metadata passed to :func:`save`, or ``None``.
        optimizer_state: the optimizer's state in the form of
            ``Optimizer.state_dict()`` (for ``optimizer.load_state_dict`` after
            building an optimizer over ``model.parameters()``), or ``None``.
        schedule_state: the learning-rate schedule's ``state_dict()`` (epochs
            stepped and base rate, for ``schedule.load_state_dict``), or ``None``.
    """

    model: Module
    history: History | None = None
    metadata: Any = None
    optimizer_state: dict[str, Any] | None = None
    schedule_state: dict[str, Any] | None = None


# ------------------------------------------------------------------------------ save
def save(
    model: Module,
    path: str | os.PathLike[str],
    *,
    optimizer: Any = None,
    history: History | dict[str, Any] | None = None,
    metadata: Any = None,
    schedule: Any = None,
) -> pathlib.Path:
    """Write ``model`` (architecture and parameters) to one ``.npz`` file.

    Args:
        model: any registered :class:`~xpnet.nn.Module` (e.g. a ``Sequential``).
        path: target file; ``".npz"`` is appended if missing, as ``numpy.savez`` does.
        optimizer: an :class:`~xpnet.optim.Optimizer` over (some of) the model's
            parameters, to save its hyperparameters and state for resuming training.
        history: a :class:`~xpnet.history.History` (or its ``to_dict()``).
        metadata: anything JSON-serialisable (epoch number, dataset name, ...).
        schedule: an :class:`~xpnet.optim.LRSchedule` or a
            :class:`~xpnet.callbacks.LearningRateScheduler`, whose ``state_dict()``
            is saved so that resumed training continues the schedule.

    Returns:
        The path actually written. The file is replaced atomically: if saving fails
        or is interrupted, a previous file at ``path`` is left as it was.
    """
    if not isinstance(model, Module):
        raise TypeError(f"save() expects an xpnet.nn.Module, got {type(model).__name__}")
    check_rebuildable(model)  # a layer load could not rebuild fails here, not as a "corrupt" file later
    _check_round_trip(model)
    target = _save_target(path)

    named = dict(model.named_parameters())
    arrays = {_PARAM + name: _host(p.value, f"parameter {name!r}") for name, p in named.items()}
    header: dict[str, Any] = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "xpnet_version": _xpnet_version(),
        "architecture": {"type": layer_type(model), "config": model.get_config()},
        "dtype": model.dtype,
        "device": model.device.name if model.device is not None else None,
        "parameters": [
            {"name": name, "shape": list(a.shape), "dtype": a.dtype.name}
            for name, a in ((n, arrays[_PARAM + n]) for n in named)
        ],
        "optimizer": None,
        "history": None,
        "metadata": None,
        "schedule": None,
    }
    if optimizer is not None:
        header["optimizer"], optim_arrays = _optimizer_entry(optimizer, named)
        arrays.update((_OPTIM + key, value) for key, value in optim_arrays.items())
    if schedule is not None:
        if not callable(getattr(schedule, "state_dict", None)):
            raise TypeError(f"schedule must be an xpnet.optim.LRSchedule or a LearningRateScheduler, "
                            f"got {type(schedule).__name__}")
        header["schedule"] = schedule.state_dict()
        _check_json(header["schedule"], "the schedule's state_dict()")
    if history is not None:
        if not isinstance(history, History):
            history = History.from_dict(history)  # a dict that does not fit would only fail at load time
        header["history"] = history.to_dict()
        _check_json(header["history"], "history")
    if metadata is not None:
        _check_json(metadata, "metadata")
        header["metadata"] = metadata
    _check_json(header["architecture"], f"{type(model).__name__}.get_config()")
    if _nesting(header) > _MAX_NESTING:  # load refuses such headers, so never write one
        raise ValueError(
            f"the model's config, history and metadata nest more than {_MAX_NESTING} levels deep; "
            f"flatten the metadata to save"
        )
    text = json.dumps(header, indent=1)
    arrays[_HEADER] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    _write_atomically(target, arrays)
    return target


def _host(array: Any, what: str) -> np.ndarray:
    host = np.ascontiguousarray(to_numpy(array))
    if host.dtype.hasobject:
        raise TypeError(f"{what} is an object array; xpnet saves numeric arrays only and never pickles")
    return host


def _xpnet_version() -> str:
    from . import __version__  # here, not at the top: xpnet/__init__ may import this module

    return __version__


def _check_json(value: Any, what: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{what} must be JSON-serialisable (dicts, lists, str, int, float, bool, None) to be saved: {exc}"
        ) from exc


def _optimizer_entry(optimizer: Any, named: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header entry and arrays for ``optimizer``; its parameters are recorded by
    qualified name so loading can point the state at the rebuilt model's parameters."""
    if not hasattr(optimizer, "state_dict") or not hasattr(optimizer, "params"):
        raise TypeError(f"optimizer must be an xpnet.optim.Optimizer, got {type(optimizer).__name__}")
    by_handle = {(id(p.module), p.name): name for name, p in named.items()}
    names = []
    for p in optimizer.params:
        name = by_handle.get((id(p.module), p.name))
        if name is None:
            raise ValueError(
                f"the optimizer updates {p!r}, which is not a parameter of this model; "
                f"save the model the optimizer was built over"
            )
        names.append(name)
    state = optimizer.state_dict()
    arrays = {key: _host(value, f"optimizer state {key!r}") for key, value in state["arrays"].items()}
    entry = {
        "type": state["type"],
        "lr": state["lr"],
        "initial_lr": state["initial_lr"],
        "t": state["t"],
        "config": state["config"],
        "parameters": names,
        "arrays": sorted(arrays),
    }
    _check_json(entry, f"{state['type']} hyperparameters")
    return entry, arrays


def _save_target(path: str | os.PathLike[str]) -> pathlib.Path:
    """The file :func:`save` writes for ``path``: ``.npz`` appended unless present
    (in any case), through a symbolic link to the file it points to, and a clear
    error for a folder (``"."``, ``"runs/"``, an existing directory) or a missing
    parent folder, before anything is written."""
    text = os.fspath(path)
    target = pathlib.Path(text)
    if not text or text.endswith((os.sep, "/")) or target.is_dir() or not target.name or target.name == "..":
        raise IsADirectoryError(f"cannot save to '{text}': it names a folder; give a file name such as "
                                f"'{os.path.join(text or '.', 'model.npz')}'")
    if target.suffix.lower() != ".npz":
        target = target.with_name(target.name + ".npz")
    if target.is_symlink():  # write where it points (as open(path, "w") would), not over the link
        target = pathlib.Path(os.path.realpath(target))
    if not target.parent.is_dir():
        raise FileNotFoundError(f"cannot save to '{target}': directory '{target.parent}' does not exist")
    return target


def _write_atomically(target: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = tempfile.NamedTemporaryFile(delete=False, dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with tmp:
            # What numpy.savez writes, with allow_pickle=False enforced on every member.
            with zipfile.ZipFile(tmp, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
                for key, value in arrays.items():
                    with archive.open(key + ".npy", mode="w", force_zip64=True) as member:
                        np.lib.format.write_array(member, value, allow_pickle=False)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp.name, _new_file_mode(target))
        os.replace(tmp.name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        raise
    _fsync_directory(target.parent)


def _new_file_mode(target: pathlib.Path) -> int:
    """The permissions a plain ``open(target, "w")`` would give (temporary files are 0600)."""
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: pathlib.Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened on Windows.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------ load
def load(
    path: str | os.PathLike[str],
    *,
    device: Any = None,
    dtype: Any = None,
    optimizer: Any = None,
) -> Module:
    """Rebuild a model saved with :func:`save`.

    Args:
        path: the file (``".npz"`` is tried too when ``path`` does not exist).
        device: where to create the parameters (default: the current device, so a
            model saved on a GPU loads on a CPU-only machine).
        dtype: ``"float32"``/``"float64"`` (default: the dtype it was saved in).
        optimizer: an optimizer of the saved type (e.g. ``SGD(template.parameters(),
            lr=0.1, momentum=0.9)`` over a model of the same architecture): it is
            pointed at the loaded model's parameters and its saved state (``lr``,
            step count, momentum or Adam moments) is restored, so training resumes
            where it stopped. Its other hyperparameters stay as constructed.

    Returns:
        The model (a ``Sequential`` or whatever Module type was saved).

    Raises:
        FileNotFoundError: no file at ``path``.
        CorruptFileError: the file is truncated, damaged, or not an xpnet model.
        ValueError: ``optimizer`` is given but does not fit the saved state.
    """
    return load_checkpoint(path, device=device, dtype=dtype, optimizer=optimizer).model


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    device: Any = None,
    dtype: Any = None,
    optimizer: Any = None,
) -> Checkpoint:
    """Like :func:`load`, but also returns the saved history, metadata, optimizer
    and schedule state, to resume training or inspect a run:

    >>> ckpt = xpnet.io.load_checkpoint("run.npz")
    >>> opt = xpnet.optim.Adam(ckpt.model.parameters())
    >>> opt.load_state_dict(ckpt.optimizer_state)
    >>> schedule = xpnet.optim.ExponentialDecay(opt, 0.95)
    >>> schedule.load_state_dict(ckpt.schedule_state)
    """
    file = _existing(path)
    with open(file, "rb") as handle:
        magic = handle.read(6)
        handle.seek(0)
        if not magic:
            raise _corrupt(file, "the file is empty (0 bytes); was the save interrupted?")
        if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
            raise _corrupt(file, f"it is not an .npz archive (it starts with {magic!r}, not the zip signature 'PK')")
        try:
            archive = np.load(handle, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - whatever numpy trips on, the file is not an npz
            raise _corrupt(file, f"not a readable .npz archive ({type(exc).__name__}: {exc})") from exc
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise _corrupt(file, "it holds a single .npy array, not an .npz archive written by xpnet.io.save")
        with archive:
            header = _read_header(file, archive)
            params, optim_arrays = _read_arrays(file, archive, header)
    optimizer_state = _optimizer_state(file, header, optim_arrays)
    model = _build(file, header, params, device, dtype)
    if optimizer is not None:
        _restore_optimizer(file, optimizer, optimizer_state, model)
    history = None
    if header.get("history") is not None:
        try:
            history = History.from_dict(header["history"])
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise _corrupt(file, f"the saved history does not fit History: {exc}") from exc
    return Checkpoint(model=model, history=history, metadata=header.get("metadata"), optimizer_state=optimizer_state,
                      schedule_state=header.get("schedule"))


def _existing(path: str | os.PathLike[str]) -> pathlib.Path:
    file = pathlib.Path(os.fspath(path))
    if file.is_file():
        return file
    with_suffix = file.with_name(file.name + ".npz") if file.name else file
    if file.suffix.lower() != ".npz" and with_suffix.is_file():
        return with_suffix  # save("runs") beside a folder runs/ wrote runs.npz
    if file.is_dir():
        raise IsADirectoryError(errno.EISDIR, "A folder, not a saved xpnet model (give the .npz file)", str(file))
    raise FileNotFoundError(errno.ENOENT, "No saved xpnet model", str(file))


def _corrupt(file: pathlib.Path, what: str) -> CorruptFileError:
    return CorruptFileError(f"'{file}' is not a loadable xpnet model: {what}")


def _member(file: pathlib.Path, archive: Any, key: str) -> np.ndarray:
    try:
        value = archive[key]
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise _corrupt(
                file,
                f"entry {key!r} is an object (pickled) array; xpnet never writes those and refuses to unpickle them",
            ) from exc
        raise _corrupt(file, f"entry {key!r} is damaged ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - CRC errors, short reads, bad .npy headers: all damage
        raise _corrupt(file, f"entry {key!r} is damaged ({type(exc).__name__}: {exc})") from exc
    if not isinstance(value, np.ndarray):  # NumPy hands back raw bytes for a member without a .npy header
        raise _corrupt(file, f"entry {key!r} is not a NumPy array")
    if value.dtype.hasobject:
        raise _corrupt(file, f"entry {key!r} is an object array; xpnet refuses those")
    return value


def _read_header(file: pathlib.Path, archive: Any) -> dict[str, Any]:
    if _HEADER not in archive.files:
        raise _corrupt(file, f"it has no {_HEADER!r} entry (an .npz archive, but not written by xpnet.io.save)")
    raw = _member(file, archive, _HEADER)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _corrupt(file, f"the header is a {raw.dtype} array of shape {raw.shape}, expected 1-D uint8")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _corrupt(file, f"the header is not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise _corrupt(file, "the header's JSON is nested too deeply to be an xpnet header") from exc
    depth = _nesting(header)
    if depth > _MAX_NESTING:
        raise _corrupt(
            file, f"the header's JSON is nested {depth} levels deep; xpnet headers stay under {_MAX_NESTING}"
        )
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise _corrupt(file, f"the header says format {found!r}, expected {FORMAT_NAME!r}")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _corrupt(file, f"the header has format version {version!r}, expected an integer >= 1")
    if version > FORMAT_VERSION:
        raise _corrupt(
            file,
            f"it was written in format version {version} by xpnet {header.get('xpnet_version')}; this xpnet reads "
            f"up to version {FORMAT_VERSION}. Upgrade xpnet (pip install -U xpnet)",
        )
    problem = _header_problem(header)
    if problem:
        raise _corrupt(file, f"the header is malformed: {problem}")
    return header


# A Sequential nests four JSON levels per level of the model; Python's own recursion
# limit (about 1000 frames) would stop rebuilding or running a far shallower model.
_MAX_NESTING = 200


def _nesting(value: Any) -> int:
    """The depth of nested lists/dicts in ``value``, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _header_problem(header: dict[str, Any]) -> str:
    """What is wrong with the types of the header's fields ('' when nothing is)."""
    arch = header.get("architecture")
    if not isinstance(arch, dict) or not isinstance(arch.get("type"), str) or not isinstance(arch.get("config"), dict):
        return f"'architecture' should be {{'type': str, 'config': dict}}, found {_brief(arch)}"
    params = header.get("parameters")
    if not isinstance(params, list):
        return f"'parameters' should be a list, found {_brief(params)}"
    for i, entry in enumerate(params):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("shape"), list)
            and all(_is_int(n) and n >= 0 for n in entry["shape"])
        ):
            return f"parameters[{i}] should be {{'name': str, 'shape': [int >= 0, ...]}}, found {_brief(entry)}"
    names = [entry["name"] for entry in params]
    if len(set(names)) != len(names):
        return f"'parameters' names a parameter twice ({sorted(n for n in set(names) if names.count(n) > 1)})"
    for key in ("dtype", "device", "xpnet_version"):
        if header.get(key) is not None and not isinstance(header[key], str):
            return f"{key!r} should be a string, found {_brief(header[key])}"
    if header.get("history") is not None and not isinstance(header["history"], dict):
        return f"'history' should be a dict, found {_brief(header['history'])}"
    schedule = header.get("schedule")
    if schedule is not None and not (isinstance(schedule, dict) and isinstance(schedule.get("type"), str)):
        return f"'schedule' should be a dict with a 'type', found {_brief(schedule)}"
    optimizer = header.get("optimizer")
    if optimizer is not None:
        expected = {
            "type": (lambda v: isinstance(v, str), "a string"),
            "lr": (_is_finite_number, "a finite number"),
            "initial_lr": (_is_finite_number, "a finite number"),
            "t": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
            "config": (lambda v: isinstance(v, dict), "a dict"),
            "parameters": (lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of names"),
            "arrays": (lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of names"),
        }
        if not isinstance(optimizer, dict):
            return f"'optimizer' should be a dict, found {_brief(optimizer)}"
        for key, (ok, what) in expected.items():
            if not ok(optimizer.get(key)):
                return f"optimizer[{key!r}] should be {what}, found {_brief(optimizer.get(key))}"
    return ""


def _brief(value: Any) -> str:
    text = json.dumps(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _read_arrays(
    file: pathlib.Path, archive: Any, header: dict[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    expected = {entry["name"]: tuple(entry["shape"]) for entry in header["parameters"]}
    entry = header.get("optimizer")
    optim_names = set(entry["arrays"]) if entry is not None else set()
    params, optim = {}, {}
    unexpected = []
    for key in archive.files:
        if key == _HEADER:
            continue
        if key.startswith(_PARAM) and key[len(_PARAM) :] in expected:
            params[key[len(_PARAM) :]] = _member(file, archive, key)
        elif key.startswith(_OPTIM) and key[len(_OPTIM) :] in optim_names:
            optim[key[len(_OPTIM) :]] = _member(file, archive, key)
        else:
            unexpected.append(key)
    missing = sorted(set(expected) - set(params))
    missing_optim = sorted(optim_names - set(optim))
    if missing or missing_optim or unexpected:
        parts = [
            f"missing parameter arrays {missing}" if missing else "",
            f"missing optimizer arrays {missing_optim}" if missing_optim else "",
            f"unexpected entries {sorted(unexpected)}" if unexpected else "",
        ]
        raise _corrupt(file, "; ".join(p for p in parts if p))
    for name, value in params.items():
        if tuple(value.shape) != expected[name]:
            raise _corrupt(file, f"parameter {name!r} has shape {tuple(value.shape)}, the header says {expected[name]}")
        if value.dtype.kind != "f":
            raise _corrupt(file, f"parameter {name!r} has dtype {value.dtype}, expected a float dtype")
    return params, optim


#: (class, config) pairs whose rebuild gave the model's parameters: a ModelCheckpoint
#: saving every epoch builds the throwaway model once, not once an epoch.
_ROUND_TRIPS: dict[tuple[type, str], None] = {}


def _check_round_trip(model: Module) -> None:
    """Raise ``TypeError`` unless :func:`load` would rebuild ``model`` with its very
    parameter names and shapes: it rebuilds ``layer_class(type).from_config(config)``,
    which knows nothing of a module set as an attribute of a plain ``Sequential``, and
    calls a ``Sequential`` subclass as ``cls(*layers)``, which an ``__init__`` taking
    sizes (``MLP(n_in, n_hidden, n_out)``) may accept and then fail on. The check
    builds that model once on the CPU (the global random generator is left as it was)."""
    cls, config = type(model), model.get_config()
    key = (cls, repr(config))
    if key in _ROUND_TRIPS:
        return
    name = cls.__name__
    own = {n: tuple(p.shape) for n, p in model.named_parameters()}
    with using("cpu", model.dtype or default_dtype()), _random.preserved_state(), \
            _init._allocation_limit(sum(math.prod(shape) for shape in own.values())):
        try:
            rebuilt = layer_class(layer_type(model)).from_config(config)
        except _init._AllocationRefused:
            rebuilt = None  # larger than the model: its parameters cannot match
        except Exception as exc:  # noqa: BLE001 - whatever the user's constructor raises, named here
            raise TypeError(
                f"cannot save {name}: load rebuilds it as {name}.from_config(get_config()), which fails "
                f"({type(exc).__name__}: {exc}). A Sequential subclass is rebuilt as {name}(*layers): let "
                f"__init__ take its layers (def __init__(self, *layers): super().__init__(*layers)); any other "
                f"module needs get_config() to return its constructor's arguments (or its own from_config)"
            ) from None
    got = {} if rebuilt is None else {n: tuple(p.shape) for n, p in rebuilt.named_parameters()}
    if got != own:
        missing = sorted(set(own) - set(got))
        differ = sorted(n for n in set(own) & set(got) if own[n] != got[n])
        hint = (" A plain Sequential saves only its layers: put the module in the layer list, or use a subclass "
                "that sets it in __init__ (def __init__(self, *layers): super().__init__(*layers); "
                "self.extra = ...)." if cls.__name__ == "Sequential" and missing else
                f" Define {name}.get_config() to return what its constructor needs to build these parameters.")
        raise TypeError(
            f"cannot save {name}: load would rebuild it from get_config() without the parameters {missing}"
            f"{f' and with other shapes for {differ}' if differ else ''}"
            f"{f' and with parameters it does not have: {sorted(set(got) - set(own))}' if set(got) - set(own) else ''}"
            f", so the file could not be loaded.{hint}"
        )
    if len(_ROUND_TRIPS) >= 64:
        _ROUND_TRIPS.pop(next(iter(_ROUND_TRIPS)))
    _ROUND_TRIPS[key] = None


def _build(
    file: pathlib.Path, header: dict[str, Any], params: dict[str, np.ndarray], device: Any, dtype: Any
) -> Module:
    arch = header["architecture"]
    kind, config = arch.get("type"), arch.get("config")
    saved_dtype = header.get("dtype")
    if saved_dtype is not None and saved_dtype not in FLOAT_DTYPES:
        raise _corrupt(file, f"the header gives parameter dtype {saved_dtype!r}, expected one of {FLOAT_DTYPES}")
    target_dtype = dtype if dtype is not None else saved_dtype or default_dtype()
    stored = sum(int(value.size) for value in params.values())
    # Building draws throwaway initial weights; keep the global generator where it was
    # so loading does not change the dropout masks or shuffles that follow. The rebuilt
    # model must hold exactly the stored values, so initializers may draw no more than
    # that: a tiny file claiming a huge layer is refused before anything is allocated.
    with using(device, target_dtype), _random.preserved_state(), _init._allocation_limit(stored):
        try:
            model = layer_class(kind).from_config(config)
        except _init._AllocationRefused as exc:
            raise _corrupt(
                file,
                f"the header's {kind} would create more parameters than the file stores ({stored:,} values "
                f"in {len(params)} arrays): {exc}",
            ) from exc
        except RecursionError as exc:
            raise _corrupt(file, f"the saved {kind} is nested too deeply to rebuild") from exc
        except KeyError as exc:
            text = str(exc.args[0]) if exc.args else ""
            if text.startswith("unknown layer type"):
                raise _corrupt(
                    file, f"{text} (if it is your own layer, import the module that defines it before loading)"
                ) from exc
            raise _corrupt(file, f"the saved {kind} config lacks the entry {exc}") from exc
        except (TypeError, ValueError, AttributeError, ArithmeticError) as exc:
            raise _corrupt(file, f"cannot rebuild the saved {kind} from its config ({exc})") from exc
    if not isinstance(model, Module):
        raise _corrupt(file, f"{kind}.from_config returned a {type(model).__name__}, not a Module")
    own = {name: p.shape for name, p in model.named_parameters()}
    missing, extra = sorted(set(own) - set(params)), sorted(set(params) - set(own))
    if missing or extra:
        raise _corrupt(
            file, f"the saved parameters do not fit the rebuilt {kind}: missing {missing}, unexpected {extra}"
        )
    for name, shape in own.items():
        if tuple(params[name].shape) != tuple(shape):
            raise _corrupt(
                file,
                f"parameter {name!r} has shape {tuple(params[name].shape)}, the rebuilt {kind} expects {tuple(shape)}",
            )
    return model.load_state_dict(params)


def _optimizer_state(
    file: pathlib.Path, header: dict[str, Any], arrays: dict[str, np.ndarray]
) -> dict[str, Any] | None:
    entry = header.get("optimizer")
    if entry is None:
        return None
    try:
        state = {
            "type": str(entry["type"]),
            "lr": float(entry["lr"]),
            "initial_lr": float(entry["initial_lr"]),
            "t": int(entry["t"]),
            "config": dict(entry["config"]),
            "parameters": list(entry["parameters"]),
            "arrays": arrays,
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise _corrupt(file, f"the header's optimizer entry is malformed ({exc!r})") from exc
    shapes = {item["name"]: tuple(item["shape"]) for item in header["parameters"]}
    unknown = [name for name in state["parameters"] if name not in shapes]
    if unknown:
        raise _corrupt(file, f"the optimizer entry names parameters the model does not have: {unknown}")
    for key, value in arrays.items():
        index, _, slot = key.partition(".")
        if not index.isdigit() or not slot or int(index) >= len(state["parameters"]):
            raise _corrupt(file, f"optimizer state {key!r} refers to no saved parameter")
        name = state["parameters"][int(index)]
        if tuple(value.shape) != shapes.get(name):
            raise _corrupt(
                file,
                f"optimizer state {key!r} has shape {tuple(value.shape)}, parameter {name!r} has {shapes.get(name)}",
            )
    return state


def _restore_optimizer(file: pathlib.Path, optimizer: Any, state: dict[str, Any] | None, model: Module) -> None:
    kind = type(optimizer).__name__
    if state is None:
        raise ValueError(
            f"'{file}' has no optimizer state to restore into {kind}; it was saved without save(..., optimizer=...)"
        )
    if state["type"] != kind:
        raise ValueError(
            f"'{file}' holds {state['type']} state, but the given optimizer is {kind}; "
            f"construct an optimizer of type {state['type']} to resume"
        )
    named = dict(model.named_parameters())
    handles = [named[name] for name in state["parameters"]]
    if len(optimizer.params) != len(handles):
        raise ValueError(
            f"the {kind} given updates {len(optimizer.params)} parameters, the saved one "
            f"{len(handles)}; build it over a model of the saved architecture"
        )
    for mine, theirs in zip(optimizer.params, handles, strict=True):
        if mine.shape != theirs.shape:
            raise ValueError(
                f"the {kind} given updates a parameter of shape {mine.shape} where the saved "
                f"one had {theirs.shape} ({theirs!r}); build it over a model of the saved architecture"
            )
    optimizer.params = handles
    optimizer.load_state_dict(state)
