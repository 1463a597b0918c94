"""The compiled training loops: many SGD steps in one call to jitted code.

``sgd_steps`` runs any batch size on the kernels of ``numba.py`` (their
``*_into`` forms, with buffers allocated once), so its arithmetic is the
kernels'. ``column_steps`` is the loop for batches of one sample, the notebook's
SGD: the same arithmetic written for a single column, in one function.
``fastffn.training`` packs a model for them (``pack``) and calls them.
"""

import numpy as np

from ..optimizers import RULES
from . import ACCURACY_BLOCK
from ._numba_cache import jit
from .numba import (
    FASTMATH,
    adam_update_into,
    linear_forward_into,
    matmul_nn_into,
    matmul_nt_into,
    momentum_update_into,
    nesterov_update_into,
    nll_total,
    relu_backward_into,
    relu_forward_into,
    row_sums_into,
    sigmoid_backward_into,
    sigmoid_forward_into,
    simd_tanh,
    softmax_forward_into,
    softmax_nll_backward_into,
    tanh_backward_into,
    tanh_forward_into,
)

#: The loop's op codes, one per kernel family: fastffn.training maps a Linear
#: layer to "linear" and an activation to its kernel name.
OPS = ("linear", "tanh", "relu", "sigmoid", "softmax")
LINEAR, TANH, RELU, SIGMOID, SOFTMAX = range(len(OPS))
MOMENTUM, NESTEROV = RULES.index("momentum"), RULES.index("nesterov")
#: The widest batch that ``sgd_steps`` copies into its columns sample by sample.
GATHER_COLUMNS = 32


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
def weights(params, m, n, offset):
    """Views of W (m by n) and W0 (n by 1) at ``offset`` in params; empty if m is 0."""
    bias = n if m else 0
    W = params[offset : offset + m * n].reshape((m, n))
    return W, params[offset + m * n : offset + m * n + bias].reshape((bias, 1))


@jit
def sgd_steps(
    ops, shapes, params, XT, YT, indices, rates, tiny, rule, slots, hyper,
    losses, first, every, hits,
):  # fmt: skip
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
        rates (ndarray): Each step's step size, of the model's dtype.
        tiny (scalar): The dtype's smallest normal number, the floor of the NLL's log.
        rule (int): The update's code in ``optimizers.RULES``, for ``update``
            with ``slots`` (2 by P, the optimizer's state, updated in place) and
            ``hyper`` (``Optimizer.hyper``); both None for the notebook's step.
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
    # The batch's samples into the d by b columns Xb. Up to GATHER_COLUMNS
    # columns, each sample straight into its column (at 64 by 32, 4x faster than
    # the other way); wider batches copy whole rows of XT into Xs, then transpose
    # it in cache (column by column is 2x slower at 784 by 128; Xs.T read in F
    # order slows the small products' loops).
    Xs = np.empty((b, XT.shape[1]), dtype=dtype)
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
            if b <= GATHER_COLUMNS:
                for i in range(Xb.shape[0]):
                    Xb[i, j] = XT[t, i]
            else:
                Xs[j, :] = XT[t, :]
            for i in range(Yb.shape[0]):
                Yb[i, j] = YT[t, i]
        if b > GATHER_COLUMNS:
            transpose_into(Xs, Xb)

        for k in range(L):
            module_forward(ops[k], W[k], W0[k], Xb if k == 0 else out[k - 1], out[k])

        losses[it] = nll_total(out[L - 1], Yb, tiny)
        if not np.isfinite(losses[it]):
            return it

        softmax_nll_backward_into(out[L - 1], Yb, grad[L - 1])
        for k in range(L - 2, -1, -1):  # the gradient by the data (k = 0) is not needed
            A = Xb if k == 0 else out[k - 1]
            module_backward(ops[k], W[k], A, out[k], grad[k + 1], dW[k], dW0[k], grad[k], k > 0)

        if not all_finite(grads):
            return it
        update(ops, shapes, params, grads, rates[it], rule, slots, hyper)
    return indices.shape[0]


@jit
def module_forward(op, W, W0, A, out):
    """Module ``op``'s forward pass from A into out (W, W0 read for a Linear one)."""
    if op == LINEAR:
        linear_forward_into(W, W0, A, out)
    else:
        activation_forward_into(op, A, out)


@jit
def module_backward(op, W, A, out, g, dW, dW0, grad, by_input):
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
        activation_backward_into(op, out, g, grad)


@jit
def update(ops, shapes, params, grads, rate, rule, slots, hyper):
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
    momentum, beta1, beta2, eps, decay, scale = (
        hyper[0],
        hyper[1],
        hyper[2],
        hyper[3],
        hyper[4],
        hyper[5],
    )
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
    by the widest module (or d); its row 0 receives the sample. Rows and weights are indexed
    in place, not taken as views: a view costs a reference count, which at this
    size is as much as the arithmetic.
    """
    zero, one = params.dtype.type(0), params.dtype.type(1)
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
        elif op == TANH:
            for i in range(n):
                acts[k + 1, i] = simd_tanh(acts[k, i])
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
def column_steps(
    ops, shapes, params, XT, YT, indices, rates, tiny, rule, slots, hyper,
    losses, first, every, hits,
):  # fmt: skip
    """``sgd_steps`` for batches of one sample (indices iters by 1), one column at a time."""
    L = ops.size
    zero, one = params.dtype.type(0), params.dtype.type(1)
    width = XT.shape[1]
    for k in range(L):  # a loop, not shapes[:, 1].max(): that compiles for a second
        width = max(width, shapes[k, 1])
    acts = np.empty((L + 1, width), dtype=params.dtype)  # row k: module k's input
    grad = np.empty((L + 1, width), dtype=params.dtype)  # row k: the gradient by it
    grads = np.empty(params.size if hyper is not None else 0, dtype=params.dtype)
    limit = params.dtype.type(np.finfo(params.dtype).max / 2)  # see column_update

    for it in range(indices.shape[0]):
        if every and (first + it) % every == 1 % every:
            hits[it] = column_correct(ops, shapes, params, XT, YT)
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
                    bound += sa * sg + sg
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
            elif op == TANH:
                for i in range(n):
                    grad[k, i] = (one - acts[k + 1, i] ** 2) * grad[k + 1, i]
            elif op == RELU:
                for i in range(n):
                    grad[k, i] = grad[k + 1, i] * (acts[k + 1, i] != 0)
            else:
                for i in range(n):
                    grad[k, i] = acts[k + 1, i] * (one - acts[k + 1, i]) * grad[k + 1, i]

        if hyper is not None:
            if not all_finite(grads):
                return it
            update(ops, shapes, params, grads, rates[it], rule, slots, hyper)
        elif bound < limit or column_gradients_finite(ops, shapes, acts, grad):
            column_update(ops, shapes, params, acts, grad, rates[it])
        else:
            return it
    return indices.shape[0]


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
def column_correct(ops, shapes, params, XT, YT, block=32):
    """``correct`` with ``column_forward``'s arithmetic, ``block`` samples at a time.

    Each sample's numbers are computed as ``column_forward`` computes them, in
    the same order; the loops run across the block's samples, which lie
    together in memory (``A[at + i, j]``: number i of sample j's input to module
    k, ``at = k * width``), so SIMD lanes take several samples at once (a record
    of the notebook's job: 4.7 us one sample at a time, 2.9 us so).
    """
    L, N, d = ops.size, XT.shape[0], XT.shape[1]
    zero, one = params.dtype.type(0), params.dtype.type(1)
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
                        A[z + np.uint64(i), j] = np.exp(A[x + np.uint64(i), j] - zmax)
                        total += A[z + np.uint64(i), j]
                    for i in range(n):
                        A[z + np.uint64(i), j] /= total
            else:
                for i in range(n):
                    for j in range(b):
                        a = A[x + np.uint64(i), j]
                        if op == TANH:
                            A[z + np.uint64(i), j] = simd_tanh(a)
                        elif op == RELU:
                            A[z + np.uint64(i), j] = max(zero, a)
                        else:
                            A[z + np.uint64(i), j] = one / (one + np.exp(-a))
        out = np.uint64(L * width)
        for j in range(b):
            best, label = 0, 0
            for i in range(YT.shape[1]):
                if not np.isfinite(A[out + np.uint64(i), j]):
                    return -1
                if A[out + np.uint64(i), j] > A[out + np.uint64(best), j]:
                    best = i
                if YT[start + j, i] > YT[start + j, label]:
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
            module_forward(ops[k], W[k], W0[k], A, out)
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
