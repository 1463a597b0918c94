"""Many models of one architecture trained at once: the compiled loop of ``fastffn.sweep``.

Every array has the model axis last, so that each weight, activation and
gradient of M models lies together in memory and one SIMD instruction updates
several models (``_lanes``); groups of models run on separate threads, one a
core (``sweeps._train_here``). Each model's arithmetic is the one-model loop's,
summed in the same order along a column: its numbers are those of training it
alone, within the tolerance.

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

import numpy as np

from ._lanes import (
    LANES,
    add,
    div,
    exp,
    fma,
    gather,
    lanes,
    maximum,
    mul,
    put,
    row,
    sub,
    tanh,
    where_nonzero,
)
from ._numba_cache import jit
from .numba import FASTMATH
from .numba_loop import LINEAR, RELU, SIGMOID, TANH


@jit(fastmath=FASTMATH)
def matvec(V, first, so, sc, X, x0, Y, y0, nout, nin):
    """``Y[y0 + o]`` = the sum over c < nin, c ascending, of ``V[first + o so + c sc] X[x0 + c]``,
    model by model, for o < nout: a weight matrix's rows (so, sc = 1, n) or columns (n, 1).

    Four outputs at a time: four sums in flight, each row of X loaded once for them.
    """
    zero = lanes(V.dtype.type(0))
    o = 0
    while o + 4 <= nout:
        s0 = s1 = s2 = s3 = zero
        for c in range(nin):
            x, v = row(X, x0 + c), first + o * so + c * sc
            s0 = fma(row(V, v), x, s0)
            s1 = fma(row(V, v + so), x, s1)
            s2 = fma(row(V, v + 2 * so), x, s2)
            s3 = fma(row(V, v + 3 * so), x, s3)
        put(Y, y0 + o, s0)
        put(Y, y0 + o + 1, s1)
        put(Y, y0 + o + 2, s2)
        put(Y, y0 + o + 3, s3)
        o += 4
    for rest in range(o, nout):
        s = zero
        for c in range(nin):
            s = fma(row(V, first + rest * so + c * sc), row(X, x0 + c), s)
        put(Y, y0 + rest, s)


@jit(fastmath=FASTMATH)
def forward(ops, shapes, params, acts, width, cols):
    """The forward pass of the first ``cols`` samples of ``acts`` for every model.

    Module k reads sample j's rows from ``at(k, j)`` on and writes them from
    ``at(k + 1, j)`` on (``acts`` as ``work`` allocates it).
    """
    b = acts.shape[0] // ((ops.size + 1) * width)
    zero, one = lanes(params.dtype.type(0)), lanes(params.dtype.type(1))
    for k in range(ops.size):
        op, m, n, base = ops[k], shapes[k, 0], shapes[k, 1], shapes[k, 2]
        for j in range(cols):
            a, z = at(k, j, b, width), at(k + 1, j, b, width)
            if op == LINEAR:  # W.T @ a + W0, as the one-model loop sums it
                matvec(params, base, 1, n, acts, a, acts, z, n, m)
                for i in range(n):
                    put(acts, z + i, add(row(acts, z + i), row(params, base + m * n + i)))
            elif op == TANH:
                for i in range(n):
                    put(acts, z + i, tanh(row(acts, a + i)))
            elif op == RELU:
                for i in range(n):
                    put(acts, z + i, maximum(zero, row(acts, a + i)))
            elif op == SIGMOID:
                for i in range(n):
                    put(acts, z + i, div(one, add(one, exp(sub(zero, row(acts, a + i))))))
            else:  # softmax, shifted by each model's maximum
                top = row(acts, a)
                for i in range(1, n):
                    top = maximum(top, row(acts, a + i))
                total = zero
                for i in range(n):
                    put(acts, z + i, exp(sub(row(acts, a + i), top)))
                    total = add(total, row(acts, z + i))  # as stored: in the model's dtype
                for i in range(n):
                    put(acts, z + i, div(row(acts, z + i), total))


@jit
def at(k, j, b, width):
    """The first row of module k's input for sample j in a ``work`` buffer."""
    return (k * b + j) * width


@jit(fastmath=FASTMATH)
def correct(ops, shapes, params, XT, YT, acts, width, hits):
    """Into ``hits`` (M,): how many training points each model classifies right, -1 if
    one of its outputs was not finite. ``acts`` as for ``forward``; its b samples
    take b points at a time."""
    L, M = ops.size, params.shape[1]
    b = acts.shape[0] // ((L + 1) * width)
    hits[:] = 0
    finite = np.ones(M, dtype=np.bool_)
    for start in range(0, XT.shape[0], b):
        cols = min(b, XT.shape[0] - start)
        for j in range(cols):
            for i in range(XT.shape[1]):
                put(acts, at(0, j, b, width) + i, lanes(XT[start + j, i]))
        forward(ops, shapes, params, acts, width, cols)
        for j in range(cols):
            t, out = start + j, at(L, j, b, width)
            label = 0
            for i in range(YT.shape[1]):
                if YT[t, i] > YT[t, label]:
                    label = i
            for q in range(LANES):
                best = 0
                for i in range(YT.shape[1]):
                    finite[q] &= np.isfinite(acts[out + i, q])
                    if acts[out + i, q] > acts[out + best, q]:
                        best = i
                hits[q] += best == label
    for q in range(LANES):
        if not finite[q]:
            hits[q] = -1


@jit(fastmath=FASTMATH, nogil=True, slp_vectorize=True)
def group_steps(
    ops, shapes, params, XT, YT, indices, lrates, tiny, first, every, rec_losses, rec_hits, stopped
):
    """Steps ``first`` to ``first + len(indices)`` of one group of LANES models.

    The arguments are one group's parts of the module docstring's arrays:
    ``params`` P by M, ``indices`` iters by b by M, ``lrates`` (M,),
    ``rec_losses`` and ``rec_hits`` R by M, ``stopped`` (M,). Runs without the
    GIL, so groups train on threads of their own (``sweeps._train_here``).

    Each step reads the weights from one buffer and writes the updated ones into
    the other, as soon as their gradient is known (no array of gradients); the
    two swap after the step. A model whose gradients were not finite, or that
    stopped before, gets its old weights back in the new buffer.
    """
    L, M, b = ops.size, params.shape[1], indices.shape[1]
    dtype = params.dtype
    zero, one = lanes(dtype.type(0)), lanes(dtype.type(1))
    width = widest(ops, shapes, XT)
    acts, grad = work(ops, XT, b, width, M), work(ops, XT, b, width, M)
    old, new = params, np.empty_like(params)
    rates = np.empty((1, M), dtype=dtype)
    loss = np.empty((1, M), dtype=dtype)
    hits = np.empty(M, dtype=np.int64)
    classes = YT.shape[1]

    for s in range(indices.shape[0]):
        it = first + s
        for q in range(LANES):
            rates[0, q] = lrates[q] if stopped[q] < 0 else 0
        if every and it % every == 1 % every:
            correct(ops, shapes, old, XT, YT, acts, width, hits)
            r = (it - 1 % every) // every
            for q in range(LANES):
                if hits[q] < 0 and stopped[q] < 0:
                    stopped[q] = it
                rec_hits[r, q] = hits[q]
        for j in range(b):
            t = row(indices[s], j)
            for i in range(XT.shape[1]):
                put(acts, at(0, j, b, width) + i, gather(XT, t, i))
        forward(ops, shapes, old, acts, width, b)

        for q in range(LANES):  # NLL, one model at a time (a scalar log)
            loss[0, q] = 0
            for j in range(b):
                out = at(L, j, b, width)
                for i in range(classes):
                    y, p = YT[indices[s, j, q], i], acts[out + i, q]
                    if y != 0 or not np.isfinite(p):  # else the term is 0: no log to take
                        loss[0, q] -= y * np.log(max(p, tiny))
        if every and it % every == 1 % every:
            rec_losses[(it - 1 % every) // every] = loss[0]
        for j in range(b):  # SoftMax and NLL differentiated together: p sum(y) - y
            t, out, g = row(indices[s], j), at(L, j, b, width), at(L - 1, j, b, width)
            total = zero
            for i in range(classes):
                total = add(total, gather(YT, t, i))
            for i in range(classes):
                p = mul(row(acts, out + i), total)
                put(grad, g + i, sub(p, gather(YT, t, i)))

        rate = row(rates, 0)
        check = zero  # stays 0 while every gradient is finite, else NaN
        for k in range(L - 2, -1, -1):
            op, m, n, base = ops[k], shapes[k, 0], shapes[k, 1], shapes[k, 2]
            if op == LINEAR:  # dW = a g.T and dW0 = g summed over the batch; W g
                for r in range(m):
                    for i in range(n):
                        a, g = at(k, 0, b, width) + r, at(k + 1, 0, b, width) + i
                        dw = fma(row(acts, a), row(grad, g), zero)
                        for j in range(1, b):
                            a, g = at(k, j, b, width) + r, at(k + 1, j, b, width) + i
                            dw = fma(row(acts, a), row(grad, g), dw)
                        check = fma(dw, zero, check)
                        w = base + r * n + i
                        put(new, w, sub(row(old, w), mul(rate, dw)))
                for i in range(n):
                    db = zero
                    for j in range(b):
                        db = add(db, row(grad, at(k + 1, j, b, width) + i))
                    check = fma(db, zero, check)
                    w = base + m * n + i
                    put(new, w, sub(row(old, w), mul(rate, db)))
                if k > 0:
                    for j in range(b):
                        g, d = at(k + 1, j, b, width), at(k, j, b, width)
                        matvec(old, base, n, 1, grad, g, grad, d, m, n)
            else:
                for j in range(b):  # the gradient at the output's rows into the input's
                    z, d = at(k + 1, j, b, width), at(k, j, b, width)
                    for i in range(n):
                        out, g = row(acts, z + i), row(grad, z + i)
                        if op == TANH:  # (1 - out**2) g
                            put(grad, d + i, mul(sub(one, mul(out, out)), g))
                        elif op == RELU:
                            put(grad, d + i, where_nonzero(out, g))
                        else:  # out (1 - out) g
                            put(grad, d + i, mul(mul(out, sub(one, out)), g))

        for q in range(LANES):
            if stopped[q] < 0 and not (np.isfinite(loss[0, q]) and check[q] == 0):
                stopped[q] = it
            if stopped[q] >= 0:  # a stopped model keeps its weights
                new[:, q] = old[:, q]
        old, new = new, old
    if indices.shape[0] % 2:  # an odd number of swaps: the last weights are in the other buffer
        params[:] = old


@jit(nogil=True, slp_vectorize=True)
def group_correct(ops, shapes, params, XT, YT, b, hits):
    """Into ``hits`` (M,): ``correct`` for one group (params P by M), b points at a time."""
    width = widest(ops, shapes, XT)
    correct(ops, shapes, params, XT, YT, work(ops, XT, b, width, LANES), width, hits)


@jit
def work(ops, XT, b, width, M):
    """A buffer of every module's input and output for b samples, of XT's dtype:
    ``widest`` rows of M a sample and module, the first at ``at(k, j, b, widest)``."""
    return np.empty(((ops.size + 1) * b * width, M), dtype=XT.dtype)


@jit
def widest(ops, shapes, XT):
    """The most numbers a sample has at any module's input or output."""
    width = XT.shape[1]
    for k in range(ops.size):
        width = max(width, shapes[k, 1])
    return width
