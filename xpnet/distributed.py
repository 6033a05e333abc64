"""Data-parallel training over MPI: ``mpiexec -n N python train.py``.

One process per GPU (or per CPU core) holds a full copy of the model and of the data.
Each global batch of ``batch_size`` samples is split across the processes ("ranks");
each computes the gradient of its shard, the gradients are summed in one flat buffer
(weighted by shard size, so the average is that of the whole batch), and every rank
applies the same update. This is the scheme of ChainerMN and Horovod; the transport is
MPI (mpi4py) on the host, or NCCL between GPUs through ``cupyx.distributed``::

    import xpnet
    from xpnet import distributed

    rank, size = distributed.init()          # before building the model (picks cuda:{local_rank})
    model = xpnet.nn.Sequential(...)
    xpnet.fit(model, "cross_entropy", X, y, batch_size=256, distributed=True)

For a loop of your own: :func:`broadcast_parameters` once, :func:`shard` for the data
and :func:`allreduce_gradients` between ``backward`` and ``optimizer.step()``.

Faults: inside ``fit`` a rank whose step raises tells every rank through the same
allreduce (one flag slot in the gradient buffer), and every rank stops with that
rank's error. Any other uncaught error on one rank prints the rank and its traceback
and aborts the whole job (``MPI_Abort``), so no rank waits forever for a dead peer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import backend as _backend

__all__ = [
    "World",
    "RankFailedError",
    "init",
    "world",
    "broadcast_parameters",
    "allreduce_gradients",
    "shard",
]

_MPI_FIX = 'install the MPI extra: `pip install "xpnet[mpi]"` (mpi4py and the Open MPI wheels)'
_AGREED = "_xpnet_every_rank_stopped"


class RankFailedError(RuntimeError):
    """Another rank raised during distributed training; this rank stopped with it."""


# ----------------------------------------------------------------------- transports
@dataclasses.dataclass(frozen=True)
class _Layout:
    """Where each parameter's slice sits in the flat buffer."""

    shapes: tuple[tuple[int, ...], ...]
    sizes: tuple[int, ...]
    dtype: str
    device: _backend.Device

    @classmethod
    def of(cls, values: list[Any]) -> _Layout:
        shapes = tuple(tuple(int(s) for s in v.shape) for v in values)
        sizes = tuple(int(np.prod(s, dtype=np.int64)) for s in shapes)
        return cls(shapes, sizes, _backend.dtype_name(values[0].dtype), _backend.device_of(values[0]))

    @property
    def total(self) -> int:
        return sum(self.sizes)

    def split(self, flat: Any, xp: Any) -> list[Any]:
        out, offset = [], 0
        for shape, size in zip(self.shapes, self.sizes, strict=True):
            out.append(xp.reshape(flat[offset : offset + size], shape))
            offset += size
        return out


class _HostTransport:
    """MPI collectives on one host buffer: NumPy arrays directly, any other backend
    staged through the host (the fallback for CuPy when NCCL is unavailable)."""

    name = "mpi"

    def __init__(self, comm: Any):
        self.comm = comm
        self._buffers: dict[tuple[int, str], np.ndarray] = {}

    def _buffer(self, size: int, dtype: str) -> np.ndarray:
        buf = self._buffers.get((size, dtype))
        if buf is None:
            buf = self._buffers[(size, dtype)] = np.empty(size, dtype=dtype)
        return buf

    def _pack(self, parts: list[Any] | None, layout: _Layout, extra: int, weight: float) -> np.ndarray:
        buf = self._buffer(layout.total + extra, layout.dtype)
        if parts is None:
            buf[: layout.total] = 0
            return buf
        offset = 0
        for part, size in zip(parts, layout.sizes, strict=True):
            np.multiply(_backend.to_numpy(part).reshape(-1), weight, out=buf[offset : offset + size])
            offset += size
        return buf

    def _unpack(self, buf: np.ndarray, layout: _Layout) -> list[Any]:
        return [layout.device.asarray(view, dtype=layout.dtype) for view in layout.split(buf, np)]

    def allreduce(self, parts: list[Any] | None, layout: _Layout, weight: float,
                  flags: tuple[float, ...]) -> tuple[list[Any], np.ndarray]:
        from mpi4py import MPI

        buf = self._pack(parts, layout, len(flags), weight)
        buf[layout.total :] = flags
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return self._unpack(buf, layout), buf[layout.total :].astype(np.float64)

    def broadcast(self, parts: list[Any], layout: _Layout, root: int) -> list[Any]:
        buf = self._pack(parts, layout, 0, 1.0)
        self.comm.Bcast(buf, root=root)
        return self._unpack(buf, layout)


class _NcclTransport:
    """NCCL between GPUs (``cupyx.distributed``, bootstrapped by MPI): the flat buffer
    never leaves the device. Needs one GPU per rank and CuPy built with NCCL."""

    name = "nccl"

    def __init__(self, rank: int, size: int):
        from cupyx.distributed import init_process_group

        self.comm = init_process_group(size, rank, backend="nccl", use_mpi=True)

    def allreduce(self, parts: list[Any] | None, layout: _Layout, weight: float,
                  flags: tuple[float, ...]) -> tuple[list[Any], np.ndarray]:
        device = layout.device
        xp, dtype = device.xp, device.dtype(layout.dtype)
        tail = device.asarray(np.asarray(flags), dtype=layout.dtype)
        if parts is None:
            flat = xp.concat([xp.zeros((layout.total,), dtype=dtype), tail])
        else:
            flat = xp.concat([xp.reshape(p, (-1,)) * weight for p in parts] + [tail])
        self.comm.all_reduce(flat, flat, op="sum")
        # The one device->host read per step: every rank must know at once whether a
        # peer failed, or the next collective would wait for a rank that is gone.
        status = device.to_numpy(flat[layout.total :]).astype(np.float64)
        return layout.split(flat[: layout.total], xp), status

    def broadcast(self, parts: list[Any], layout: _Layout, root: int) -> list[Any]:
        xp = layout.device.xp
        flat = xp.concat([xp.reshape(p, (-1,)) for p in parts])
        self.comm.broadcast(flat, root)
        return layout.split(flat, xp)


# --------------------------------------------------------------------------- World
class World:
    """The processes of one MPI job, as seen from one of them.

    Unpacks as ``rank, size = xpnet.distributed.init()``.

    Attributes:
        rank: this process's number, 0 to ``size - 1``; rank 0 prints and saves.
        size: the number of processes (1 when not launched by ``mpiexec``).
        local_rank: the rank among the processes on this node (picks the GPU).
        device: the :class:`xpnet.Device` this rank trains on.
        transport: ``"nccl"`` (GPU to GPU), ``"mpi"`` (host buffers) or ``"none"``
            (a single process).
        comm: the mpi4py communicator (``None`` only without mpi4py's MPI).
    """

    def __init__(self, comm: Any, device: _backend.Device, local_rank: int = 0):
        self.comm = comm
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        self.local_rank = local_rank
        self.device = device
        self._transport: Any = None

    def __iter__(self) -> Iterator[int]:
        yield self.rank
        yield self.size

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size}, device={self.device.name!r}, transport={self.transport!r})"

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that prints progress and writes checkpoints."""
        return self.rank == 0

    @property
    def transport(self) -> str:
        """``"nccl"``, ``"mpi"`` or ``"none"`` (a one-process world): how gradients travel."""
        return "none" if self._transport is None else self._transport.name

    # -- data ---------------------------------------------------------------------
    def bounds(self, n: int) -> tuple[int, int]:
        """``(start, stop)`` of this rank's contiguous block of ``n`` items: blocks
        differ in size by at most one, and are empty when ``n < size``."""
        return self.rank * n // self.size, (self.rank + 1) * n // self.size

    def shard(self, data: Any) -> Any:
        """This rank's block of ``data`` along its first axis (any array, or a
        sequence). Shapes: (N, ...) -> (about N / size, ...)."""
        start, stop = self.bounds(int(data.shape[0]) if hasattr(data, "shape") else len(data))
        return data[start:stop]

    # -- collectives on small host values ---------------------------------------------
    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of a short list of numbers over all ranks (collective)."""
        if self.size == 1:
            return [float(v) for v in values]
        from mpi4py import MPI

        buf = np.asarray(values, dtype=np.float64)
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return buf.tolist()

    def broadcast_array(self, host: np.ndarray, root: int = 0) -> np.ndarray:
        """Rank ``root``'s copy of a host array of the same shape and dtype on every
        rank (collective)."""
        if self.size > 1:
            host = np.ascontiguousarray(host)
            self.comm.Bcast(host, root=root)
        return host

    # -- faults -------------------------------------------------------------------
    def _raise_agreed(self, error: BaseException | None, where: str) -> None:
        """Every rank calls this once a collective reported a failure: the failed rank
        re-raises its own error, the others a :class:`RankFailedError` naming it."""
        report = None if error is None else (type(error).__name__, str(error))
        reports = self.comm.allgather(report)
        failed = [(r, rep) for r, rep in enumerate(reports) if rep is not None]
        if error is not None:
            _mark_agreed(error)
            raise error
        rank, (kind, message) = failed[0]
        others = f" (and ranks {[r for r, _ in failed[1:]]})" if len(failed) > 1 else ""
        stop = RankFailedError(f"rank {rank}{others} raised {kind}: {message} ({where}); every rank stopped. "
                               f"Rank {rank}'s own traceback shows where")
        _mark_agreed(stop)
        raise stop

    def abort(self, error: BaseException) -> None:
        """Print this rank's error and end every rank of the job (``MPI_Abort``): for
        a failure that the other ranks cannot learn of through a collective."""
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        print(f"xpnet.distributed: rank {self.rank} of {self.size} failed; aborting every rank.\n{text}",
              file=sys.stderr, flush=True)
        self.comm.Abort(1)


def _mark_agreed(error: BaseException) -> None:
    with contextlib.suppress(AttributeError, TypeError):
        setattr(error, _AGREED, True)


def _excepthook(world: World, previous: Any) -> Any:
    def hook(kind: type[BaseException], error: BaseException, tb: Any) -> None:
        if getattr(error, _AGREED, False) or world.size == 1:
            previous(kind, error, tb)
            return
        world.abort(error)

    return hook


# --------------------------------------------------------------------------- init
_WORLD: World | None = None

# Set by the launchers of Open MPI, MPICH/Intel MPI and PMIx (srun --mpi=pmix).
_LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        launched = [v for v in _LAUNCHER_VARIABLES if v in os.environ]
        where = f" (this process was started by an MPI launcher: {', '.join(launched)} is set)" if launched else ""
        raise ImportError(f"xpnet.distributed needs mpi4py, which is not installed{where}; {_MPI_FIX}") from exc
    return MPI


def init(device: str | _backend.Device | None = None, *, transport: str = "auto") -> World:
    """Join the MPI job this process was started in (collective: every rank calls it).

    Call it before building the model. Without ``mpiexec`` the world is this one
    process (size 1) and training runs as usual.

    Args:
        device: where this rank trains; default the current device. A GPU device
            becomes GPU ``local_rank`` of its node (``cuda:{local_rank}``: one GPU per
            rank), and is selected with :func:`xpnet.use`.
        transport: ``"auto"`` (NCCL for CuPy when available, else MPI on host
            buffers), ``"nccl"`` (an error if NCCL cannot start) or ``"mpi"``.

    Returns:
        The :class:`World` (``rank, size = init()`` unpacks it). Calling ``init`` again
        returns the same world.

    Raises:
        ImportError: mpi4py is missing (the message names the ``mpi`` extra).
        ValueError: ranks chose different kinds of device (e.g. one on CPU, one on a
            GPU), or an unknown ``transport``.
    """
    global _WORLD
    if transport not in ("auto", "nccl", "mpi"):
        raise ValueError(f"transport must be 'auto', 'nccl' or 'mpi', got {transport!r}")
    if _WORLD is not None:
        if device is not None and _backend.resolve_device(device).backend != _WORLD.device.backend:
            raise ValueError(f"xpnet.distributed is already initialised on {_WORLD.device.name}; "
                             f"init(device={device!r}) cannot change it within one job")
        return _WORLD
    MPI = _mpi()
    comm = MPI.COMM_WORLD
    local_rank = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank()).Get_rank()
    chosen = _backend.resolve_device(device)
    if chosen.is_gpu and comm.Get_size() > 1:
        chosen = _one_gpu_per_rank(chosen, local_rank)
    _check_same_kind(comm, chosen)
    _backend.use(chosen)
    new = World(comm, chosen, local_rank)
    if new.size > 1:
        new._transport = _make_transport(new, transport)
        sys.excepthook = _excepthook(new, sys.excepthook)
    _WORLD = new
    return new


def _one_gpu_per_rank(device: _backend.Device, local_rank: int) -> _backend.Device:
    wanted = dataclasses.replace(device, index=local_rank)
    try:
        return _backend.resolve_device(wanted)
    except Exception as exc:  # noqa: BLE001 - re-raised with the launch fix
        raise ValueError(f"rank with local rank {local_rank} needs its own GPU ({wanted.name}) but that "
                         f"device cannot be used ({exc}); launch at most one rank per GPU on each node "
                         f"(mpiexec -n <number of GPUs>)") from exc


def _check_same_kind(comm: Any, device: _backend.Device) -> None:
    kinds = comm.allgather((device.backend, device.kind, device.name))
    if len({k[:2] for k in kinds}) > 1:
        found = ", ".join(f"rank {r}: {name}" for r, (_, _, name) in enumerate(kinds))
        error = ValueError(f"every rank must train on the same kind of device, found {found}; pass the same "
                           f"device to xpnet.distributed.init() (or the same XPNET_DEVICE) on every rank")
        _mark_agreed(error)  # every rank saw the same list and raises this
        raise error


def _make_transport(world: World, transport: str) -> Any:
    if transport == "mpi" or world.device.backend != "cupy":
        if transport == "nccl":
            raise ValueError(f"transport='nccl' needs CuPy GPU arrays; this job trains on {world.device.name}")
        return _HostTransport(world.comm)
    error = None
    try:
        nccl: Any = _NcclTransport(world.rank, world.size)
    except Exception as exc:  # noqa: BLE001 - decided together below
        error, nccl = exc, None
    # Every rank must pick the same transport, or their collectives would not match.
    failures = world.comm.allgather(None if error is None else f"{type(error).__name__}: {error}")
    if not any(failures):
        return nccl
    if transport == "nccl":
        rank = next(r for r, f in enumerate(failures) if f)
        raise RuntimeError(f"NCCL could not start on rank {rank}: {failures[rank]}; use transport='auto' "
                           f"to fall back to MPI through host memory")
    return _HostTransport(world.comm)


def world() -> World:
    """The world :func:`init` joined (initialising it with the defaults if needed)."""
    return _WORLD if _WORLD is not None else init()


# ------------------------------------------------------------------ model collectives
def _parameters(model: Any) -> list[Any]:
    params = model.parameters()
    if not params:
        raise ValueError(f"{type(model).__name__} has no parameters to synchronise")
    return params


def broadcast_parameters(model: Any, root: int = 0) -> None:
    """Give every rank rank ``root``'s parameter values (collective; one message)."""
    _broadcast(world(), model, root)


def _broadcast(w: World, model: Any, root: int) -> None:
    if w.size == 1:
        return
    params = _parameters(model)
    values = [p.value for p in params]
    for p, value in zip(params, w._transport.broadcast(values, _Layout.of(values), root), strict=True):
        p.value = value


def allreduce_gradients(model: Any, weight: float | None = None) -> None:
    """Replace every parameter's gradient by the weighted sum over all ranks
    (collective; one flat buffer, one message).

    Args:
        model: the model whose ``backward`` just stored its gradients.
        weight: this rank's factor, e.g. ``n_local / n_global`` when each rank's
            gradient is a mean over its ``n_local`` samples of a global batch of
            ``n_global``; ``None`` means ``1 / size`` (the plain mean over ranks).
    """
    w = world()
    _allreduce(w, model, 1.0 / w.size if weight is None else float(weight), ())


def _allreduce(w: World, model: Any, weight: float, flags: tuple[float, ...]) -> np.ndarray:
    params = _parameters(model)
    values = [p.value for p in params]
    layout = _Layout.of(values)
    parts = None if weight == 0.0 else [p.grad for p in params]
    if w.size == 1:
        xp = layout.device.xp
        if parts is None:
            summed = [xp.zeros_like(v) for v in values]
        else:
            summed = parts if weight == 1.0 else [g * weight for g in parts]
        status = np.asarray(flags, dtype=np.float64)
    else:
        summed, status = w._transport.allreduce(parts, layout, weight, flags)
    for p, g in zip(params, summed, strict=True):
        p.module.grads[p.name] = g
    return status


def shard(data: Any) -> Any:
    """This rank's contiguous block of ``data`` along the first axis (see
    :meth:`World.shard`). Shapes: (N, ...) -> (about N / size, ...)."""
    return world().shard(data)


# ------------------------------------------------------------------ fit's seam
class _Local:
    """What :func:`xpnet.fit` calls at its seams when it trains in one process: nothing."""

    rank, size, sharded = 0, 1, False

    def same_everywhere(self, host: np.ndarray) -> np.ndarray:
        return host

    def shard(self, idx: Any) -> Any:
        return idx

    def step(self, model: Any, n_local: int) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def agreed(self, interrupt: Any) -> Any:
        return interrupt

    def sum(self, values: list[Any]) -> list[Any]:
        return values

    def fail(self, error: BaseException) -> None:
        pass


LOCAL = _Local()


class _AgreedInterrupt:
    """Ctrl-C as all ranks agreed on it at the last step (a rank stopping alone would
    leave the others waiting in the next allreduce)."""

    def __init__(self, local: Any):
        self.local, self.requested = local, False


class _FitSync(_Local):
    """fit's seams under MPI: the same permutation everywhere, each global batch
    sharded, gradients (plus fault and Ctrl-C flags) summed after backward, the
    epoch's loss and metric sums summed, and any other fault ends the job."""

    sharded = True

    def __init__(self, w: World, model: Any, n: int):
        self.world, self.rank, self.size = w, w.rank, w.size
        self._global = 0
        self._steps = 0
        self._interrupt = _AgreedInterrupt(None)
        counts = w.comm.allgather(n)
        if len(set(counts)) > 1:
            error = ValueError(f"fit(distributed=True) needs the whole training set on every rank (it shards each "
                               f"batch itself); ranks have {counts} samples. Pass the same (X, y) everywhere")
            _mark_agreed(error)  # every rank saw the same counts and raises this
            raise error
        _broadcast(w, model, 0)

    def same_everywhere(self, host: np.ndarray) -> np.ndarray:
        return self.world.broadcast_array(np.asarray(host, dtype=np.int64))

    def shard(self, idx: Any) -> Any:
        self._global = int(idx.shape[0])
        start, stop = self.world.bounds(self._global)
        return idx[start:stop]

    @contextlib.contextmanager
    def step(self, model: Any, n_local: int) -> Iterator[None]:
        error = None
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - reported to every rank below
            error = exc
        self._steps += 1
        weight = 0.0 if error is not None else n_local / self._global
        local_stop = bool(self._interrupt.local is not None and self._interrupt.local.requested)
        failed, stop = _allreduce(self.world, model, weight, (float(error is not None), float(local_stop)))
        if failed:
            self.world._raise_agreed(error, f"in training step {self._steps}")
        self._interrupt.requested = bool(stop)

    def agreed(self, interrupt: Any) -> Any:
        self._interrupt = _AgreedInterrupt(interrupt)
        return self._interrupt

    def sum(self, values: list[Any]) -> list[Any]:
        return self.world.sum([float(v) for v in values])

    def fail(self, error: BaseException) -> None:
        if not getattr(error, _AGREED, False):
            self.world.abort(error)


def _fit_sync(distributed: bool, model: Any, n: int) -> _Local:
    """The seam object :func:`xpnet.fit` uses: :data:`LOCAL` unless ``distributed``
    and launched with more than one rank."""
    if not distributed:
        return LOCAL
    device = model.device or _backend.current_device()
    w = init(device) if _WORLD is None else _WORLD
    if w.size == 1:
        return LOCAL
    if device.backend != w.device.backend or (device.is_gpu and device != w.device):
        raise ValueError(f"rank {w.rank} trains on {w.device.name} but the model is on {device.name}; call "
                         f"xpnet.distributed.init() before building the model (or model.to('{w.device.name}'))")
    return _FitSync(w, model, n)
