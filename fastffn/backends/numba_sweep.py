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
from .numba_loop import LINEAR, RELU, SIGMOID, TANH

#: Models side by side in a group (M): a constant, so that the compiler unrolls
#: every loop over models into whole SIMD registers (two of AVX2's for float64).
LANES = 8


@jit
def forward(ops, shapes, params, acts, cols, scratch):
    """The forward pass of the first ``cols`` columns of ``acts[0]`` for every model.

    ``acts`` is L + 1 by width by b by M: module k reads ``acts[k]`` and writes
    ``acts[k + 1]``.
    """
    zero, one = params.dtype.type(0), params.dtype.type(1)
    for k in range(ops.size):
        op, m, n, base = ops[k], shapes[k, 0], shapes[k, 1], shapes[k, 2]
        for j in range(cols):
            if op == LINEAR:  # W.T @ a + W0, as the one-model loop sums it
                for i in range(n):
                    for q in range(LANES):
                        acts[k + 1, i, j, q] = zero
                for r in range(m):
                    for i in range(n):
                        for q in range(LANES):
                            acts[k + 1, i, j, q] += params[base + r * n + i, q] * acts[k, r, j, q]
                for i in range(n):
                    for q in range(LANES):
                        acts[k + 1, i, j, q] += params[base + m * n + i, q]
            elif op == TANH:
                for i in range(n):
                    for q in range(LANES):
                        acts[k + 1, i, j, q] = np.tanh(acts[k, i, j, q])
            elif op == RELU:
                for i in range(n):
                    for q in range(LANES):
                        acts[k + 1, i, j, q] = max(zero, acts[k, i, j, q])
            elif op == SIGMOID:
                for i in range(n):
                    for q in range(LANES):
                        acts[k + 1, i, j, q] = one / (one + np.exp(-acts[k, i, j, q]))
            else:  # softmax, shifted by each column's maximum
                for q in range(LANES):
                    scratch[0, q] = acts[k, 0, j, q]
                for i in range(1, n):
                    for q in range(LANES):
                        scratch[0, q] = max(scratch[0, q], acts[k, i, j, q])
                for q in range(LANES):
                    scratch[1, q] = zero
                for i in range(n):
                    for q in range(LANES):
                        acts[k + 1, i, j, q] = np.exp(acts[k, i, j, q] - scratch[0, q])
                        scratch[1, q] += acts[k + 1, i, j, q]
                for i in range(n):
                    for q in range(LANES):
                        acts[k + 1, i, j, q] /= scratch[1, q]


@jit
def correct(ops, shapes, params, XT, YT, acts, hits):
    """Into ``hits`` (M,): how many training points each model classifies right, -1 if
    one of its outputs was not finite. ``acts`` as for ``forward``; its b columns
    take b points at a time."""
    L, M, b = ops.size, params.shape[1], acts.shape[2]
    hits[:] = 0
    finite = np.ones(M, dtype=np.bool_)
    scratch = np.empty((2, M), dtype=params.dtype)
    for start in range(0, XT.shape[0], b):
        cols = min(b, XT.shape[0] - start)
        for j in range(cols):
            for i in range(XT.shape[1]):
                acts[0, i, j, :] = XT[start + j, i]
        forward(ops, shapes, params, acts, cols, scratch)
        out = acts[L]
        for j in range(cols):
            t = start + j
            label = 0
            for i in range(YT.shape[1]):
                if YT[t, i] > YT[t, label]:
                    label = i
            for q in range(LANES):
                best = 0
                for i in range(YT.shape[1]):
                    finite[q] &= np.isfinite(out[i, j, q])
                    if out[i, j, q] > out[best, j, q]:
                        best = i
                hits[q] += best == label
    for q in range(LANES):
        if not finite[q]:
            hits[q] = -1


@jit
def group_steps(
    ops, shapes, params, XT, YT, indices, lrates, tiny, first, every, rec_losses, rec_hits, stopped
):
    """One group's steps ``first`` to ``first + len(indices)``; the arguments are one
    group's slices of ``many_steps``'s."""
    L, (P, M), b = ops.size, params.shape, indices.shape[1]
    dtype = params.dtype
    zero, one = dtype.type(0), dtype.type(1)
    acts, grad = work(ops, shapes, XT, b, M), work(ops, shapes, XT, b, M)
    grads = np.empty((P, M), dtype=dtype)
    loss = np.empty(M, dtype=dtype)
    total = np.empty(M, dtype=dtype)
    check = np.empty(M, dtype=dtype)
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
            for q in range(LANES):
                t = indices[s, j, q]
                for i in range(XT.shape[1]):
                    acts[0, i, j, q] = XT[t, i]
        forward(ops, shapes, params, acts, b, scratch)

        loss[:] = zero
        for j in range(b):  # NLL, then SoftMax and NLL differentiated together
            total[:] = zero
            for i in range(classes):
                for q in range(LANES):
                    y = YT[indices[s, j, q], i]
                    loss[q] -= y * np.log(max(acts[L, i, j, q], tiny))
                    total[q] += y
            for i in range(classes):
                for q in range(LANES):
                    grad[L - 1, i, j, q] = acts[L, i, j, q] * total[q] - YT[indices[s, j, q], i]
        if every and it % every == 1 % every:
            rec_losses[(it - 1 % every) // every] = loss

        for k in range(L - 2, -1, -1):
            op, m, n, base = ops[k], shapes[k, 0], shapes[k, 1], shapes[k, 2]
            if op == LINEAR:
                for r in range(m):  # dW = a g.T, dW0 = g summed over the batch, W g
                    for i in range(n):
                        p = base + r * n + i
                        for q in range(LANES):
                            grads[p, q] = zero
                        for j in range(b):
                            for q in range(LANES):
                                grads[p, q] += acts[k, r, j, q] * grad[k + 1, i, j, q]
                for i in range(n):
                    p = base + m * n + i
                    for q in range(LANES):
                        grads[p, q] = zero
                    for j in range(b):
                        for q in range(LANES):
                            grads[p, q] += grad[k + 1, i, j, q]
                if k > 0:
                    for j in range(b):
                        for r in range(m):
                            for q in range(LANES):
                                grad[k, r, j, q] = zero
                            for i in range(n):
                                for q in range(LANES):
                                    grad[k, r, j, q] += (
                                        params[base + r * n + i, q] * grad[k + 1, i, j, q]
                                    )
            elif op == TANH:
                for i in range(n):
                    for j in range(b):
                        for q in range(LANES):
                            grad[k, i, j, q] = (one - acts[k + 1, i, j, q] ** 2) * grad[
                                k + 1, i, j, q
                            ]
            elif op == RELU:
                for i in range(n):
                    for j in range(b):
                        for q in range(LANES):
                            grad[k, i, j, q] = grad[k + 1, i, j, q] * (acts[k + 1, i, j, q] != 0)
            else:
                for i in range(n):
                    for j in range(b):
                        for q in range(LANES):
                            grad[k, i, j, q] = (
                                acts[k + 1, i, j, q]
                                * (one - acts[k + 1, i, j, q])
                                * grad[k + 1, i, j, q]
                            )

        check[:] = zero  # 0 for finite gradients, NaN for a model with one that is not
        for p in range(P):
            for q in range(LANES):
                check[q] += grads[p, q] * zero
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
            params[group],
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
    width = max(XT.shape[1], shapes[:, 1].max())
    return np.empty((ops.size + 1, width, b, M), dtype=XT.dtype)
