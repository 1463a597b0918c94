"""Many models of one architecture trained at once: the compiled loop of ``fastffn.sweep``.

Every array has the model axis last, so that each weight, activation and
gradient of M models lies together in memory and one SIMD instruction updates
several models; groups of models run on separate cores (``prange``). Each
model's arithmetic is the one-model loop's, summed in the same order along a
column: its numbers are those of training it alone, within the tolerance.

Shapes (G groups of M models, P weights a model, as ``numba_loop.sgd_steps`` lays
them out; L modules; b samples a batch):

- ``params``: G by P by M, updated in place;
- ``indices``: G by iters by b by M, the columns each model draws;
- ``lrates``: G by M, of the model's dtype;
- ``record_losses``, ``record_hits``: G by R by M, the loss and the count of
  training points classified right at each record (iteration ``it`` with
  ``it % every == 1 % every``; record r is at ``1 % every + r * every``);
- ``stopped``: G by M int64, the iteration at which a model's loss, gradients or
  outputs stopped being finite (that step not applied, the model's weights kept
  from before it), else -1.
"""

import numba
import numpy as np

from ._numba_cache import jit
from .numba import FASTMATH, simd_exp
from .numba_loop import LINEAR, RELU, SIGMOID, TANH

#: Models side by side in a group (M): a constant, so that the compiler unrolls
#: every loop over models into whole SIMD registers (two of AVX2's for float64).
#: ``dot_lanes`` keeps one accumulator a model in registers: it is written for 8.
LANES = 8


@jit(fastmath=FASTMATH)
def dot_lanes(U, V, count):
    """For each of the 8 models q: the sum over r < count of ``U[r, q] * V[r, q]``, r ascending.

    One named accumulator a model, so that the sums stay in registers and the
    eight products of a step share SIMD instructions (a sum into memory would
    not: the compiler cannot tell that it does not alias U or V).
    """
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = U.dtype.type(0)
    for r in range(count):
        s0 += U[r, 0] * V[r, 0]
        s1 += U[r, 1] * V[r, 1]
        s2 += U[r, 2] * V[r, 2]
        s3 += U[r, 3] * V[r, 3]
        s4 += U[r, 4] * V[r, 4]
        s5 += U[r, 5] * V[r, 5]
        s6 += U[r, 6] * V[r, 6]
        s7 += U[r, 7] * V[r, 7]
    return s0, s1, s2, s3, s4, s5, s6, s7


@jit(fastmath=FASTMATH)
def forward(ops, shapes, params, acts, cols, scratch):
    """The forward pass of the first ``cols`` samples in ``acts[0]`` for every model.

    ``acts`` is L + 1 by b by width by M: module k reads ``acts[k, j]`` and
    writes ``acts[k + 1, j]`` for sample j, each a C-ordered width by M view.
    """
    zero, one = params.dtype.type(0), params.dtype.type(1)
    for k in range(ops.size):
        op, m, n, base = ops[k], shapes[k, 0], shapes[k, 1], shapes[k, 2]
        if op == LINEAR:
            W = params[base : base + m * n].reshape((m, n, LANES))
            B = params[base + m * n : base + m * n + n]
        for j in range(cols):
            A, Z = acts[k, j], acts[k + 1, j]
            if op == LINEAR:  # W.T @ a + W0, as the one-model loop sums it
                for i in range(n):
                    for q in range(LANES):
                        Z[i, q] = zero
                for r in range(m):
                    for i in range(n):
                        for q in range(LANES):
                            Z[i, q] += W[r, i, q] * A[r, q]
                for i in range(n):
                    for q in range(LANES):
                        Z[i, q] += B[i, q]
            elif op == TANH:
                for i in range(n):
                    for q in range(LANES):
                        Z[i, q] = np.tanh(A[i, q])
            elif op == RELU:
                for i in range(n):
                    for q in range(LANES):
                        Z[i, q] = max(zero, A[i, q])
            elif op == SIGMOID:
                for i in range(n):
                    for q in range(LANES):
                        Z[i, q] = one / (one + simd_exp(-A[i, q]))
            else:  # softmax, shifted by each model's maximum
                for q in range(LANES):
                    scratch[0, q] = A[0, q]
                for i in range(1, n):
                    for q in range(LANES):
                        scratch[0, q] = max(scratch[0, q], A[i, q])
                for q in range(LANES):
                    scratch[1, q] = zero
                for i in range(n):
                    for q in range(LANES):
                        Z[i, q] = simd_exp(A[i, q] - scratch[0, q])
                        scratch[1, q] += Z[i, q]
                for i in range(n):
                    for q in range(LANES):
                        Z[i, q] /= scratch[1, q]


@jit(fastmath=FASTMATH)
def correct(ops, shapes, params, XT, YT, acts, hits):
    """Into ``hits`` (M,): how many training points each model classifies right, -1 if
    one of its outputs was not finite. ``acts`` as for ``forward``; its b samples
    take b points at a time."""
    L, M, b = ops.size, params.shape[1], acts.shape[1]
    hits[:] = 0
    finite = np.ones(M, dtype=np.bool_)
    scratch = np.empty((2, M), dtype=params.dtype)
    for start in range(0, XT.shape[0], b):
        cols = min(b, XT.shape[0] - start)
        for j in range(cols):
            for i in range(XT.shape[1]):
                acts[0, j, i, :] = XT[start + j, i]
        forward(ops, shapes, params, acts, cols, scratch)
        for j in range(cols):
            t, out = start + j, acts[L, j]
            label = 0
            for i in range(YT.shape[1]):
                if YT[t, i] > YT[t, label]:
                    label = i
            for q in range(LANES):
                best = 0
                for i in range(YT.shape[1]):
                    finite[q] &= np.isfinite(out[i, q])
                    if out[i, q] > out[best, q]:
                        best = i
                hits[q] += best == label
    for q in range(LANES):
        if not finite[q]:
            hits[q] = -1


@jit(fastmath=FASTMATH)
def group_steps(
    ops, shapes, shared, XT, YT, indices, lrates, tiny, first, every, rec_losses, rec_hits, stopped
):
    """One group's steps ``first`` to ``first + len(indices)``; the arguments are one
    group's slices of ``many_steps``'s.

    The group's weights are copied in and out: every view of a slice of the
    shared G-group array counts references on that array's one counter, which
    the cores running other groups update too (a cache line bounced between
    cores at every view).
    """
    params = shared.copy()
    group_loop(ops, shapes, params, XT, YT, indices, lrates, tiny, first, every, rec_losses,
               rec_hits, stopped)  # fmt: skip
    shared[:] = params


@jit(fastmath=FASTMATH)
def group_loop(
    ops, shapes, params, XT, YT, indices, lrates, tiny, first, every, rec_losses, rec_hits, stopped
):
    """``group_steps`` on the group's own copy of its weights."""
    L, (P, M), b = ops.size, params.shape, indices.shape[1]
    dtype = params.dtype
    zero, one = dtype.type(0), dtype.type(1)
    acts, grad = work(ops, shapes, XT, b, M), work(ops, shapes, XT, b, M)
    grads = np.empty((P, M), dtype=dtype)
    loss = np.empty(M, dtype=dtype)
    total = np.empty(M, dtype=dtype)
    zeros = np.zeros((P, M), dtype=dtype)
    rates = np.empty(M, dtype=dtype)
    scratch = np.empty((2, M), dtype=dtype)
    live = np.empty(M, dtype=np.bool_)
    hits = np.empty(M, dtype=np.int64)
    classes = YT.shape[1]

    for s in range(indices.shape[0]):
        it = first + s
        for q in range(LANES):
            live[q] = stopped[q] < 0
        if every and it % every == 1 % every:
            correct(ops, shapes, params, XT, YT, acts, hits)
            r = (it - 1 % every) // every
            for q in range(LANES):
                if hits[q] < 0 and live[q]:
                    stopped[q] = it
                rec_hits[r, q] = hits[q]
        for j in range(b):
            X0 = acts[0, j]
            for q in range(LANES):
                t = indices[s, j, q]
                for i in range(XT.shape[1]):
                    X0[i, q] = XT[t, i]
        forward(ops, shapes, params, acts, b, scratch)

        loss[:] = zero
        for j in range(b):  # NLL, then SoftMax and NLL differentiated together
            out, g = acts[L, j], grad[L - 1, j]
            total[:] = zero
            for i in range(classes):
                for q in range(LANES):
                    y = YT[indices[s, j, q], i]
                    loss[q] -= y * np.log(max(out[i, q], tiny))
                    total[q] += y
            for i in range(classes):
                for q in range(LANES):
                    g[i, q] = out[i, q] * total[q] - YT[indices[s, j, q], i]
        if every and it % every == 1 % every:
            rec_losses[(it - 1 % every) // every] = loss

        for k in range(L - 2, -1, -1):
            op, m, n, base = ops[k], shapes[k, 0], shapes[k, 1], shapes[k, 2]
            if op == LINEAR:  # dW = a g.T and dW0 = g summed over the batch; W g
                W = params[base : base + m * n].reshape((m, n, LANES))
                dW = grads[base : base + m * n].reshape((m, n, LANES))
                dB = grads[base + m * n : base + m * n + n]
                for j in range(b):
                    A, G = acts[k, j], grad[k + 1, j]
                    for r in range(m):
                        for i in range(n):
                            for q in range(LANES):
                                product = A[r, q] * G[i, q]
                                dW[r, i, q] = product if j == 0 else dW[r, i, q] + product
                    for i in range(n):
                        for q in range(LANES):
                            dB[i, q] = G[i, q] if j == 0 else dB[i, q] + G[i, q]
                    if k > 0:
                        D = grad[k, j]
                        for r in range(m):
                            s8 = dot_lanes(W[r], G, n)
                            for q in range(LANES):
                                D[r, q] = s8[q]
            else:
                for j in range(b):
                    Z, G, D = acts[k + 1, j], grad[k + 1, j], grad[k, j]
                    if op == TANH:
                        for i in range(n):
                            for q in range(LANES):
                                D[i, q] = (one - Z[i, q] ** 2) * G[i, q]
                    elif op == RELU:
                        for i in range(n):
                            for q in range(LANES):
                                D[i, q] = G[i, q] * (Z[i, q] != 0)
                    else:
                        for i in range(n):
                            for q in range(LANES):
                                D[i, q] = Z[i, q] * (one - Z[i, q]) * G[i, q]

        check = dot_lanes(grads, zeros, P)  # 0 for finite gradients, NaN for others
        for q in range(LANES):
            rates[q] = lrates[q]
            if live[q] and not (np.isfinite(loss[q]) and check[q] == zero):
                stopped[q] = it
            if stopped[q] >= 0:  # a stopped model keeps its weights
                rates[q] = zero
                grads[:, q] = zero
        for p in range(P):
            for q in range(LANES):
                params[p, q] -= rates[q] * grads[p, q]


@jit(parallel=True)
def many_steps(
    ops, shapes, params, XT, YT, indices, lrates, tiny, first, every, rec_losses, rec_hits, stopped
):
    """Steps ``first`` to ``first + indices.shape[1]`` of G groups of M models, one
    group a core (shapes in the module's docstring)."""
    for group in numba.prange(params.shape[0]):
        group_steps(
            ops, shapes, params[group], XT, YT, indices[group], lrates[group], tiny, first,
            every, rec_losses[group], rec_hits[group], stopped[group],
        )  # fmt: skip


@jit(parallel=True)
def many_correct(ops, shapes, params, XT, YT, b, hits):
    """Into ``hits`` (G by M): ``correct`` for every model, b training points at a time."""
    for group in numba.prange(params.shape[0]):
        correct(
            ops,
            shapes,
            params[group].copy(),  # a group's own: see group_steps
            XT,
            YT,
            work(ops, shapes, XT, b, params.shape[2]),
            hits[group],
        )


@jit
def work(ops, shapes, XT, b, M):
    """A buffer of every module's input and output (see ``forward``), of XT's dtype.

    Allocated in a function of its own: one allocated in a ``prange`` body may
    be hoisted out of it and shared between threads.
    """
    width = XT.shape[1]
    for k in range(ops.size):
        width = max(width, shapes[k, 1])
    return np.empty((ops.size + 1, b, width, M), dtype=XT.dtype)
