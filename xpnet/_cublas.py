"""A cuBLAS matrix product that a CUDA graph can capture (the CuPy compiled step).

CuPy refuses every cuBLAS call while a stream captures: its ``cublas.setStream`` raises
``NotImplementedError('calling cuBLAS API during stream capture is currently
unsupported')`` (cupy_backends/cuda/libs/cublas.pyx, CuPy 14.2; CuPy issue #6290), so
the layers' own ``xp.matmul`` cannot go into a CUDA graph. cuBLAS itself captures GEMMs
(cuBLAS documentation, "CUDA Graphs Support": routines that write no host result, with
alpha and beta read from host memory when the graph is captured). :func:`matmul` below
calls ``cublasSgemm_v2`` / ``cublasDgemm_v2`` of the cuBLAS library CuPy has loaded,
through ctypes, on CuPy's own handle and the current stream.

Only the compiled CuPy step uses it, and only while it captures
(:func:`xpnet.backend.graph_matmul`); eager CuPy keeps ``cupy.matmul``. The layout rule
(row-major arrays as column-major operands, :func:`gemm_args`) is tested on the CPU
against a column-major GEMM written in NumPy; the call itself needs a GPU.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

OP_N, OP_T = 0, 1  # cublasOperation_t
_POINTER_MODE_HOST = 0  # cublasPointerMode_t
_INT_MAX = 2**31 - 1


def _operand(shape: tuple[int, int], strides: tuple[int, int], itemsize: int) -> tuple[int, int] | None:
    """How cuBLAS reads the row-major matrix X (``shape``, byte ``strides``) as the
    column-major matrix X.T: ``(op, ld)``, or None if X is neither row- nor
    column-contiguous.

    A row-contiguous X (element (i, j) at ``i * ld + j``) *is* X.T in column-major order
    with leading dimension ``ld``: op N. A column-contiguous X (element (i, j) at
    ``i + j * ld``, the transpose view ``W.T`` of a C-ordered W) is X itself in
    column-major order: op T gives X.T. A size-1 axis has no meaningful stride.
    """
    rows, cols = shape
    s0, s1 = strides
    if s0 % itemsize or s1 % itemsize:
        return None
    if cols == 1 or s1 == itemsize:
        ld = s0 // itemsize if rows > 1 else max(1, cols)
        if ld >= max(1, cols):
            return OP_N, ld
    if rows == 1 or s0 == itemsize:
        ld = s1 // itemsize if cols > 1 else max(1, rows)
        if ld >= max(1, rows):
            return OP_T, ld
    return None


def gemm_args(a_shape: tuple[int, int], a_strides: tuple[int, int], b_shape: tuple[int, int],
              b_strides: tuple[int, int], itemsize: int) -> tuple[int, int, int, int, int, int, int, int] | None:
    """The column-major GEMM that writes the row-major product ``a @ b`` into a fresh
    C-ordered (n, m) array: ``(transa, transb, M, N, K, lda, ldb, ldc)``.

    Shapes: ``a`` (n, k), ``b`` (k, m), all sizes >= 1. C-ordered (n, m) memory is the
    column-major (m, n) matrix C.T = b.T @ a.T, so cuBLAS's A is the memory of ``b``
    and its B that of ``a`` (pass the pointers in that order). None if an operand is
    neither row- nor column-contiguous, or a size exceeds cuBLAS's 32-bit ints.
    """
    (n, k), (_, m) = a_shape, b_shape
    op_a, op_b = _operand(a_shape, a_strides, itemsize), _operand(b_shape, b_strides, itemsize)
    if op_a is None or op_b is None:
        return None
    (transb, ldb), (transa, lda) = op_a, op_b
    if max(n, k, m, lda, ldb) > _INT_MAX:
        return None
    return transa, transb, m, n, k, lda, ldb, max(1, m)


class CublasError(RuntimeError):
    """A cuBLAS call returned a status other than CUBLAS_STATUS_SUCCESS."""


def _loaded_cublas_path() -> str | None:
    """The libcublas this process has loaded (CuPy's), from /proc/self/maps."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip()
                name = path.rsplit("/", 1)[-1]
                if name.startswith("libcublas.so"):
                    return path
    except OSError:
        return None
    return None


def _candidates() -> list[str]:
    """Where to look up the cuBLAS functions, most certain first: CuPy's own cuBLAS
    extension module (it links libcublas, and a symbol looked up through it resolves in
    exactly the library CuPy calls), the libcublas mapped in this process, the one on
    the library path."""
    paths = []
    try:
        from cupy_backends.cuda.libs import cublas as cupy_cublas

        paths.append(cupy_cublas.__file__)
    except (ImportError, AttributeError):
        pass
    paths += [p for p in (_loaded_cublas_path(), ctypes.util.find_library("cublas")) if p]
    return paths


@functools.cache
def _library() -> Any:
    """The five cuBLAS functions, typed, from the first of :func:`_candidates` that has
    them; looked up after CuPy created its handle, so that they are CuPy's."""
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            lib.cublasSgemm_v2  # noqa: B018 - the lookup is the test
        except (OSError, AttributeError) as exc:
            tried.append(f"{path} ({type(exc).__name__})")
            continue
        break
    else:
        raise CublasError("found no cuBLAS library with cublasSgemm_v2 in this process or on the library path"
                          + (f"; tried {', '.join(tried)}" if tried else ""))
    p, i = ctypes.c_void_p, ctypes.c_int
    for name, real in (("cublasSgemm_v2", ctypes.c_float), ("cublasDgemm_v2", ctypes.c_double)):
        fn = getattr(lib, name)
        real_p = ctypes.POINTER(real)
        fn.argtypes = [p, i, i, i, i, i, real_p, p, i, p, i, real_p, p, i]
        fn.restype = i
    lib.cublasSetStream_v2.argtypes, lib.cublasSetStream_v2.restype = [p, p], i
    lib.cublasGetPointerMode_v2.argtypes, lib.cublasGetPointerMode_v2.restype = [p, ctypes.POINTER(i)], i
    lib.cublasSetPointerMode_v2.argtypes, lib.cublasSetPointerMode_v2.restype = [p, i], i
    return lib


def _check(status: int, what: str) -> None:
    if status != 0:
        raise CublasError(f"{what} returned cuBLAS status {status} (0 is success)")


def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` for 2-D float32/float64 CuPy arrays through cuBLAS, on the current
    stream, capturable into a CUDA graph; any other input goes to ``cupy.matmul``.

    Shapes: ``a`` (n, k), ``b`` (k, m) -> a new C-ordered (n, m) array from CuPy's
    current allocator. An operand that is neither row- nor column-contiguous is copied
    contiguous first (a kernel, which a graph captures too).
    """
    import cupy

    if (a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype or a.dtype.name not in ("float32", "float64")
            or a.shape[1] != b.shape[0]):
        return cupy.matmul(a, b)
    (n, k), m = a.shape, b.shape[1]
    out = cupy.empty((n, m), dtype=a.dtype)
    if n == 0 or m == 0:
        return out
    if k == 0:
        out.fill(0)
        return out
    args = gemm_args(a.shape, a.strides, b.shape, b.strides, a.itemsize)
    if args is None:
        a, b = cupy.ascontiguousarray(a), cupy.ascontiguousarray(b)
        args = gemm_args(a.shape, a.strides, b.shape, b.strides, a.itemsize)
        if args is None:  # sizes beyond 32-bit ints
            return cupy.matmul(a, b)
    transa, transb, mm, nn, kk, lda, ldb, ldc = args
    # CuPy's handle first: creating it loads libcublas, where _library looks
    handle = ctypes.c_void_p(cupy.cuda.device.get_cublas_handle())
    lib = _library()
    _check(lib.cublasSetStream_v2(handle, ctypes.c_void_p(cupy.cuda.get_current_stream().ptr)),
           "cublasSetStream_v2")
    mode = ctypes.c_int()
    _check(lib.cublasGetPointerMode_v2(handle, ctypes.byref(mode)), "cublasGetPointerMode_v2")
    if mode.value != _POINTER_MODE_HOST:
        _check(lib.cublasSetPointerMode_v2(handle, _POINTER_MODE_HOST), "cublasSetPointerMode_v2")
    try:
        if a.dtype.name == "float32":
            gemm, real = lib.cublasSgemm_v2, ctypes.c_float
        else:
            gemm, real = lib.cublasDgemm_v2, ctypes.c_double
        alpha, beta = real(1.0), real(0.0)
        # cuBLAS's A is b's memory and its B is a's: C.T = b.T @ a.T (gemm_args)
        _check(gemm(handle, transa, transb, mm, nn, kk, ctypes.byref(alpha), ctypes.c_void_p(b.data.ptr), lda,
                    ctypes.c_void_p(a.data.ptr), ldb, ctypes.byref(beta), ctypes.c_void_p(out.data.ptr), ldc),
               gemm.__name__)
    finally:
        if mode.value != _POINTER_MODE_HOST:
            lib.cublasSetPointerMode_v2(handle, mode.value)
    return out

