"""The compiled training loops: many SGD steps in one call to jitted code.

``sgd_steps`` runs any batch size on the kernels of ``numba.py`` (their
``*_into`` forms, with buffers allocated once), so its arithmetic is the
kernels'. ``numba_column.column_steps`` is the loop for batches of one sample,
the notebook's SGD: the same arithmetic written for a single column.
``fastffn.training`` packs a model for them (``pack``) and calls them.
"""

import numpy as np

from ..optimizers import RULES
from . import ACCURACY_BLOCK
from ._numba_cache import jit
from ._numba_private import borrowed, gemm_update
from .numba_into import (
    FASTMATH,
    adam_update_into,
    blas_wins,
    hit,
    linear_forward_into,
    matmul_nn_into,
    matmul_nt_into,
    module_bound,
    momentum_update_into,
    nesterov_update_into,
    nll_total,
    overflow_limit,
    row_sums_into,
    softmax_forward_into,
    softmax_nll_backward_into,
)
from .ops import LINEAR, SOFTMAX, backward_into, check_ops, forward_into

MOMENTUM, NESTEROV = RULES.index("momentum"), RULES.index("nesterov")


@jit
def sgd_product_update(W, W0, A, G, rate, dW, dW0):
    """The notebook's step on a Linear module from its input A (m by b) and the gradient
    G (n by b) by its output: ``W -= rate * A @ G.T``, ``W0 -= rate * G.sum(1)``.
    The product in one BLAS call where ``blas_wins`` (``gemm_update``: no dW made),
    else made in dW by ``matmul_nt_into`` and then taken away, as ``update`` does;
    the bias's sums in dW0 (n by 1)."""
    (m, n), b = W.shape, A.shape[1]
    if not (blas_wins(m, n, b, 4) and gemm_update(W, A, G, -rate) == 0):
        matmul_nt_into(A, G, dW)
        for i in range(W.size):
            W.flat[i] -= rate * dW.flat[i]
    row_sums_into(G, dW0)
    for i in range(n):
        W0[i, 0] -= rate * dW0[i, 0]


@jit(fastmath=FASTMATH)
def gradient_bound(A, G):
    """sum|A| sum|G| + sum|G|: at least every |(A @ G.T)[r, i]| and |G.sum(1)[i]| (and
    every partial sum of them); NaN or inf where A or G holds one."""
    sa, sg = A.dtype.type(0), A.dtype.type(0)
    for i in range(A.size):
        sa += abs(A.flat[i])
    for i in range(G.size):
        sg += abs(G.flat[i])
    return module_bound(sa, sg)


@jit
def transposed(X):
    """A C-contiguous copy of ``X.T``, copied in 32 by 32 tiles that stay in cache.

    The loop reads samples as rows; for float32 this is about twice as fast as
    ``np.ascontiguousarray(X.T)``.
    """
    XT = np.empty((X.shape[1], X.shape[0]), dtype=X.dtype)
    transpose_into(X, XT)
    return XT


@jit
def transpose_into(X, XT):
    """``XT[:] = X.T`` in 32 by 32 tiles."""
    d, n = X.shape
    for i0 in range(0, d, 32):
        for j0 in range(0, n, 32):
            for i in range(i0, min(i0 + 32, d)):
                for j in range(j0, min(j0 + 32, n)):
                    XT[j, i] = X[i, j]


@jit
def gather_batches(X, indices, out):
    """``out[s, :, j] = X[:, indices[s, j]]``: the batches of several steps, as columns.

    Row by row of X: each row (all of its samples' values of one feature) is read
    while it is in cache for every step's batch, so that data too large for the
    cache is read once from memory for the steps, and no transposed copy of it is
    made (784 by 8192, 64 steps of 128: 8 ms for float32 and 23 for float64, where
    a transpose and then a gather a step took 22 and 67).
    """
    S, b = indices.shape
    for i in range(X.shape[0]):
        for s in range(S):
            for j in range(b):
                out[s, i, j] = X[i, indices[s, j]]


@jit
def weights(params, m, n, offset):
    """Views of W (m by n) and W0 (n by 1) at ``offset`` in params; empty if m is 0."""
    bias = n if m else 0
    W = params[offset : offset + m * n].reshape((m, n))
    return W, params[offset + m * n : offset + m * n + bias].reshape((bias, 1))


@jit(nogil=True)  # sweeps run models of wide layers on threads of their own
def sgd_steps(
    ops, shapes, coefs, params, X, Y, indices, rates, tiny, rule, slots, hyper,
    losses, first, every, hits, Xs, Ys,
):  # fmt: skip
    """Runs ``len(indices)`` SGD steps, updating ``params`` in place.

    Args:
        ops, shapes, coefs, params: The model as ``backends.Packed`` lays it out.
        X (ndarray): The d by N training points, C order.
        Y (ndarray): Their k by N one-hot classes.
        indices (ndarray): An iters by b int64 matrix: the columns of each batch.
        rates (ndarray): 2 by iters, of the model's dtype: each step's step size, and
            the scale of its gradient in Adam (``Optimizer.rates``).
        tiny (scalar): The dtype's smallest normal number, the floor of the NLL's log.
        rule (int): The update's code in ``optimizers.RULES``, for ``update``
            with ``slots`` (2 by P, the optimizer's state, updated in place) and
            ``hyper`` (``Optimizer.hyper``); both None for the notebook's step.
        losses (ndarray): An iters vector that receives each step's loss.
        first (int): The iteration number of the first step.
        every (int or None): Steps whose number ``it`` has ``it % every == 1``
            record (None: none, and no code for them is compiled): ``hits[step]``
            receives the count of training points classified right before the
            step's update, -1 if an output overflowed.
        hits (ndarray): An iters int64 vector for those counts.
        Xs, Ys (ndarray): G by d by b and G by k by b: room for the batches of G steps
            (``gather_size``), gathered together; the caller's, so that it can give
            the same memory to the next call (``runners.GatherBuffers``).

    Returns:
        int: The number of steps taken: all of them, or the index of the first
            step whose loss, gradients or accuracy were not finite (that step
            is not applied).

    """
    check_ops(ops)
    L, b, d = ops.size, indices.shape[1], X.shape[0]
    n = shapes[:, 1]
    # The buffers the steps write, held here while ``steps`` uses them borrowed:
    # gradients like params (one flat loop checks and applies every update), each
    # module's output and gradient by its input.
    out = [np.empty((n[k], b), dtype=X.dtype) for k in range(L)]
    grad = [np.empty((d, b), dtype=X.dtype)] + [np.empty_like(a) for a in out[:-1]]
    return steps(
        ops, shapes, coefs, params, X, Y, indices, rates, tiny, rule, slots, hyper,
        losses, first, every, hits, np.empty_like(params), out, grad, Xs, Ys,
    )  # fmt: skip


@jit(nogil=True)  # sweeps run models of wide layers on threads of their own
def steps(
    ops, shapes, coefs, params, X, Y, indices, rates, tiny, rule, slots, hyper,
    losses, first, every, hits, grads, out, grad, Xs, Ys,
):  # fmt: skip
    """``sgd_steps`` in the buffers it allocated (grads, out, grad, Xs and Ys), which
    this uses ``borrowed``, as it does params: their owners outlive this call."""
    L, S, G = ops.size, indices.shape[0], Xs.shape[0]
    m, n, offset = shapes[:, 0], shapes[:, 1], shapes[:, 2]
    params, grads, Xs, Ys = borrowed(params), borrowed(grads), borrowed(Xs), borrowed(Ys)
    out, grad = [borrowed(a) for a in out], [borrowed(a) for a in grad]
    views = [weights(params, m[k], n[k], offset[k]) for k in range(L)]  # empty for activations
    W, W0 = [v[0] for v in views], [v[1] for v in views]
    views = [weights(grads, m[k], n[k], offset[k]) for k in range(L)]
    dW, dW0 = [v[0] for v in views], [v[1] for v in views]
    limit = overflow_limit(params)  # see below

    record = -1 if every is None else first_record(first, every)
    for it in range(S):
        if every is not None and it == record:  # pruned where every is None: not compiled
            record += every
            hits[it] = correct(ops, shapes, coefs, params, X, Y, ACCURACY_BLOCK)
            if hits[it] < 0:
                return it
        if it % G == 0:
            gather_batches(X, indices[it : it + G], Xs)
            gather_batches(Y, indices[it : it + G], Ys)
        Xb, Yb = Xs[it % G], Ys[it % G]

        for k in range(L):
            module_forward(ops[k], coefs[k], W[k], W0[k], Xb if k == 0 else out[k - 1], out[k])

        losses[it] = nll_total(out[L - 1], Yb, tiny)
        if not np.isfinite(losses[it]):
            return it

        softmax_nll_backward_into(out[L - 1], Yb, grad[L - 1])
        # The notebook's step (hyper None) makes no array of gradients: each W takes
        # its product straight from BLAS (sgd_product_update), once a bound on every
        # gradient (sum|A| sum|G| + sum|G| a module) shows that none overflowed: W2 in
        # float64 11-17% faster (the gradients, 2 MB, written, checked and read back).
        # Where the bound fails, they are made and checked one by one, as the layers do.
        bound = params.dtype.type(0)
        for k in range(L - 2, -1, -1):  # the gradient by the data (k = 0) is not needed
            A = Xb if k == 0 else out[k - 1]
            if hyper is None and ops[k] == LINEAR:
                bound += gradient_bound(A, grad[k + 1])
                if k > 0:
                    matmul_nn_into(W[k], grad[k + 1], grad[k])
            else:
                module_backward(
                    ops[k], coefs[k], W[k], A, out[k], grad[k + 1], dW[k], dW0[k], grad[k], k > 0
                )

        if hyper is None and bound < limit:
            for k in range(L - 1):
                if ops[k] == LINEAR:
                    A = Xb if k == 0 else out[k - 1]
                    sgd_product_update(W[k], W0[k], A, grad[k + 1], rates[0, it], dW[k], dW0[k])
            continue
        if hyper is None:
            for k in range(L - 1):
                if ops[k] == LINEAR:
                    A = Xb if k == 0 else out[k - 1]
                    matmul_nt_into(A, grad[k + 1], dW[k])
                    row_sums_into(grad[k + 1], dW0[k])
        if not all_finite(grads):
            return it
        update(ops, shapes, params, grads, rates[0, it], rates[1, it], rule, slots, hyper)
    return S


@jit
def module_forward(op, c, W, W0, A, out):
    """Module ``op``'s forward pass from A into out (W, W0 read for a Linear one; c, the
    coefficient, for an activation)."""
    if op == LINEAR:
        linear_forward_into(W, W0, A, out)
    elif op == SOFTMAX:
        softmax_forward_into(A, out)
    else:
        forward_into(op, c, A, 0, out, 0, A.size)


@jit
def module_backward(op, c, W, A, out, g, dW, dW0, grad, by_input):
    """Module ``op``'s backward pass from g, the gradient by its output ``out``
    (from input A): into dW and dW0 for a Linear module, and the gradient by A
    into grad, which a Linear module skips unless ``by_input`` (the first
    module's input is the data: nothing needs its gradient)."""
    if op == LINEAR:
        matmul_nt_into(A, g, dW)
        row_sums_into(g, dW0)
        if by_input:
            matmul_nn_into(W, g, grad)
    else:
        backward_into(op, c, out, 0, g, 0, grad, 0, out.size)


@jit
def update(ops, shapes, params, grads, rate, scale, rule, slots, hyper):
    """One step of update rule ``rule`` on every weight (see ``sgd_steps``): the
    notebook's ``params -= rate * grads`` where ``hyper`` is None, else the
    optimizer's kernel on each W (with weight decay) and each W0 (without).

    Numba drops the branch that a None ``hyper`` rules out before it compiles, so
    a loop of the notebook's step compiles none of the optimizers' kernels.
    """
    if hyper is None:
        for i in range(params.size):
            params[i] -= rate * grads[i]
        return
    momentum, beta1, beta2, eps, decay = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]
    zero = hyper.dtype.type(0)  # a Python 0 would promote float32 to float64
    for k in range(ops.size):
        if ops[k] != LINEAR:
            continue
        m, n, base = shapes[k, 0], shapes[k, 1], shapes[k, 2]
        for start, stop, penalty in (
            (base, base + m * n, decay),
            (base + m * n, base + m * n + n, zero),
        ):
            W, G = params[start:stop], grads[start:stop]
            S0, S1 = slots[0, start:stop], slots[1, start:stop]
            if rule == MOMENTUM:
                momentum_update_into(W, S0, G, rate, momentum, penalty)
            elif rule == NESTEROV:
                nesterov_update_into(W, S0, G, rate, momentum, penalty)
            else:
                adam_update_into(W, S0, S1, G, rate, beta1, beta2, eps, penalty, scale)


@jit
def first_record(first, every):
    """The first step from ``first`` on that records (``it % every == 1 % every``), as an
    offset from ``first``; -1 where ``every`` is 0 (no records).

    The loops take ``every=None`` where nothing records: Numba then drops the
    branch that records, and the accuracy loop is not compiled for a run that
    never measures it (the notebook's job from an empty cache: 1.5 s less).

    The loops count down to it instead of taking ``it % every`` at each step: an
    integer division a step was 3% of the notebook's job with records on.
    """
    return (1 - first) % every if every > 0 else -1


@jit(fastmath=FASTMATH)
def all_finite(x):
    """Whether every number of the vector x is finite, in one pass SIMD lanes can share."""
    zero = x.dtype.type(0)
    check = zero
    for i in range(x.size):
        check += x[i] * zero  # 0 for a finite number, NaN for inf or NaN, in any order
    return check == zero


@jit(nogil=True)  # sweeps run models of wide layers on threads of their own
def correct(ops, shapes, coefs, params, X, Y, block):
    """How many of the columns of X the model classifies as their one-hot columns of Y say.

    The forward pass of ``sgd_steps`` (which checked the ops), ``block`` samples at a
    time; the first maximum wins, as in ``class_fun``.

    Returns:
        int: The count, or -1 if an output was not finite (the network overflowed).

    """
    L, N = ops.size, X.shape[1]
    m, n, offset = shapes[:, 0], shapes[:, 1], shapes[:, 2]
    views = [weights(params, m[k], n[k], offset[k]) for k in range(L)]
    W, W0 = [v[0] for v in views], [v[1] for v in views]
    hits = 0
    for start in range(0, N, block):
        b = min(block, N - start)
        A = np.ascontiguousarray(X[:, start : start + b])
        for k in range(L):
            out = np.empty((n[k], b), dtype=X.dtype)
            module_forward(ops[k], coefs[k], W[k], W0[k], A, out)
            A = out
        for j in range(b):
            counted = hit(A, j, b, Y, start + j, N, A.shape[0])
            if counted < 0:
                return -1
            hits += counted
    return hits
