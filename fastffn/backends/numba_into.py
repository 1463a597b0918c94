"""The numba kernels that write into arrays they are given: one arithmetic for every path.

The table's kernels (``numba.py``) allocate their results and call these; the
compiled training loops (``numba_loop``, ``numba_column``) call them on buffers
they allocate once, so every path runs the same arithmetic.

Small matrix products are plain loops: for the notebook's 2-10-10-2 network a
BLAS call costs more than the arithmetic. From ``BLAS_MIN_FLOPS`` on (one column)
or ``BLAS_MIN_BATCH_FLOPS`` (several; ``blas_wins``) they go to BLAS through
``np.dot``, as NumPy's do. A batch of one column (the notebook's SGD) gets loops
of its own whose inner loop runs along memory, 3-4x faster than the general
order there.
"""

import numpy as np

from . import BLAS_MIN_BATCH_FLOPS, BLAS_MIN_FLOPS
from ._numba_cache import jit
from .simd import exp_lanes

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


# --- the loss, its gradient, the overflow bound and the count, once: each loop maps ---
# --- them on its layout -----------------------------------------------------------
# The spans take one sample's flat positions and strides: a row of the one-sample loop's
# work array (stride 1), one model's lane of the sweeps' (stride LANES), a column of a
# batch (stride b); the batch kernels below map the scalar functions row by row instead,
# so that SIMD lanes run across the batch's columns.


@jit(inline="always")
def module_bound(sa, sg):
    """``sum|a| sum|g| + sum|g|`` from a Linear module's input a and the gradient g by its
    output: at least every |dW| and |dW0| (and every partial sum of them), NaN or inf where
    a or g holds one. Below ``overflow_limit`` (summed over the modules), no gradient
    overflowed, and none need be checked one by one."""
    return sa * sg + sg


@jit(inline="always")
def overflow_limit(params):
    """Half the largest number of the dtype of ``params``: the bound of ``module_bound``."""
    return params.dtype.type(np.finfo(params.dtype).max / 2)


@jit(inline="always")
def nll_counts(t, q):
    """Whether a class's NLL term needs its log: where its target t is not 0, or its
    prediction q is not finite; else the term is 0, and the sum skips it (no add either:
    the sum is a chain of dependent adds)."""
    return t != 0 or not np.isfinite(q)


@jit(inline="always")
def nll_term(t, q, tiny):
    """One class's term of the NLL, ``-t log(max(q, tiny))`` (tiny: the dtype's smallest
    normal), where ``nll_counts``."""
    return -t * np.log(max(q, tiny))


@jit(inline="always")
def softmax_nll_grad(q, total, t):
    """One class's gradient of NLL through softmax, ``q sum(y) - t`` (total: the sample's
    sum of targets, 1 for one-hot ones, where it gives ``q - t``; kept, exact for any)."""
    return q * total - t


@jit(inline="always")
def nll_span(P, p, ps, Y, y, ys, n, tiny):
    """One sample's NLL from its n predictions ``P.flat[p + i ps]`` and targets
    ``Y.flat[y + i ys]``."""
    total = P.dtype.type(0)
    for i in range(n):
        t, q = Y.flat[y + i * ys], P.flat[p + i * ps]
        if nll_counts(t, q):
            total += nll_term(t, q, tiny)
    return total


@jit(inline="always")
def softmax_nll_span(P, p, ps, Y, y, ys, G, g, gs, n):
    """One sample's gradient of NLL through softmax into ``G.flat[g + i gs]``."""
    total = Y.dtype.type(0)
    for i in range(n):
        total += Y.flat[y + i * ys]
    for i in range(n):
        G.flat[g + i * gs] = softmax_nll_grad(P.flat[p + i * ps], total, Y.flat[y + i * ys])


@jit(inline="always")
def hit(P, p, ps, Y, y, ys, n):
    """Whether the largest of the n scores ``P.flat[p + i * ps]`` (the first on ties, as
    ``class_fun``) is at the class the one-hot ``Y.flat[y + i * ys]`` marks: 1 or 0, and -1
    where a score is not finite. Every loop's accuracy count, each on its own layout."""
    best, label = 0, 0
    for i in range(n):
        score = P.flat[p + i * ps]
        if not np.isfinite(score):
            return -1
        if score > P.flat[p + best * ps]:
            best = i
        if Y.flat[y + i * ys] > Y.flat[y + label * ys]:
            label = i
    return 1 if best == label else 0


@jit
def softmax_nll_backward_into(Ypred, Y, dLdZ):
    """The gradient of NLL through softmax of n by b predictions (``softmax_nll_grad``)."""
    n, b = Ypred.shape
    s = np.zeros(b, dtype=Y.dtype)
    for k in range(n):
        for j in range(b):
            s[j] += Y[k, j]
    for i in range(n):
        for j in range(b):
            dLdZ[i, j] = softmax_nll_grad(Ypred[i, j], s[j], Y[i, j])


@jit
def nll_total(Ypred, Y, tiny):
    """``nll_forward`` with the log's floor ``tiny`` (the dtype's smallest normal) given."""
    total = Ypred.dtype.type(0)
    n, b = Ypred.shape
    for i in range(n):
        for j in range(b):
            t, q = Y[i, j], Ypred[i, j]
            if nll_counts(t, q):
                total += nll_term(t, q, tiny)
    return total
