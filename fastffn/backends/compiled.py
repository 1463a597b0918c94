"""The compiled training loop: whole SGD runs in one jitted call (``fastffn.training`` drives it).

A model reaches here as op codes (``OPS``), its widths and one flat buffer of
weights; each step's data live in one flat workspace. Working on offsets into
those two buffers, the loop makes no arrays and no views per step, and keeps
every buffer it writes within a few kilobytes of the others for the small
networks where that matters. Products large enough to pay for BLAS
(``BLAS_MIN_FLOPS``) go to ``np.dot`` on views.

The arithmetic is that of the kernels in ``numba.py``, written for flat
buffers; the equivalence tests hold it to the reference. Everything the loop
calls is in this file, because Numba's cache is keyed on each function's own
source file: a change to a helper elsewhere would not reach a cached loop.

Layout, for a batch of b columns: activations a_0 (the batch, d by b) to a_L
(the probabilities), row-major, one after the other; then g_0 to g_{L-1}, the
gradient by each a_k; then the weight gradients (the layout of the weights);
then the batch's one-hot targets.
"""

import numpy as np

from ._numba_cache import jit

#: The loop's op codes: fastffn.training maps a Linear layer to "linear" and an
#: activation to its kernel name.
OPS = ("linear", "tanh", "relu", "sigmoid", "softmax")
LINEAR, TANH, RELU, SIGMOID, SOFTMAX = range(len(OPS))

BLAS_MIN_FLOPS = 32_768
#: Samples per forward pass when the loop measures the accuracy.
ACCURACY_BLOCK = 256

# Division by zero gives inf or NaN as in NumPy (the loop checks for those)
# instead of a branch that raises.
fast = jit(error_model="numpy")


@fast
def train(ops, widths, woff, P, XT, YT, indices, lrate, tiny, losses, first, every, hits):
    """Runs ``len(indices)`` SGD steps on the weights P, measuring the accuracy at record steps.

    Everything is in this one function: Numba compiles each function it calls
    separately, at a cost of about half a second each on a small machine.

    Args:
        ops (ndarray): The L module op codes (int64), the last one SOFTMAX.
        widths (ndarray): L + 1 int64: the data's width, then each module's output's.
        woff (ndarray): L int64: where a Linear module's W starts in P (W0 follows).
        P (ndarray): Every weight, flat, of the model's dtype; updated in place.
        XT (ndarray): The N by d training points, one sample per row.
        YT (ndarray): The N by k one-hot classes, one sample per row.
        indices (ndarray): An iters by b int64 matrix: the samples of each batch.
        lrate (scalar): The step size, of the model's dtype.
        tiny (scalar): The dtype's smallest normal number, the least probability
            NLL reads (np.finfo inside the loop costs seconds of compiling).
        losses (ndarray): An iters vector that receives each step's loss.
        first (int): The iteration of the first step.
        every (int): Steps whose iteration is 1 modulo ``every`` (and the first
            such) record; 0 records none.
        hits (ndarray): An iters int64 vector: at a record step, how many samples
            the model classified right before the step (-1 if its outputs were
            not finite); left alone at the others.

    Returns:
        int: The number of steps taken: all of them, or the index of the first
            step whose loss or gradients were not finite (that step is not applied).

    """
    L, (N, d), classes, b_step = ops.size, XT.shape, YT.shape[1], indices.shape[1]
    block = min(ACCURACY_BLOCK, N) if every else 1
    B = max(b_step, block)  # the widest batch: the workspace holds B columns

    # The workspace: a_0..a_L, g_0..g_{L-1} (each width by B, row-major), the weight
    # gradients, the targets, then a copy of the weights, worked on beside the
    # rest (buffers far apart whose addresses agree modulo 4 KiB make loads wait
    # on unrelated stores).
    act = np.empty(L + 1, dtype=np.int64)
    grad = np.empty(L, dtype=np.int64)
    size = 0
    for k in range(L + 1):
        act[k] = size
        size += widths[k] * B
    for k in range(L):
        grad[k] = size
        size += widths[k] * B
    G, Y = size, size + P.size
    w0 = Y + classes * B
    V = np.empty(w0 + P.size, dtype=P.dtype)
    V[w0:] = P
    zero = P.dtype.type(0)
    p, g_top = act[L], grad[L - 1]

    done = indices.shape[0]
    for s in range(indices.shape[0]):
        record = every > 0 and (first + s) % every == 1 % every
        passes = (N + block - 1) // block + 1 if record else 1
        for q in range(passes):
            evaluating = q < passes - 1
            if evaluating:  # a block of samples for the accuracy, before the step
                start = q * block
                b = min(block, N - start)
                for j in range(b):
                    for i in range(d):
                        V[act[0] + i * b + j] = XT[start + j, i]
            else:
                b = b_step
                for j in range(b):
                    t = indices[s, j]
                    for i in range(d):
                        V[act[0] + i * b + j] = XT[t, i]
                    for i in range(classes):
                        V[Y + i * b + j] = YT[t, i]

            # Forward: module k maps a_k to a_{k+1}.
            for k in range(L):
                m, n, src, dst = widths[k], widths[k + 1], act[k], act[k + 1]
                op = ops[k]
                if op == LINEAR:
                    w = w0 + woff[k]
                    if m * n * b >= BLAS_MIN_FLOPS:
                        Wt = V[w : w + m * n].reshape((m, n)).T
                        A = V[src : src + m * b].reshape((m, b))
                        np.dot(Wt, A, V[dst : dst + n * b].reshape((n, b)))
                    else:
                        for i in range(n * b):
                            V[dst + i] = zero
                        if b == 1:  # the inner loop along W's row, in memory order
                            for r in range(m):
                                a, row = V[src + r], w + r * n
                                for i in range(n):
                                    V[dst + i] += V[row + i] * a
                        else:
                            for r in range(m):
                                for i in range(n):
                                    wri = V[w + r * n + i]
                                    for j in range(b):
                                        V[dst + i * b + j] += wri * V[src + r * b + j]
                    for i in range(n):
                        for j in range(b):
                            V[dst + i * b + j] += V[w + m * n + i]
                elif op == SOFTMAX:
                    for j in range(b):
                        zmax = V[src + j]
                        for i in range(1, n):
                            zmax = max(zmax, V[src + i * b + j])
                        total = zero
                        for i in range(n):
                            e = np.exp(V[src + i * b + j] - zmax)
                            V[dst + i * b + j] = e
                            total += e
                        for i in range(n):
                            V[dst + i * b + j] /= total
                else:
                    for i in range(n * b):
                        z = V[src + i]
                        if op == TANH:
                            V[dst + i] = np.tanh(z)
                        elif op == RELU:
                            V[dst + i] = zero if z <= 0 else z  # NaN stays NaN, as in np.maximum
                        else:
                            V[dst + i] = 1 / (1 + np.exp(-z))

            if evaluating:
                for j in range(b):
                    best, label = 0, 0
                    for i in range(classes):
                        if not np.isfinite(V[p + i * b + j]):
                            hits[s], done = -1, s
                        if V[p + i * b + j] > V[p + best * b + j]:
                            best = i
                        if YT[start + j, i] > YT[start + j, label]:
                            label = i
                    hits[s] += best == label
                if done == s:
                    break
                continue

            loss = zero
            for i in range(classes * b):
                loss -= V[Y + i] * np.log(max(V[p + i], tiny))
            losses[s] = loss
            if not np.isfinite(loss):
                done = s
                break

            # SoftMax and NLL differentiated together: Ypred * sum(Y) - Y.
            for j in range(b):
                total = zero
                for i in range(classes):
                    total += V[Y + i * b + j]
                for i in range(classes):
                    V[g_top + i * b + j] = V[p + i * b + j] * total - V[Y + i * b + j]
            # Backward: module k takes g_{k+1}, the gradient by its output, to g_k.
            for k in range(L - 2, -1, -1):
                m, n, src, g_out, g_in = widths[k], widths[k + 1], act[k], grad[k + 1], grad[k]
                if ops[k] != LINEAR:
                    for i in range(n * b):
                        a, g = V[act[k + 1] + i], V[g_out + i]
                        if ops[k] == TANH:
                            V[g_in + i] = (1 - a**2) * g
                        elif ops[k] == RELU:
                            V[g_in + i] = g * (a != 0)
                        else:
                            V[g_in + i] = a * (1 - a) * g
                    continue
                w, dw = w0 + woff[k], G + woff[k]  # the gradients lie as the weights do
                inner = k > 0  # the gradient by the data is not needed
                if m * n * b >= BLAS_MIN_FLOPS:
                    A = V[src : src + m * b].reshape((m, b))
                    D = V[g_out : g_out + n * b].reshape((n, b))
                    np.dot(A, D.T, V[dw : dw + m * n].reshape((m, n)))
                    if inner:
                        W = V[w : w + m * n].reshape((m, n))
                        np.dot(W, D, V[g_in : g_in + m * b].reshape((m, b)))
                elif b == 1:
                    for r in range(m):
                        a = V[src + r]
                        for i in range(n):
                            V[dw + r * n + i] = a * V[g_out + i]
                    if inner:
                        for r in range(m):
                            acc = zero
                            for i in range(n):
                                acc += V[w + r * n + i] * V[g_out + i]
                            V[g_in + r] = acc
                else:
                    for r in range(m):
                        for i in range(n):
                            acc = zero
                            for j in range(b):
                                acc += V[src + r * b + j] * V[g_out + i * b + j]
                            V[dw + r * n + i] = acc
                    if inner:
                        for i in range(m * b):
                            V[g_in + i] = zero
                        for r in range(m):
                            for i in range(n):
                                wri = V[w + r * n + i]
                                for j in range(b):
                                    V[g_in + r * b + j] += wri * V[g_out + i * b + j]
                for i in range(n):
                    acc = zero
                    for j in range(b):
                        acc += V[g_out + i * b + j]
                    V[dw + m * n + i] = acc

            bad = False  # an OR over the gradients: vectorised, unlike a call per element
            for i in range(P.size):
                bad |= (V[G + i] - V[G + i]) != 0  # NaN for NaN and inf
            if bad:
                done = s
                break
            for i in range(P.size):
                V[w0 + i] -= lrate * V[G + i]
        if done < indices.shape[0]:
            break
    P[:] = V[w0:]
    return done


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
