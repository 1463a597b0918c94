"""The compiled loop for batches of one sample, the notebook's SGD: ``column_steps``.

A step of a small network is a few hundred multiply-adds: what the general loop
(``numba_loop.sgd_steps``) spends on views, buffers and calls costs more. Here
each module's output is one row of a work array and each weight is read in
place in params. The dot products may be summed in any order (reassoc) and
fused (contract), which lets them use SIMD lanes; whole runs still agree with
the reference to 1e-10 (tests/test_compiled.py). ``fastffn.training`` calls it
for ``batch_size=1`` with the arguments of ``sgd_steps``, but for X and Y their
transposes XT and YT (N by d and N by k, C order: each sample's numbers together).
"""

import numpy as np

from ._numba_cache import jit
from .numba_into import (
    FASTMATH,
    hit,
    module_bound,
    nll_span,
    overflow_limit,
    softmax_nll_span,
)
from .numba_loop import all_finite, first_record, update
from .ops import LINEAR, SOFTMAX, backward_into, check_ops, forward_into
from .simd import exp_lanes


@jit(fastmath=FASTMATH)
def column_forward(ops, shapes, coefs, params, XT, t, acts):
    """The forward pass of sample t (row t of XT): module k's output into ``acts[k + 1, :n_k]``.

    ``ops``, ``shapes``, ``coefs`` and ``params`` as for ``sgd_steps``; ``acts`` is L + 1
    by the widest module (or d); its row 0 receives the sample. Rows and weights are indexed
    in place, not taken as views: a view costs a reference count, which at this
    size is as much as the arithmetic.
    """
    zero = params.dtype.type(0)
    for i in range(XT.shape[1]):
        acts[0, i] = XT[t, i]
    for k in range(ops.size):
        op, m, n, base = ops[k], shapes[k, 0], shapes[k, 1], shapes[k, 2]
        if op == LINEAR:  # W.T @ a + W0, each row of W in memory order
            base = np.uint64(base)  # see column_update
            for i in range(n):
                acts[k + 1, i] = zero
            for r in range(m):
                a, w = acts[k, r], base + np.uint64(r * n)
                for i in range(n):
                    acts[k + 1, i] += params[w + np.uint64(i)] * a
            w = base + np.uint64(m * n)
            for i in range(n):
                acts[k + 1, i] += params[w + np.uint64(i)]
        elif op != SOFTMAX:  # row k into row k + 1, as flat spans of acts
            width = acts.shape[1]
            forward_into(op, coefs[k], acts, k * width, acts, (k + 1) * width, n)
        else:
            zmax = acts[k, 0]
            for i in range(1, n):
                zmax = max(zmax, acts[k, i])
            total = zero
            for i in range(n):
                acts[k + 1, i] = exp_lanes(acts[k, i] - zmax)
                total += acts[k + 1, i]
            for i in range(n):
                acts[k + 1, i] /= total


@jit(fastmath=FASTMATH, nogil=True)  # sweeps run models on threads of their own
def column_steps(
    ops, shapes, coefs, params, XT, YT, indices, rates, tiny, rule, slots, hyper,
    losses, first, every, hits,
):  # fmt: skip
    """``sgd_steps`` for batches of one sample (indices iters by 1), one column at a time."""
    check_ops(ops)
    L = ops.size
    width = XT.shape[1]
    for k in range(L):  # a loop, not shapes[:, 1].max(): that compiles for a second
        width = max(width, shapes[k, 1])
    acts = np.empty((L + 1, width), dtype=params.dtype)  # row k: module k's input
    grad = np.empty((L + 1, width), dtype=params.dtype)  # row k: the gradient by it
    grads = np.empty(params.size if hyper is not None else 0, dtype=params.dtype)
    limit = overflow_limit(params)  # see column_update

    S = indices.shape[0]
    record = S if every is None else first_record(first, every)
    start = 0
    while start < S:
        if every is not None and start == record:  # pruned where every is None: not compiled
            record += every
            hits[start] = column_correct(ops, shapes, coefs, params, XT, YT)
            if hits[start] < 0:
                return start
        stop = min(S, record)  # the steps up to the next record: a loop with no record in it
        done = column_run(ops, shapes, coefs, params, XT, YT, indices, rates, tiny, rule, slots,
                          hyper, losses, start, stop, acts, grad, grads, limit)  # fmt: skip
        if done < stop:
            return done
        start = stop
    return S


@jit(fastmath=FASTMATH)
def column_run(
    ops, shapes, coefs, params, XT, YT, indices, rates, tiny, rule, slots, hyper,
    losses, start, stop, acts, grad, grads, limit,
):  # fmt: skip
    """Steps ``start`` to ``stop`` of ``column_steps``, in its buffers; returns the index of
    the first step that diverged, or ``stop``."""
    L, width, classes = ops.size, acts.shape[1], YT.shape[1]
    zero = params.dtype.type(0)
    for it in range(start, stop):
        t = indices[it, 0]
        column_forward(ops, shapes, coefs, params, XT, t, acts)
        losses[it] = nll_span(acts, L * width, 1, YT, t * classes, 1, classes, tiny)
        if not np.isfinite(losses[it]):
            return it
        softmax_nll_span(acts, L * width, 1, YT, t * classes, 1, grad, (L - 1) * width, 1, classes)
        bound = zero
        for k in range(L - 2, -1, -1):
            op, m, n, base = ops[k], shapes[k, 0], shapes[k, 1], shapes[k, 2]
            if op == LINEAR:
                if hyper is None:  # the notebook's step: dW is not stored (column_update)
                    sa, sg = zero, zero
                    for r in range(m):
                        sa += abs(acts[k, r])
                    for i in range(n):
                        sg += abs(grad[k + 1, i])
                    bound += module_bound(sa, sg)
                else:  # dW = a g.T and dW0 = g, for the optimizer
                    dW = grads[base : base + m * n].reshape((m, n))
                    for r in range(m):
                        a = acts[k, r]
                        for i in range(n):
                            dW[r, i] = a * grad[k + 1, i]
                    for i in range(n):
                        grads[base + m * n + i] = grad[k + 1, i]
                if k > 0:  # W g for the module before, with W as the forward pass used it
                    for r in range(m):
                        s, w = zero, np.uint64(base) + np.uint64(r * n)  # see column_update
                        for i in range(n):
                            s += params[w + np.uint64(i)] * grad[k + 1, i]
                        grad[k, r] = s
            else:  # row k + 1 of grad into row k, from row k + 1 of acts
                out = (k + 1) * width
                backward_into(op, coefs[k], acts, out, grad, out, grad, k * width, n)

        if hyper is not None:
            if not all_finite(grads):
                return it
            update(ops, shapes, params, grads, rates[0, it], rates[1, it], rule, slots, hyper)
        elif bound < limit or column_gradients_finite(ops, shapes, acts, grad):
            column_update(ops, shapes, params, acts, grad, rates[0, it])
        else:
            return it
    return stop


@jit(fastmath=False)
def column_gradients_finite(ops, shapes, acts, grad):
    """Whether every a_r g_i and g_i of every Linear module is finite (``column_steps``'
    rows), as ``all_finite`` on the gradients would say.

    Without reassoc, which could take (a g) 0 as a (g 0), 0 where a g overflowed.
    Said explicitly: a function that does not set ``fastmath`` compiles with its
    caller's flags when Numba compiles it for one (``column_steps``').
    """
    zero = acts.dtype.type(0)
    check = zero
    for k in range(ops.size - 1):
        if ops[k] == LINEAR:
            for r in range(shapes[k, 0]):
                for i in range(shapes[k, 1]):
                    check += acts[k, r] * grad[k + 1, i] * zero
            for i in range(shapes[k, 1]):
                check += grad[k + 1, i] * zero
    return check == zero


@jit(fastmath=FASTMATH)
def column_update(ops, shapes, params, acts, grad, rate):
    """The notebook's step on every Linear module: W -= rate (a g.T), W0 -= rate g, from
    each module's input a and the gradient g by its output (``column_steps``' rows).

    Fused: each weight takes its gradient as it is made, and no array of gradients
    is written and read back (at 16-100-100-4, two of a step's five passes over
    the weights). No weight may change if one gradient is not finite:
    ``column_steps`` first sums sum|a| sum|g| + sum|g| for each module, a bound
    on every |a_r g_i| and |g_i| that is NaN or inf where a or g holds one, and
    only where the bound reaches half the dtype's largest number are the
    gradients checked one by one (``column_gradients_finite``).
    """
    for k in range(ops.size - 1):
        if ops[k] == LINEAR:
            # Unsigned offsets into params, not a view of W: a view's reference count
            # cost a tenth of a 2-10-10-2 step, and a signed index a check in each loop.
            m, n, base = shapes[k, 0], shapes[k, 1], np.uint64(shapes[k, 2])
            for r in range(m):
                a = acts[k, r]
                w = base + np.uint64(r * n)
                for i in range(n):
                    params[w + np.uint64(i)] -= rate * (a * grad[k + 1, i])
            w = base + np.uint64(m * n)
            for i in range(n):
                params[w + np.uint64(i)] -= rate * grad[k + 1, i]


@jit(fastmath=FASTMATH)
def column_correct(ops, shapes, coefs, params, XT, YT, block=32):
    """``correct`` with ``column_forward``'s arithmetic, ``block`` samples at a time.

    Each sample's numbers are computed as ``column_forward`` computes them, in
    the same order; the loops run across the block's samples, which lie
    together in memory (``A[at + i, j]``: number i of sample j's input to module
    k, ``at = k * width``), so SIMD lanes take several samples at once (a record
    of the notebook's job: 4.7 us one sample at a time, 2.9 us so).
    """
    check_ops(ops)
    L, N, d = ops.size, XT.shape[0], XT.shape[1]
    zero = params.dtype.type(0)
    width = d
    for k in range(L):
        width = max(width, shapes[k, 1])
    A = np.empty(((L + 1) * width, block), dtype=params.dtype)
    hits = 0
    for start in range(0, N, block):
        b = min(block, N - start)
        for i in range(d):
            for j in range(b):
                A[i, j] = XT[start + j, i]
        for k in range(L):
            op, m, n, base = ops[k], shapes[k, 0], shapes[k, 1], np.uint64(shapes[k, 2])
            x, z = np.uint64(k * width), np.uint64((k + 1) * width)  # unsigned: see column_update
            if op == LINEAR:
                for i in range(n):
                    for j in range(b):
                        A[z + np.uint64(i), j] = zero
                for r in range(m):
                    w = base + np.uint64(r * n)
                    for i in range(n):
                        weight = params[w + np.uint64(i)]
                        for j in range(b):
                            A[z + np.uint64(i), j] += weight * A[x + np.uint64(r), j]
                w = base + np.uint64(m * n)
                for i in range(n):
                    bias = params[w + np.uint64(i)]
                    for j in range(b):
                        A[z + np.uint64(i), j] += bias
            elif op == SOFTMAX:
                for j in range(b):
                    zmax = A[x, j]
                    for i in range(1, n):
                        zmax = max(zmax, A[x + np.uint64(i), j])
                    total = zero
                    for i in range(n):
                        A[z + np.uint64(i), j] = exp_lanes(A[x + np.uint64(i), j] - zmax)
                        total += A[z + np.uint64(i), j]
                    for i in range(n):
                        A[z + np.uint64(i), j] /= total
            else:  # n rows of block numbers from row x into row z, as flat spans
                row = width * block  # numbers a module's rows hold
                forward_into(op, coefs[k], A, k * row, A, (k + 1) * row, n * block)
        classes = YT.shape[1]
        for j in range(b):
            counted = hit(A, L * width * block + j, block, YT, (start + j) * classes, 1, classes)
            if counted < 0:
                return -1
            hits += counted
    return hits
