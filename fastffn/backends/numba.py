"""The fast backend: Numba-jitted twins of the kernels in ``numpy.py``.

Same names, same signatures, same shapes. Inputs arrive validated (C-contiguous
float32 or float64 of matching dtypes), so each kernel compiles for two
signatures only. ``fastmath`` stays off: reassociation would break agreement
with the reference. Compilation is lazy (first call) and cached on disk in a
per-user directory when it can be written (``_numba_cache``).

Each kernel of the table allocates its result and hands the work to an
``*_into`` function that writes into arrays it is given; the compiled training
loop (``fastffn.training``) calls those with buffers it allocates once, so both
paths run the same arithmetic.

Small matrix products are plain loops: for the notebook's 2-10-10-2 network a
BLAS call costs more than the arithmetic. From ``BLAS_MIN_FLOPS`` on they go to
BLAS through ``np.dot``, as NumPy's do. A batch of one column (the notebook's
SGD) gets loops of its own whose inner loop runs along memory, 3-4x faster than
the general order there.
"""

import numpy as np

from . import ACCURACY_BLOCK
from . import numpy as reference
from ._numba_cache import jit

BLAS_MIN_FLOPS = 32_768
#: From this many numbers, NumPy's vectorised exp beats a jitted loop of scalar ones.
SIMD_MIN_SIZE = 4096
#: Floating-point liberties the training loops take: sums in any order (reassoc)
#: and fused multiply-adds (contract), so that reductions use SIMD lanes. Never
#: nnan/ninf: the divergence checks rely on NaN and inf.
FASTMATH = {"reassoc", "contract"}


# --- matrix products into given arrays -----------------------------------------


@jit
def matmul_tn_into(W, A, out):
    """``out = W.T @ A`` for W m by n, A m by b and out n by b."""
    m, n = W.shape
    b = A.shape[1]
    if m * n * b >= BLAS_MIN_FLOPS:
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


@jit
def matmul_nt_into(A, D, out):
    """``out = A @ D.T`` for A m by b, D n by b and out m by n."""
    m, b = A.shape
    n = D.shape[0]
    if m * n * b >= BLAS_MIN_FLOPS:
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


@jit
def matmul_nn_into(W, D, out):
    """``out = W @ D`` for W m by n, D n by b and out m by b."""
    m, n = W.shape
    b = D.shape[1]
    if m * n * b >= BLAS_MIN_FLOPS:
        np.dot(W, D, out)
        return
    if b == 1:  # one column: a dot product per row of W, summed in the same order
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


@jit
def row_sums_into(D, out):
    """``out = D.sum(axis=1, keepdims=True)`` for D n by b and out n by 1."""
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
def sgd_update_into(W, dLdW, lrate):
    """``W -= lrate * dLdW`` in place; lrate is already of W's dtype."""
    rows, cols = W.shape
    for i in range(rows):
        for j in range(cols):
            W[i, j] = W[i, j] - lrate * dLdW[i, j]


@jit
def tanh_forward_into(Z, A):
    n, b = Z.shape
    for i in range(n):
        for j in range(b):
            A[i, j] = np.tanh(Z[i, j])


@jit
def tanh_backward_into(A, dLdA, dLdZ):
    n, b = A.shape
    one = A.dtype.type(1)  # a Python 1 would promote float32 to float64
    for i in range(n):
        for j in range(b):
            dLdZ[i, j] = (one - A[i, j] ** 2) * dLdA[i, j]


@jit
def relu_forward_into(Z, A):
    n, b = Z.shape
    for i in range(n):
        for j in range(b):
            A[i, j] = max(Z.dtype.type(0), Z[i, j])


@jit
def relu_backward_into(A, dLdA, dLdZ):
    n, b = A.shape
    for i in range(n):
        for j in range(b):
            dLdZ[i, j] = dLdA[i, j] * (A[i, j] != 0)


@jit
def sigmoid_forward_into(Z, A):
    n, b = Z.shape
    one = Z.dtype.type(1)  # a Python 1 would promote float32 to float64
    for i in range(n):
        for j in range(b):
            A[i, j] = one / (one + np.exp(-Z[i, j]))


@jit
def sigmoid_backward_into(A, dLdA, dLdZ):
    n, b = A.shape
    one = A.dtype.type(1)  # a Python 1 would promote float32 to float64
    for i in range(n):
        for j in range(b):
            dLdZ[i, j] = A[i, j] * (one - A[i, j]) * dLdA[i, j]


@jit
def softmax_forward_into(Z, A):
    """Column-wise softmax of n by b logits, shifted by each column's maximum."""
    n, b = Z.shape
    for j in range(b):
        zmax = Z[0, j]
        for i in range(1, n):
            zmax = max(zmax, Z[i, j])
        total = Z.dtype.type(0)
        for i in range(n):
            e = np.exp(Z[i, j] - zmax)
            A[i, j] = e
            total += e
        for i in range(n):
            A[i, j] /= total


@jit
def softmax_backward_into(A, dLdA, dLdZ):
    """Softmax Jacobian-vector product without forming the n by n by b Jacobian.

    Column j is ``J_j @ dLdA[:, j]`` with ``J_j = diag(a) - a a.T`` and
    ``a = A[:, j]``, which is ``a * (dLdA[:, j] - a . dLdA[:, j])``:
    O(n * b) time and no memory beyond the result.
    """
    n, b = A.shape
    for j in range(b):
        s = A.dtype.type(0)
        for k in range(n):
            s += A[k, j] * dLdA[k, j]
        for i in range(n):
            dLdZ[i, j] = A[i, j] * (dLdA[i, j] - s)


@jit
def softmax_nll_backward_into(Ypred, Y, dLdZ):
    """The gradient of NLL through softmax in one step: ``Ypred * sum(Y) - Y``.

    Column sums of Y are 1 for one-hot targets, which gives the familiar
    ``Ypred - Y``; keeping the sum makes it exact for any Y.
    """
    n, b = Ypred.shape
    for j in range(b):
        s = Y.dtype.type(0)
        for k in range(n):
            s += Y[k, j]
        for i in range(n):
            dLdZ[i, j] = Ypred[i, j] * s - Y[i, j]


# --- the table's kernels: allocate, then compute into -----------------------------


@jit
def linear_forward(W, W0, A):
    """``W.T @ A + W0``: W m by n, W0 n by 1, A m by b; returns n by b."""
    Z = np.empty((W.shape[1], A.shape[1]), dtype=W.dtype)
    linear_forward_into(W, W0, A, Z)
    return Z


@jit
def linear_backward(W, A, dLdZ):
    """Returns dLdW (m by n), dLdW0 (n by 1) and dLdA (m by b), summed over b."""
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
    out = W.copy()
    sgd_update_into(out, dLdW, lrate)
    return out


def tanh_forward(Z):
    """Hyperbolic tangent of an n by b matrix: NumPy's own, vectorised tanh.

    A jitted loop calls a scalar tanh per element (Numba has no vector math
    library since 0.62): 0.73-0.81x NumPy's at every size measured, 10 by 1 to
    1024 by 1024. The compiled training loop still uses the loop, inside it.
    """
    return np.tanh(Z)


@jit
def tanh_backward(A, dLdA):
    """Gradient through tanh from its n by b outputs A."""
    dLdZ = np.empty_like(A)
    tanh_backward_into(A, dLdA, dLdZ)
    return dLdZ


@jit
def relu_forward(Z):
    """Rectified linear unit of an n by b matrix."""
    A = np.empty_like(Z)
    relu_forward_into(Z, A)
    return A


@jit
def relu_backward(A, dLdA):
    """Gradient through ReLU from its n by b outputs A."""
    dLdZ = np.empty_like(A)
    relu_backward_into(A, dLdA, dLdZ)
    return dLdZ


@jit
def sigmoid_forward(Z):
    """Logistic sigmoid of an n by b matrix."""
    A = np.empty_like(Z)
    sigmoid_forward_into(Z, A)
    return A


@jit
def sigmoid_backward(A, dLdA):
    """Gradient through the sigmoid from its n by b outputs A."""
    dLdZ = np.empty_like(A)
    sigmoid_backward_into(A, dLdA, dLdZ)
    return dLdZ


def softmax_forward(Z):
    """Column-wise softmax of n by b logits.

    The jitted loop below ``SIMD_MIN_SIZE`` numbers (9x NumPy at 10 by 1); from
    there the reference's code, whose vectorised exp wins (the loop: 0.95x at
    10 by 1024, 0.67x at 256 by 128, 0.32x at 1024 by 1024).
    """
    if Z.size >= SIMD_MIN_SIZE:
        return reference.softmax_forward(Z)
    return _softmax_forward(Z)


@jit
def _softmax_forward(Z):
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
    """Negative log-likelihood summed over an n by b batch."""
    total = Ypred.dtype.type(0)
    tiny = Ypred.dtype.type(np.finfo(Ypred.dtype).tiny)
    n, b = Ypred.shape
    for i in range(n):
        for j in range(b):
            total -= Y[i, j] * np.log(max(Ypred[i, j], tiny))
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


# --- the compiled SGD loop (fastffn.training packs a model for it) --------------
# It lives beside the kernels it calls because Numba's cache is keyed on the
# source file: an edit to a kernel must invalidate the cached loop too.

#: The loop's op codes, one per kernel family: fastffn.training maps a Linear
#: layer to "linear" and an activation to its kernel name.
OPS = ("linear", "tanh", "relu", "sigmoid", "softmax")
LINEAR, TANH, RELU, SIGMOID, SOFTMAX = range(len(OPS))


@jit
def activation_forward_into(op, Z, A):
    """The forward kernel of activation ``op`` (an op code), from Z into A."""
    if op == TANH:
        tanh_forward_into(Z, A)
    elif op == RELU:
        relu_forward_into(Z, A)
    elif op == SIGMOID:
        sigmoid_forward_into(Z, A)
    else:
        softmax_forward_into(Z, A)


@jit
def activation_backward_into(op, A, dLdA, dLdZ):
    """The backward kernel of elementwise activation ``op``, into dLdZ."""
    if op == TANH:
        tanh_backward_into(A, dLdA, dLdZ)
    elif op == RELU:
        relu_backward_into(A, dLdA, dLdZ)
    else:
        sigmoid_backward_into(A, dLdA, dLdZ)


@jit
def transposed(X):
    """A C-contiguous copy of ``X.T``, copied in 32 by 32 tiles that stay in cache.

    The loop reads samples as rows; for float32 this is about twice as fast as
    ``np.ascontiguousarray(X.T)``.
    """
    d, n = X.shape
    XT = np.empty((n, d), dtype=X.dtype)
    for i0 in range(0, d, 32):
        for j0 in range(0, n, 32):
            for i in range(i0, min(i0 + 32, d)):
                for j in range(j0, min(j0 + 32, n)):
                    XT[j, i] = X[i, j]
    return XT


@jit
def weights(params, m, n, offset):
    """Views of W (m by n) and W0 (n by 1) at ``offset`` in params; empty if m is 0."""
    bias = n if m else 0
    W = params[offset : offset + m * n].reshape((m, n))
    return W, params[offset + m * n : offset + m * n + bias].reshape((bias, 1))


@jit
def sgd_steps(ops, shapes, params, XT, YT, indices, lrate, losses, first, every, hits):
    """Runs ``len(indices)`` SGD steps, updating ``params`` in place.

    Args:
        ops (ndarray): The L module op codes (int64), the last one SOFTMAX.
        shapes (ndarray): L by 3 int64: for a Linear module its m, n and the
            offset of its W in params (W0 follows W); for others 0, the
            width and 0.
        params (ndarray): Every weight, flat, of the model's dtype.
        XT (ndarray): The N by d transpose of the training points X, so that
            each sample's features lie together in memory.
        YT (ndarray): The N by k transpose of their one-hot classes Y.
        indices (ndarray): An iters by b int64 matrix: the columns of each batch.
        lrate (scalar): The step size, of the model's dtype.
        losses (ndarray): An iters vector that receives each step's loss.
        first (int): The iteration number of the first step.
        every (int): Steps whose number ``it`` has ``it % every == 1`` record
            (0: none): ``hits[step]`` receives the count of training points
            classified right before the step's update, -1 if an output overflowed.
        hits (ndarray): An iters int64 vector for those counts.

    Returns:
        int: The number of steps taken: all of them, or the index of the first
            step whose loss, gradients or accuracy were not finite (that step
            is not applied).

    """
    L = ops.size
    b = indices.shape[1]
    dtype = XT.dtype
    m, n, offset = shapes[:, 0], shapes[:, 1], shapes[:, 2]

    # Views into params (empty for activations), buffers for each module's output.
    # grads mirrors params, so that one flat loop checks and applies every update.
    grads = np.empty_like(params)
    views = [weights(params, m[k], n[k], offset[k]) for k in range(L)]
    W, W0 = [v[0] for v in views], [v[1] for v in views]
    views = [weights(grads, m[k], n[k], offset[k]) for k in range(L)]
    dW, dW0 = [v[0] for v in views], [v[1] for v in views]
    out = [np.empty((n[k], b), dtype=dtype) for k in range(L)]
    Xb = np.empty((XT.shape[1], b), dtype=dtype)
    Yb = np.empty((YT.shape[1], b), dtype=dtype)
    grad = [np.empty_like(Xb)] + [np.empty_like(out[k]) for k in range(L - 1)]  # by inputs

    for it in range(indices.shape[0]):
        if every and (first + it) % every == 1 % every:
            hits[it] = correct(ops, shapes, params, XT, YT, ACCURACY_BLOCK)
            if hits[it] < 0:
                return it
        for j in range(b):
            t = indices[it, j]
            for i in range(Xb.shape[0]):
                Xb[i, j] = XT[t, i]
            for i in range(Yb.shape[0]):
                Yb[i, j] = YT[t, i]

        A = Xb
        for k in range(L):
            op = ops[k]
            if op == LINEAR:
                linear_forward_into(W[k], W0[k], A, out[k])
            else:
                activation_forward_into(op, A, out[k])
            A = out[k]

        losses[it] = nll_forward(A, Yb)
        if not np.isfinite(losses[it]):
            return it

        softmax_nll_backward_into(A, Yb, grad[L - 1])
        for k in range(L - 2, -1, -1):
            op, g = ops[k], grad[k + 1]  # g: the gradient by module k's output
            A = Xb if k == 0 else out[k - 1]
            if op == LINEAR:
                matmul_nt_into(A, g, dW[k])
                row_sums_into(g, dW0[k])
                if k > 0:  # the gradient by the data is not needed
                    matmul_nn_into(W[k], g, grad[k])
            else:
                activation_backward_into(op, out[k], g, grad[k])

        if not all_finite(grads):
            return it
        for i in range(params.size):
            params[i] -= lrate * grads[i]
    return indices.shape[0]


@jit(fastmath=FASTMATH)
def all_finite(x):
    """Whether every number of the vector x is finite, in one pass SIMD lanes can share."""
    zero = x.dtype.type(0)
    check = zero
    for i in range(x.size):
        check += x[i] * zero  # 0 for a finite number, NaN for inf or NaN, in any order
    return check == zero


# --- the one-sample loop: SGD at batch size 1 --------------------------------------
# A step of a small network is a few hundred multiply-adds: what the general loop
# spends on views, buffers and calls costs more. Here each module's output is one
# row of a work array and each weight is read in place in params. The dot
# products may be summed in any order (reassoc) and fused (contract), which lets
# them use SIMD lanes; whole runs still agree with the reference to 1e-10
# (tests/test_compiled.py).


@jit(fastmath=FASTMATH)
def column_forward(ops, shapes, params, XT, t, acts):
    """The forward pass of sample t (row t of XT): module k's output into ``acts[k + 1, :n_k]``.

    ``ops``, ``shapes`` and ``params`` as for ``sgd_steps``; ``acts`` is L + 1
    by the widest module (or d); its row 0 receives the sample. Rows are indexed
    in place, not taken as views: a view costs a reference count, which at this
    size is as much as the arithmetic.
    """
    zero, one = params.dtype.type(0), params.dtype.type(1)
    for i in range(XT.shape[1]):
        acts[0, i] = XT[t, i]
    for k in range(ops.size):
        op, m, n, base = ops[k], shapes[k, 0], shapes[k, 1], shapes[k, 2]
        if op == LINEAR:  # W.T @ a + W0, each row of W in memory order
            W = params[base : base + m * n].reshape((m, n))
            for i in range(n):
                acts[k + 1, i] = zero
            for r in range(m):
                a = acts[k, r]
                for i in range(n):
                    acts[k + 1, i] += W[r, i] * a
            for i in range(n):
                acts[k + 1, i] += params[base + m * n + i]
        elif op == TANH:
            for i in range(n):
                acts[k + 1, i] = np.tanh(acts[k, i])
        elif op == RELU:
            for i in range(n):
                acts[k + 1, i] = max(zero, acts[k, i])
        elif op == SIGMOID:
            for i in range(n):
                acts[k + 1, i] = one / (one + np.exp(-acts[k, i]))
        else:
            zmax = acts[k, 0]
            for i in range(1, n):
                zmax = max(zmax, acts[k, i])
            total = zero
            for i in range(n):
                acts[k + 1, i] = np.exp(acts[k, i] - zmax)
                total += acts[k + 1, i]
            for i in range(n):
                acts[k + 1, i] /= total


@jit(fastmath=FASTMATH)
def column_steps(ops, shapes, params, XT, YT, indices, lrate, tiny, losses, first, every, hits):
    """``sgd_steps`` for batches of one sample (indices iters by 1), one column at a time.

    ``tiny`` is the dtype's smallest normal number, the floor of the NLL's log.
    """
    L = ops.size
    zero, one = params.dtype.type(0), params.dtype.type(1)
    width = max(XT.shape[1], shapes[:, 1].max())
    acts = np.empty((L + 1, width), dtype=params.dtype)  # row k: module k's input
    grad = np.empty((L + 1, width), dtype=params.dtype)  # row k: the gradient by it
    grads = np.empty_like(params)

    for it in range(indices.shape[0]):
        if every and (first + it) % every == 1 % every:
            hits[it] = column_correct(ops, shapes, params, XT, YT, acts)
            if hits[it] < 0:
                return it
        t = indices[it, 0]
        column_forward(ops, shapes, params, XT, t, acts)
        loss, total = zero, zero
        for i in range(YT.shape[1]):
            loss -= YT[t, i] * np.log(max(acts[L, i], tiny))
            total += YT[t, i]
        losses[it] = loss
        if not np.isfinite(loss):
            return it

        for i in range(YT.shape[1]):  # SoftMax and NLL together, as softmax_nll_backward
            grad[L - 1, i] = acts[L, i] * total - YT[t, i]
        for k in range(L - 2, -1, -1):
            op, m, n, base = ops[k], shapes[k, 0], shapes[k, 1], shapes[k, 2]
            if op == LINEAR:
                W = params[base : base + m * n].reshape((m, n))
                dW = grads[base : base + m * n].reshape((m, n))
                for r in range(m):  # dW = a g.T, dW0 = g, and W g for the module before
                    a = acts[k, r]
                    for i in range(n):
                        dW[r, i] = a * grad[k + 1, i]
                for i in range(n):
                    grads[base + m * n + i] = grad[k + 1, i]
                if k > 0:
                    for r in range(m):
                        s = zero
                        for i in range(n):
                            s += W[r, i] * grad[k + 1, i]
                        grad[k, r] = s
            elif op == TANH:
                for i in range(n):
                    grad[k, i] = (one - acts[k + 1, i] ** 2) * grad[k + 1, i]
            elif op == RELU:
                for i in range(n):
                    grad[k, i] = grad[k + 1, i] * (acts[k + 1, i] != 0)
            else:
                for i in range(n):
                    grad[k, i] = acts[k + 1, i] * (one - acts[k + 1, i]) * grad[k + 1, i]

        if not all_finite(grads):
            return it
        for i in range(params.size):
            params[i] -= lrate * grads[i]
    return indices.shape[0]


@jit(fastmath=FASTMATH)
def column_correct(ops, shapes, params, XT, YT, acts):
    """``correct`` one sample at a time, in ``acts`` (see ``column_forward``)."""
    hits, L = 0, ops.size
    for t in range(XT.shape[0]):
        column_forward(ops, shapes, params, XT, t, acts)
        best, label = 0, 0
        for i in range(YT.shape[1]):
            if not np.isfinite(acts[L, i]):
                return -1
            if acts[L, i] > acts[L, best]:
                best = i
            if YT[t, i] > YT[t, label]:
                label = i
        hits += best == label
    return hits


@jit
def correct(ops, shapes, params, XT, YT, block):
    """How many samples the model classifies as their one-hot rows of YT say.

    The forward pass of ``sgd_steps``, ``block`` samples at a time; the first
    maximum wins, as in ``class_fun``.

    Returns:
        int: The count, or -1 if an output was not finite (the network overflowed).

    """
    L, N = ops.size, XT.shape[0]
    m, n, offset = shapes[:, 0], shapes[:, 1], shapes[:, 2]
    views = [weights(params, m[k], n[k], offset[k]) for k in range(L)]
    W, W0 = [v[0] for v in views], [v[1] for v in views]
    hits = 0
    for start in range(0, N, block):
        b = min(block, N - start)
        A = np.ascontiguousarray(XT[start : start + b].T)
        for k in range(L):
            out = np.empty((n[k], b), dtype=XT.dtype)
            if ops[k] == LINEAR:
                linear_forward_into(W[k], W0[k], A, out)
            else:
                activation_forward_into(ops[k], A, out)
            A = out
        for j in range(b):
            best, label = 0, 0
            for i in range(A.shape[0]):
                if not np.isfinite(A[i, j]):
                    return -1
                if A[i, j] > A[best, j]:
                    best = i
                if YT[start + j, i] > YT[start + j, label]:
                    label = i
            hits += best == label
    return hits
