"""The CUDA-graph step's matrix product: its column-major layout rule, checked on the CPU
against a column-major GEMM written out in NumPy, and the namespace swap that routes
the layers' ``xp.matmul`` to it. The cuBLAS call itself is tested on a GPU."""

import numpy as np
import pytest

import xpnet
from xpnet import _cublas, backend, nn


def _colmajor_gemm(transa, transb, m, n, k, A, lda, B, ldb, ldc):
    """BLAS GEMM by its definition: C (m x n, column-major, leading dimension ldc) =
    op(A) @ op(B), with A and B flat buffers read column-major with lda and ldb."""
    i, j, p = np.arange(m)[:, None, None], np.arange(n)[None, :, None], np.arange(k)[None, None, :]
    op_a = A[i + p * lda] if transa == _cublas.OP_N else A[p + i * lda]  # (m, 1, k)
    op_b = B[p + j * ldb] if transb == _cublas.OP_N else B[j + p * ldb]  # (1, n, k)
    c = np.zeros(max(ldc, 1) * n)
    c[(np.arange(m)[:, None] + np.arange(n)[None, :] * ldc).ravel()] = (op_a * op_b).sum(axis=2).ravel()
    return c


def _flat(view):
    """The buffer a view reads, as a flat array starting at the view's first element."""
    base = view
    while base.base is not None:
        base = base.base
    start = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // view.itemsize
    return base.ravel(order="K")[start:]  # memory order, a view


def _layouts(rng, rows, cols):
    """The same (rows, cols) matrix as C-ordered, F-ordered (a transpose view), a
    column slice of a wider C array (row stride > cols) and a row slice of a taller
    F array."""
    value = rng.standard_normal((rows, cols))
    wide = rng.standard_normal((rows, cols + 3))
    wide[:, :cols] = value
    tall = np.asfortranarray(rng.standard_normal((rows + 2, cols)))
    tall[:rows] = value
    return {"C": np.ascontiguousarray(value), "F(transpose)": np.ascontiguousarray(value.T).T,
            "C slice": wide[:, :cols], "F slice": tall[:rows]}


@pytest.mark.parametrize("n, k, m", [(5, 3, 4), (1, 3, 4), (5, 1, 4), (5, 3, 1), (1, 1, 1), (64, 12, 16)])
def test_gemm_args_give_the_row_major_product_for_every_layout(n, k, m):
    rng = np.random.default_rng(n * 100 + k * 10 + m)
    for name_a, a in _layouts(rng, n, k).items():
        for name_b, b in _layouts(rng, k, m).items():
            args = _cublas.gemm_args(a.shape, a.strides, b.shape, b.strides, a.itemsize)
            assert args is not None, (name_a, name_b)
            transa, transb, mm, nn_, kk, lda, ldb, ldc = args
            assert (mm, nn_, kk, ldc) == (m, n, k, m)
            # cuBLAS's A is b's memory and its B is a's
            c = _colmajor_gemm(transa, transb, mm, nn_, kk, _flat(b), lda, _flat(a), ldb, ldc)
            np.testing.assert_allclose(c[: n * m].reshape(n, m), a @ b, rtol=1e-12, err_msg=f"{name_a} @ {name_b}")


def test_gemm_args_refuse_layouts_blas_cannot_read():
    x = np.zeros((6, 8))
    strided = x[::2, ::2]  # neither rows nor columns contiguous
    assert _cublas.gemm_args(strided.shape, strided.strides, (4, 3), (24, 8), 8) is None
    reversed_rows = x[::-1]
    assert _cublas.gemm_args(reversed_rows.shape, reversed_rows.strides, (8, 3), (24, 8), 8) is None
    assert _cublas.gemm_args((2**31, 3), (24, 8), (3, 4), (32, 8), 8) is None


def test_layer_code_runs_on_the_swapped_matmul_and_gets_its_own_back():
    X = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    reference = model.forward(X)
    calls = []

    def recording_matmul(a, b):
        calls.append((a.shape, b.shape))
        return np.matmul(a, b)

    with backend.namespace_override(X, matmul=recording_matmul):
        out = model.forward(X)
        model.backward_params(np.ones_like(out))
    assert calls[:2] == [((8, 5), (5, 4)), ((8, 4), (4, 3))]
    assert len(calls) == 2 + 3  # forward, then W gradients of both layers and one input gradient
    np.testing.assert_array_equal(out, reference)
    calls.clear()
    model.forward(X)
    assert calls == [] and backend.array_namespace(X).matmul is not recording_matmul


def test_namespace_override_is_undone_when_the_block_fails():
    X = np.ones((2, 2))
    before = backend.array_namespace(X)
    with pytest.raises(RuntimeError, match="inside"), backend.namespace_override(X, matmul=None):
        raise RuntimeError("inside")
    assert backend.array_namespace(X) is before


def test_graph_matmul_is_only_swapped_in_on_cupy():
    assert backend.graph_matmul(backend.resolve_device("cpu")) is None


@pytest.mark.cuda
def test_cublas_matmul_equals_cupy_matmul_and_is_captured():
    if not xpnet.gpu_available():
        pytest.skip("no CUDA GPU answers an allocation here (xpnet.gpu_available() is False)")
    import cupy

    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        for name_a, a in _layouts(rng, 33, 17).items():
            for name_b, b in _layouts(rng, 17, 9).items():
                da, db = (cupy.asarray(v.astype(dtype)) for v in (a, b))
                if name_a.startswith("F"):
                    da = cupy.asfortranarray(da)
                if name_b.startswith("F"):
                    db = cupy.asfortranarray(db)
                np.testing.assert_allclose(cupy.asnumpy(_cublas.matmul(da, db)), a @ b,
                                           rtol=1e-5 if dtype == "float32" else 1e-12, err_msg=f"{name_a} @ {name_b}")
    a, b = cupy.asarray(rng.standard_normal((64, 32))), cupy.asarray(rng.standard_normal((32, 16)))
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        _cublas.matmul(a, b)  # warm-up outside the capture
        stream.synchronize()
        stream.begin_capture()
        out = _cublas.matmul(a, b.T.T)
        graph = stream.end_capture()
        out.fill(np.nan)
        graph.launch(stream)
        stream.synchronize()
    np.testing.assert_allclose(cupy.asnumpy(out), cupy.asnumpy(a) @ cupy.asnumpy(b), rtol=1e-12)
