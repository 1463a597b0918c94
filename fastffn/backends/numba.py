"""The fast backend: Numba-jitted twins of the kernels in ``numpy.py``.

Same names, same signatures, same shapes. Inputs arrive validated (C-contiguous
float32 or float64 of matching dtypes), so each kernel compiles for two
signatures only. ``fastmath`` stays off: reassociation would break agreement
with the reference. Compilation is lazy (first call) and cached on disk when
the cache directory can be written.

Small matrix products are plain loops: for the notebook's 2-10-10-2 network a
BLAS call costs more than the arithmetic. Above ``BLAS_MIN_FLOPS`` they go to
BLAS through ``np.dot``, which is what NumPy does too.
"""

import numba
import numpy as np

BLAS_MIN_FLOPS = 32_768


def jit(func):
    """``numba.njit`` with an on-disk cache where one can be written.

    Numba looks for a cache directory when the function is decorated and raises
    ``RuntimeError`` when there is none (a read-only install with an unwritable
    HOME and no ``NUMBA_CACHE_DIR``); fastffn then compiles in memory instead.
    """
    try:
        return numba.njit(cache=True)(func)
    except RuntimeError:
        return numba.njit(func)


@jit
def matmul_tn(W, A):
    """``W.T @ A`` for W m by n and A m by b, giving n by b."""
    m, n = W.shape
    b = A.shape[1]
    if m * n * b >= BLAS_MIN_FLOPS:
        return np.dot(W.T, A)
    out = np.zeros((n, b), dtype=W.dtype)
    for k in range(m):
        for i in range(n):
            w = W[k, i]
            for j in range(b):
                out[i, j] += w * A[k, j]
    return out


@jit
def matmul_nt(A, D):
    """``A @ D.T`` for A m by b and D n by b, giving m by n."""
    m, b = A.shape
    n = D.shape[0]
    if m * n * b >= BLAS_MIN_FLOPS:
        return np.dot(A, D.T)
    out = np.empty((m, n), dtype=A.dtype)
    for k in range(m):
        for i in range(n):
            s = A.dtype.type(0)
            for j in range(b):
                s += A[k, j] * D[i, j]
            out[k, i] = s
    return out


@jit
def matmul_nn(W, D):
    """``W @ D`` for W m by n and D n by b, giving m by b."""
    m, n = W.shape
    b = D.shape[1]
    if m * n * b >= BLAS_MIN_FLOPS:
        return np.dot(W, D)
    out = np.zeros((m, b), dtype=W.dtype)
    for k in range(m):
        for i in range(n):
            w = W[k, i]
            for j in range(b):
                out[k, j] += w * D[i, j]
    return out


@jit
def linear_forward(W, W0, A):
    """``W.T @ A + W0``: W m by n, W0 n by 1, A m by b; returns n by b."""
    return matmul_tn(W, A) + W0


@jit
def linear_backward(W, A, dLdZ):
    """Returns dLdW (m by n), dLdW0 (n by 1) and dLdA (m by b), summed over b."""
    n, b = dLdZ.shape
    dLdW0 = np.zeros((n, 1), dtype=dLdZ.dtype)
    for i in range(n):
        for j in range(b):
            dLdW0[i, 0] += dLdZ[i, j]
    return matmul_nt(A, dLdZ), dLdW0, matmul_nn(W, dLdZ)


@jit
def sgd_update(W, dLdW, lrate):
    """``W - lrate * dLdW`` as a new array; lrate is already of W's dtype."""
    return W - lrate * dLdW


@jit
def tanh_forward(Z):
    """Hyperbolic tangent of an n by b matrix."""
    return np.tanh(Z)


@jit
def tanh_backward(A, dLdA):
    """Gradient through tanh from its n by b outputs A."""
    return (1 - A**2) * dLdA


@jit
def relu_forward(Z):
    """Rectified linear unit of an n by b matrix."""
    return np.maximum(0, Z)


@jit
def relu_backward(A, dLdA):
    """Gradient through ReLU from its n by b outputs A."""
    return dLdA * (A != 0)


@jit
def softmax_forward(Z):
    """Column-wise softmax of n by b logits, shifted by each column's maximum."""
    n, b = Z.shape
    out = np.empty_like(Z)
    for j in range(b):
        zmax = Z[0, j]
        for i in range(1, n):
            zmax = max(zmax, Z[i, j])
        total = Z.dtype.type(0)
        for i in range(n):
            e = np.exp(Z[i, j] - zmax)
            out[i, j] = e
            total += e
        for i in range(n):
            out[i, j] /= total
    return out


@jit
def softmax_backward(A, dLdA):
    """Softmax Jacobian-vector product without forming the n by n by b Jacobian.

    Column j of the result is ``J_j @ dLdA[:, j]`` with
    ``J_j = diag(a) - a a.T`` and ``a = A[:, j]``, which is
    ``a * (dLdA[:, j] - a . dLdA[:, j])``: O(n * b) time and memory.
    """
    n, b = A.shape
    out = np.empty_like(A)
    for j in range(b):
        s = A.dtype.type(0)
        for k in range(n):
            s += A[k, j] * dLdA[k, j]
        for i in range(n):
            out[i, j] = A[i, j] * (dLdA[i, j] - s)
    return out


@jit
def nll_forward(Ypred, Y):
    """Negative log-likelihood summed over an n by b batch."""
    total = Ypred.dtype.type(0)
    n, b = Ypred.shape
    for i in range(n):
        for j in range(b):
            total -= Y[i, j] * np.log(Ypred[i, j])
    return total


@jit
def nll_backward(Ypred, Y):
    """``-Y / Ypred``, the NLL gradient for n by b predictions."""
    return -Y / Ypred


@jit
def class_fun(Ypred):
    """Index of each column's largest entry (the first on ties), shape (b,)."""
    n, b = Ypred.shape
    out = np.zeros(b, dtype=np.intp)
    for j in range(b):
        for i in range(1, n):
            if Ypred[i, j] > Ypred[out[j], j]:
                out[j] = i
    return out
