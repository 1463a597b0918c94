"""The fast backend: Numba-jitted twins of the kernels in ``numpy.py``.

Same names, same signatures, same shapes. Inputs arrive validated (C-contiguous
float32 or float64 of matching dtypes), so each kernel compiles for two
signatures only. ``fastmath`` stays off but for sums along memory and the
small products' loops (``FASTMATH``). Compilation is lazy (first call) and cached on disk in a
per-user directory when it can be written (``_numba_cache``).

Each kernel of the table allocates its result and hands the work to an
``*_into`` function that writes into arrays it is given; the compiled training
loop (``numba_loop.sgd_steps``) calls those with buffers it allocates once, so
both paths run the same arithmetic.

Small matrix products are plain loops: for the notebook's 2-10-10-2 network a
BLAS call costs more than the arithmetic. From ``BLAS_MIN_FLOPS`` on (one column)
or ``BLAS_MIN_BATCH_FLOPS`` (several; ``blas_wins``) they go to BLAS through
``np.dot``, as NumPy's do. A batch of one column (the notebook's
SGD) gets loops of its own whose inner loop runs along memory, 3-4x faster than
the general order there.
"""

import functools

import numpy as np

from . import BLAS_MIN_BATCH_FLOPS, BLAS_MIN_FLOPS
from . import numpy as reference
from ._numba_cache import jit
from .ops import LEAKY_RELU, RELU, SIGMOID, TANH, backward_into, forward_into
from .simd import exp_lanes

#: From this many float32 numbers, NumPy's SIMD tanh beats the jitted loop
#: (``simd_tanh`` works in float64, half NumPy's lanes).
SIMD_MIN_SIZE = 4096
#: Up to this many numbers, a ufunc call costs less than a jitted one (about 0.5 us
#: more from Python) plus its faster loop: tanh of 128 float64s 2.4 vs 2.6 us.
UFUNC_MAX_SIZE = 128
#: Floating-point liberties some loops take: sums in any order (reassoc) and fused
#: multiply-adds (contract), so that reductions use SIMD lanes; whole runs still
#: agree with the reference within the tolerance. Never nnan/ninf: the
#: divergence checks rely on NaN and inf.
FASTMATH = {"reassoc", "contract"}


# --- matrix products into given arrays -----------------------------------------


@jit
def blas_wins(m, n, b, loop_flops):
    """Whether a product of m * n * b multiply-adds is faster through BLAS than as loops
    (``BLAS_MIN_FLOPS``, ``BLAS_MIN_BATCH_FLOPS``), whose sums along memory keep up with
    BLAS ``loop_flops`` times longer: 4 for ``A @ D.T``, 1 for the others."""
    if b == 1:
        return m * n >= BLAS_MIN_FLOPS
    return m * n * b >= loop_flops * BLAS_MIN_BATCH_FLOPS


@jit(fastmath=FASTMATH)
def matmul_tn_into(W, A, out):
    """``out = W.T @ A`` for W m by n, A m by b and out n by b."""
    m, n = W.shape
    b = A.shape[1]
    if blas_wins(m, n, b, 1):
        np.dot(W.T, A, out)
        return
    out[:] = 0
    if b == 1:  # one column: let the inner loop run along W's row, in memory order
        for k in range(m):
            a = A[k, 0]
            for i in range(n):
                out[i, 0] += W[k, i] * a
        return
    for k in range(m):
        for i in range(n):
            w = W[k, i]
            for j in range(b):
                out[i, j] += w * A[k, j]


@jit(fastmath=FASTMATH)
def matmul_nt_into(A, D, out):
    """``out = A @ D.T`` for A m by b, D n by b and out m by n."""
    m, b = A.shape
    n = D.shape[0]
    if blas_wins(m, n, b, 4):
        np.dot(A, D.T, out)
        return
    if b == 1:  # one column: an outer product
        for k in range(m):
            a = A[k, 0]
            for i in range(n):
                out[k, i] = a * D[i, 0]
        return
    for k in range(m):
        for i in range(n):
            s = A.dtype.type(0)
            for j in range(b):
                s += A[k, j] * D[i, j]
            out[k, i] = s


@jit(fastmath=FASTMATH)
def matmul_nn_into(W, D, out):
    """``out = W @ D`` for W m by n, D n by b and out m by b."""
    m, n = W.shape
    b = D.shape[1]
    if blas_wins(m, n, b, 1):
        np.dot(W, D, out)
        return
    if b == 1:  # one column: a dot product per row of W, in SIMD lanes
        for k in range(m):
            s = W.dtype.type(0)
            for i in range(n):
                s += W[k, i] * D[i, 0]
            out[k, 0] = s
        return
    out[:] = 0
    for k in range(m):
        for i in range(n):
            w = W[k, i]
            for j in range(b):
                out[k, j] += w * D[i, j]


@jit(fastmath=FASTMATH)
def row_sums_into(D, out):
    """``out = D.sum(axis=1, keepdims=True)`` for D n by b and out n by 1, in SIMD lanes."""
    n, b = D.shape
    for i in range(n):
        s = D.dtype.type(0)
        for j in range(b):
            s += D[i, j]
        out[i, 0] = s


# --- the layers' kernels, into given arrays ------------------------------------


@jit
def linear_forward_into(W, W0, A, Z):
    """``Z = W.T @ A + W0``: W m by n, W0 n by 1, A m by b, Z n by b."""
    matmul_tn_into(W, A, Z)
    n, b = Z.shape
    for i in range(n):
        for j in range(b):
            Z[i, j] += W0[i, 0]


@jit
def sgd_update_into(W, dLdW, lrate, out):
    """``out = W - lrate * dLdW``; lrate is already of W's dtype."""
    for i in range(W.size):  # .flat: see tanh_forward_into
        out.flat[i] = W.flat[i] - lrate * dLdW.flat[i]


@jit
def momentum_update_into(W, V, dLdW, lrate, momentum, decay):
    """``momentum_update`` in place on flat (1-D) arrays W and V."""
    for i in range(W.size):
        V[i] = momentum * V[i] - lrate * (dLdW[i] + decay * W[i])
        W[i] = W[i] + V[i]


@jit
def nesterov_update_into(W, V, dLdW, lrate, momentum, decay):
    """``nesterov_update`` in place on flat arrays W and V."""
    for i in range(W.size):
        G = dLdW[i] + decay * W[i]
        V[i] = momentum * V[i] - lrate * G
        W[i] = W[i] + (momentum * V[i] - lrate * G)


@jit
def adam_update_into(W, M, V, dLdW, step, beta1, beta2, eps, decay, scale):
    """``adam_update`` in place on flat arrays W, M and V."""
    one = W.dtype.type(1)
    for i in range(W.size):
        G = scale * (dLdW[i] + decay * W[i])
        M[i] = beta1 * M[i] + (one - beta1) * G
        V[i] = beta2 * V[i] + (one - beta2) * (G * G)
        W[i] = W[i] - step * M[i] / (np.sqrt(V[i]) + eps)


@jit
def softmax_forward_into(Z, A):
    """Column-wise softmax of n by b logits, shifted by each column's maximum.

    Rows in the outer loop, so the inner loop runs along memory over b columns
    at once (each column's sums in the order of its rows, as one at a time).
    """
    n, b = Z.shape
    zmax = Z[0].copy()
    for i in range(1, n):
        for j in range(b):
            zmax[j] = max(zmax[j], Z[i, j])
    total = np.zeros(b, dtype=Z.dtype)
    for i in range(n):
        for j in range(b):
            A[i, j] = exp_lanes(Z[i, j] - zmax[j])
            total[j] += A[i, j]
    for i in range(n):
        for j in range(b):
            A[i, j] /= total[j]


@jit
def softmax_backward_into(A, dLdA, dLdZ):
    """Softmax Jacobian-vector product without forming the n by n by b Jacobian.

    Column j is ``J_j @ dLdA[:, j]`` with ``J_j = diag(a) - a a.T`` and
    ``a = A[:, j]``, which is ``a * (dLdA[:, j] - a . dLdA[:, j])``:
    O(n * b) time, b numbers of memory beyond the result. Rows in the outer
    loop, as in ``softmax_forward_into``.
    """
    n, b = A.shape
    s = np.zeros(b, dtype=A.dtype)
    for k in range(n):
        for j in range(b):
            s[j] += A[k, j] * dLdA[k, j]
    for i in range(n):
        for j in range(b):
            dLdZ[i, j] = A[i, j] * (dLdA[i, j] - s[j])


@jit
def softmax_nll_backward_into(Ypred, Y, dLdZ):
    """The gradient of NLL through softmax in one step: ``Ypred * sum(Y) - Y``.

    Column sums of Y are 1 for one-hot targets, which gives the familiar
    ``Ypred - Y``; keeping the sum makes it exact for any Y.
    """
    n, b = Ypred.shape
    s = np.zeros(b, dtype=Y.dtype)
    for k in range(n):
        for j in range(b):
            s[j] += Y[k, j]
    for i in range(n):
        for j in range(b):
            dLdZ[i, j] = Ypred[i, j] * s[j] - Y[i, j]


# --- the table's kernels: allocate, then compute into -----------------------------


def linear_forward(W, W0, A):
    """``W.T @ A + W0``: W m by n, W0 n by 1, A m by b; returns n by b.

    From BLAS's size (``blas_wins``) the layers' kernels take NumPy's matmul, the
    BLAS the reference and the user's own NumPy code call: jitted code's np.dot
    calls SciPy's, and with two BLAS libraries in turn, each one's threads, still
    spinning after its call, slow the other (256 by 256 by 128: up to 6x). The bias
    is then added in place, with no second n by b array. Below, the jitted loops.
    """
    if blas_wins.py_func(W.shape[0], W.shape[1], A.shape[1], 1):
        Z = W.T @ A
        Z += W0
        return Z
    return _linear_forward(W, W0, A)


@jit
def _linear_forward(W, W0, A):
    Z = np.empty((W.shape[1], A.shape[1]), dtype=W.dtype)
    linear_forward_into(W, W0, A, Z)
    return Z


def linear_backward(W, A, dLdZ):
    """Returns dLdW (m by n), dLdW0 (n by 1) and dLdA (m by b), summed over b: the
    products in NumPy's BLAS from its size, as ``linear_forward``."""
    if blas_wins.py_func(W.shape[0], W.shape[1], A.shape[1], 1):
        dLdW0 = np.empty((W.shape[1], 1), dtype=W.dtype)
        row_sums_into(dLdZ, dLdW0)
        return A @ dLdZ.T, dLdW0, W @ dLdZ
    return _linear_backward(W, A, dLdZ)


@jit
def _linear_backward(W, A, dLdZ):
    dLdW = np.empty_like(W)
    dLdW0 = np.empty((W.shape[1], 1), dtype=W.dtype)
    dLdA = np.empty_like(A)
    matmul_nt_into(A, dLdZ, dLdW)
    row_sums_into(dLdZ, dLdW0)
    matmul_nn_into(W, dLdZ, dLdA)
    return dLdW, dLdW0, dLdA


@jit
def sgd_update(W, dLdW, lrate):
    """``W - lrate * dLdW`` as a new array; lrate is already of W's dtype."""
    out = np.empty_like(W)
    sgd_update_into(W, dLdW, lrate, out)
    return out


@jit
def momentum_update(W, V, dLdW, lrate, momentum, decay):
    """New W and V after one step of SGD with momentum (see the reference)."""
    W, V = W.copy(), V.copy()
    momentum_update_into(W.reshape(W.size), V.reshape(V.size), dLdW.reshape(W.size), lrate,
                         momentum, decay)  # fmt: skip
    return W, V


@jit
def nesterov_update(W, V, dLdW, lrate, momentum, decay):
    """New W and V after one step of Nesterov's accelerated gradient (see the reference)."""
    W, V = W.copy(), V.copy()
    nesterov_update_into(W.reshape(W.size), V.reshape(V.size), dLdW.reshape(W.size), lrate,
                         momentum, decay)  # fmt: skip
    return W, V


@jit
def adam_update(W, M, V, dLdW, step, beta1, beta2, eps, decay, scale):
    """New W, M and V after one step of Adam (see the reference)."""
    W, M, V = W.copy(), M.copy(), V.copy()
    flat = W.size
    adam_update_into(W.reshape(flat), M.reshape(flat), V.reshape(flat), dLdW.reshape(flat), step,
                     beta1, beta2, eps, decay, scale)  # fmt: skip
    return W, M, V


def _tanh_forward_either(Z):
    """Hyperbolic tangent of an n by b matrix: the jitted loop, or NumPy's where it wins.

    The loop (``simd_tanh``): 1.6x NumPy's at 256 by 128 for float64 where NumPy's
    tanh is not AVX-512; NumPy's float32 tanh is SIMD in float32 lanes, 3.5x the
    loop there. Below ``UFUNC_MAX_SIZE`` numbers a jitted call's fixed cost loses
    to the ufunc's. Where NumPy runs tanh in AVX-512 lanes (``X86_V4``), 8 or 16
    numbers an instruction to the loop's 4 (LLVM keeps such CPUs to 256-bit
    vectors), NumPy's wins at every size: 0.89-0.94x for float64 from 64 by 32,
    0.27-0.39x for float32, on our machine.
    """
    if Z.size <= UFUNC_MAX_SIZE or (Z.dtype == np.float32 and Z.size >= SIMD_MIN_SIZE):
        return np.tanh(Z)
    return _tanh_forward(Z)


@functools.cache
def numpy_tanh_in_avx512():
    """Whether NumPy dispatches float64 tanh to an AVX-512 loop here (``X86_V4`` since
    NumPy 2.4, ``AVX512_SKX`` and the like before)."""
    try:
        from numpy.lib.introspect import opt_func_info

        target = opt_func_info("^tanh$", "float64")["tanh"]["dd"]["current"]
    except (ImportError, KeyError, TypeError):  # another NumPy, another CPU family
        return False
    return target == "X86_V4" or target.startswith("AVX512")


@jit
def _tanh_forward(Z):
    return activation_forward(TANH, Z, Z.dtype.type(0))


#: Where NumPy's tanh wins at every size, the reference's own function: a tie by
#: construction, without the choice's cost (0.1-0.2 us of a 1.5 us call at 10 by 1).
tanh_forward = reference.tanh_forward if numpy_tanh_in_avx512() else _tanh_forward_either


@jit
def activation_forward(op, Z, c):
    """Elementwise op ``op`` (``ops``) of an n by b matrix, with coefficient c."""
    A = np.empty_like(Z)
    forward_into(op, c, Z, 0, A, 0, Z.size)
    return A


@jit
def activation_backward(op, A, dLdA, c):
    """The gradient through elementwise op ``op`` from its n by b outputs A."""
    dLdZ = np.empty_like(A)
    backward_into(op, c, A, 0, dLdA, 0, dLdZ, 0, A.size)
    return dLdZ


@jit
def tanh_backward(A, dLdA):
    """Gradient through tanh from its n by b outputs A."""
    return activation_backward(TANH, A, dLdA, A.dtype.type(0))


@jit
def relu_forward(Z):
    """Rectified linear unit of an n by b matrix."""
    return activation_forward(RELU, Z, Z.dtype.type(0))


@jit
def relu_backward(A, dLdA):
    """Gradient through ReLU from its n by b outputs A."""
    return activation_backward(RELU, A, dLdA, A.dtype.type(0))


@jit
def leaky_relu_forward(Z, slope):
    """Leaky ReLU of an n by b matrix: Z where Z > 0, else slope * Z."""
    return activation_forward(LEAKY_RELU, Z, slope)


@jit
def leaky_relu_backward(A, dLdA, slope):
    """Gradient through leaky ReLU from its n by b outputs A."""
    return activation_backward(LEAKY_RELU, A, dLdA, slope)


@jit
def sigmoid_forward(Z):
    """Logistic sigmoid of an n by b matrix (float32 in float32 lanes: ``exp_lanes``)."""
    return activation_forward(SIGMOID, Z, Z.dtype.type(0))


@jit
def sigmoid_backward(A, dLdA):
    """Gradient through the sigmoid from its n by b outputs A."""
    return activation_backward(SIGMOID, A, dLdA, A.dtype.type(0))


@jit
def softmax_forward(Z):
    """Column-wise softmax of n by b logits: 5-8x NumPy at 10 by 1; at 256 by 128
    1.1x for float64, 1.9x for float32 (in float32 lanes: ``exp_lanes``)."""
    A = np.empty_like(Z)
    softmax_forward_into(Z, A)
    return A


@jit
def softmax_backward(A, dLdA):
    """Gradient through softmax from its n by b outputs A, in O(n * b)."""
    dLdZ = np.empty_like(A)
    softmax_backward_into(A, dLdA, dLdZ)
    return dLdZ


@jit
def softmax_nll_backward(Ypred, Y):
    """Gradient of NLL by the logits of the softmax that gave Ypred (n by b)."""
    dLdZ = np.empty_like(Ypred)
    softmax_nll_backward_into(Ypred, Y, dLdZ)
    return dLdZ


@jit
def nll_forward(Ypred, Y):
    """Negative log-likelihood summed over an n by b batch: the log of the predictions of
    nonzero targets only (one a column for one-hot Y), so at every size faster than
    NumPy's, which takes the log of all n * b (256 by 128 float32: 40 against 52 us)."""
    return nll_total(Ypred, Y, np.finfo(Ypred.dtype).tiny)


@jit
def nll_total(Ypred, Y, tiny):
    """``nll_forward`` with the log's floor ``tiny`` (the dtype's smallest normal) given."""
    total = Ypred.dtype.type(0)
    n, b = Ypred.shape
    for i in range(n):
        for j in range(b):
            y, p = Y[i, j], Ypred[i, j]
            if y != 0 or not np.isfinite(p):  # else y * log(p) adds 0: skip the log
                total -= y * np.log(max(p, tiny))
    return total


@jit
def nll_backward(Ypred, Y):
    """``-Y / Ypred``, the NLL gradient for n by b predictions (Ypred at least tiny)."""
    return -Y / np.maximum(Ypred, np.finfo(Ypred.dtype).tiny)


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
