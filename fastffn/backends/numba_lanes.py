"""Many models of one architecture trained at once: the compiled loop of ``fastffn.sweep``.

Every array has the model axis last, so that each weight, activation and
gradient of LANES models lies together in memory and one SIMD instruction
updates several models (``_lanes``); groups of models run on separate threads
(``sweep_groups.train_here``). Each model's arithmetic is the one-model loop's,
summed in the same order along a column: its numbers are those of training it
alone, within the tolerance. The loop reads the architecture (``backends.Packed``)
at run time, so one compiled loop serves every width and depth; the activations
are ``ops``' maps over the flat rows of all the lanes. It is compiled at install
(``aot``); its parts take their arrays borrowed (no reference counts) and each
row of a group starts a cache line.

Shapes (M = LANES models a group, P weights a model, b samples a batch, R records):

- ``params``: P by M, updated in place;
- ``indices``: iters by b by M, the columns each model draws;
- ``lrates``: M, of the model's dtype;
- ``rec_losses``, ``rec_hits``: R by M, the loss and the count of training points
  classified right at each record of the steps of the call (iteration ``it`` with
  ``it % every == 1 % every``);
- ``stopped``: M int64, the iteration at which a model's loss, gradients or
  outputs stopped being finite (that step not applied, the model's weights kept
  from before it), else -1.
"""

import numpy as np

from . import LANES
from ._lanes import (
    absolute,
    add,
    below,
    div,
    exp,
    fma,
    gather,
    items,
    lanes,
    maximum,
    module_bounds,
    mul,
    put,
    row,
    softmax_nll_grads,
    sub,
)
from ._numba_cache import jit
from ._numba_private import borrowed
from .numba_into import FASTMATH, hit, nll_span, overflow_limit
from .numba_loop import first_record
from .ops import LINEAR, SOFTMAX, backward_into, check_ops, forward_into

__all__ = ["LANES", "group_steps"]

#: Training points whose outputs ``correct`` computes together.
POINTS = 4


@jit(fastmath=FASTMATH, inline="always")  # a call passed 3 arrays: a third of a small forward
def matvec(V, first, so, sc, X, x0, Y, y0, nout, nin, zero, bias=-1):
    """Sets ``Y[y0 + o]`` to the sum over c < nin, c ascending, of ``V[first + o so + c sc]
    X[x0 + c]``, for o < nout: a product with a weight matrix's rows (so, sc = 1, n) or
    columns (n, 1), plus ``V[bias + o]`` after the sum where bias >= 0 (W0: no pass of its
    own). Four outputs at a time (four sums in flight, each row of X loaded once for them),
    the rest one by one."""
    fours = nout // 4 * 4
    for o in range(0, fours, 4):
        s0 = s1 = s2 = s3 = zero
        for c in range(nin):
            x, v = row(X, x0 + c), first + o * so + c * sc
            s0 = fma(row(V, v), x, s0)
            s1 = fma(row(V, v + so), x, s1)
            s2 = fma(row(V, v + 2 * so), x, s2)
            s3 = fma(row(V, v + 3 * so), x, s3)
        if bias >= 0:  # then W0's, after the sum, as the one-model loop adds it
            s0, s1 = add(s0, row(V, bias + o)), add(s1, row(V, bias + o + 1))
            s2, s3 = add(s2, row(V, bias + o + 2)), add(s3, row(V, bias + o + 3))
        put(Y, y0 + o, s0)
        put(Y, y0 + o + 1, s1)
        put(Y, y0 + o + 2, s2)
        put(Y, y0 + o + 3, s3)
    for o in range(fours, nout):
        s = zero
        for c in range(nin):
            s = fma(row(V, first + o * so + c * sc), row(X, x0 + c), s)
        if bias >= 0:
            s = add(s, row(V, bias + o))
        put(Y, y0 + o, s)


@jit(fastmath=FASTMATH)
def forward(ops, shapes, coefs, params, acts, samples, width):
    """The forward pass of ``samples`` samples, every model: module k's input for sample j
    in the rows from ``(k samples + j) width`` of ``acts``."""
    zero = lanes(params.dtype.type(0))
    for k in range(ops.size):
        op, m, n, base = ops[k], shapes[k, 0], shapes[k, 1], shapes[k, 2]
        for j in range(samples):
            a, z = (k * samples + j) * width, ((k + 1) * samples + j) * width
            if op == LINEAR:  # W.T @ a + W0, as the one-model loop sums it
                matvec(params, base, 1, n, acts, a, acts, z, n, m, zero, base + m * n)
            elif op == SOFTMAX:  # shifted by each model's maximum
                top = row(acts, a)
                for i in range(1, n):
                    top = maximum(top, row(acts, a + i))
                total = zero
                for i in range(n):
                    put(acts, z + i, exp(sub(row(acts, a + i), top)))
                    total = add(total, row(acts, z + i))  # as stored: in the model's dtype
                for i in range(n):
                    put(acts, z + i, div(row(acts, z + i), total))
            else:  # the rows of every lane are one flat span
                forward_into(op, coefs[k], acts, a * LANES, acts, z * LANES, n * LANES)


@jit(fastmath=FASTMATH)
def weight_gradient(acts, grad, a, g, samples, width):
    """One weight's gradient, summed over the samples in order (as the one-model loop sums
    it): rows ``a`` of acts and ``g`` of grad for sample 0, ``width`` rows apart."""
    d = mul(row(acts, a), row(grad, g))
    for j in range(1, samples):
        d = fma(row(acts, a + j * width), row(grad, g + j * width), d)
    return d


@jit(fastmath=FASTMATH)
def weight_gradients4(acts, grad, a, g, samples, width):
    """``weight_gradient`` of four weights side by side (grad rows g to g + 3): four sums in
    flight, each row of acts loaded once for them."""
    x = row(acts, a)
    d0, d1 = mul(x, row(grad, g)), mul(x, row(grad, g + 1))
    d2, d3 = mul(x, row(grad, g + 2)), mul(x, row(grad, g + 3))
    for j in range(1, samples):
        x, h = row(acts, a + j * width), g + j * width
        d0, d1 = fma(x, row(grad, h), d0), fma(x, row(grad, h + 1), d1)
        d2, d3 = fma(x, row(grad, h + 2), d2), fma(x, row(grad, h + 3), d3)
    return d0, d1, d2, d3


@jit(fastmath=FASTMATH)
def bias_gradient(grad, g, samples, width):
    """One bias's gradient: row ``g`` of grad summed over the samples in order."""
    d = row(grad, g)
    for j in range(1, samples):
        d = add(d, row(grad, g + j * width))
    return d


@jit(fastmath=FASTMATH)
def update(ops, shapes, params, acts, grad, samples, width, rate):
    """Each Linear module's W -= rate a g.T and W0 -= rate g summed over the batch."""
    for k in range(ops.size - 2, -1, -1):
        if ops[k] != LINEAR:
            continue
        m, n, base = shapes[k, 0], shapes[k, 1], shapes[k, 2]
        a0, g0 = k * samples * width, (k + 1) * samples * width  # sample 0's rows
        if samples == 1:  # a rank-one step: each row's a loaded once for its n weights
            for r in range(m):
                x, w = row(acts, a0 + r), base + r * n
                for i in range(n):
                    d = mul(x, row(grad, g0 + i))
                    put(params, w + i, sub(row(params, w + i), mul(rate, d)))
        else:
            fours = n // 4 * 4
            for r in range(m):
                w = base + r * n
                for i in range(0, fours, 4):
                    d0, d1, d2, d3 = weight_gradients4(acts, grad, a0 + r, g0 + i, samples, width)
                    put(params, w + i, sub(row(params, w + i), mul(rate, d0)))
                    put(params, w + i + 1, sub(row(params, w + i + 1), mul(rate, d1)))
                    put(params, w + i + 2, sub(row(params, w + i + 2), mul(rate, d2)))
                    put(params, w + i + 3, sub(row(params, w + i + 3), mul(rate, d3)))
                for i in range(fours, n):
                    d = weight_gradient(acts, grad, a0 + r, g0 + i, samples, width)
                    put(params, w + i, sub(row(params, w + i), mul(rate, d)))
        w = base + m * n
        for i in range(n):
            d = bias_gradient(grad, g0 + i, samples, width)
            put(params, w + i, sub(row(params, w + i), mul(rate, d)))


@jit  # no fastmath: reassociated, (a g) 0 would be a (g 0), 0 where a g overflows
def gradients_finite(ops, shapes, acts, grad, samples, width):
    """For each model, whether every weight gradient (``update``'s) is finite."""
    check = np.zeros(LANES, dtype=acts.dtype)  # stays 0 while every gradient is finite
    for k in range(ops.size - 2, -1, -1):
        if ops[k] != LINEAR:
            continue
        m, n = shapes[k, 0], shapes[k, 1]
        a0, g0 = k * samples * width, (k + 1) * samples * width
        for i in range(n):
            for r in range(m + 1):  # row m: the bias
                if r < m:
                    d = weight_gradient(acts, grad, a0 + r, g0 + i, samples, width)
                else:
                    d = bias_gradient(grad, g0 + i, samples, width)
                for q in range(LANES):
                    check[q] += d[q] * 0  # NaN for inf or NaN
    return check == 0


@jit(fastmath=FASTMATH)
def backward(ops, shapes, coefs, params, acts, grad, samples, width):
    """The gradient by each module's input, from the gradient at the last module's input
    (the fused SoftMax and NLL one) down, before any weight changes. Returns, summed over
    the Linear modules, ``sum|a| sum|g| + sum|g|`` (its input a, the gradient g by its
    output), which bounds every |dW| and |dW0|, and is NaN where a or g is not finite."""
    zero = lanes(params.dtype.type(0))
    bound = zero
    for k in range(ops.size - 2, -1, -1):
        op, m, n, base = ops[k], shapes[k, 0], shapes[k, 1], shapes[k, 2]
        if op == LINEAR:
            sa = sg = zero
            for j in range(samples):
                a, g = (k * samples + j) * width, ((k + 1) * samples + j) * width
                for r in range(m):
                    sa = add(sa, absolute(row(acts, a + r)))
                for i in range(n):
                    sg = add(sg, absolute(row(grad, g + i)))
            bound = add(bound, module_bounds(sa, sg))
            if k > 0:  # W g, the gradient by the module's input
                for j in range(samples):
                    a, g = (k * samples + j) * width, ((k + 1) * samples + j) * width
                    matvec(params, base, n, 1, grad, g, grad, a, m, n, zero)
        else:  # the gradient at the output's rows into the input's
            for j in range(samples):
                a, g = (k * samples + j) * width, ((k + 1) * samples + j) * width
                backward_into(op, coefs[k], acts, g * LANES, grad, g * LANES, grad, a * LANES,
                              n * LANES)  # fmt: skip
    return bound


@jit(fastmath=FASTMATH)
def correct(ops, shapes, coefs, params, XT, YT, hits):
    """Into hits (M,): how many training points each model classifies right (the first
    maximum wins), -1 if one of its outputs was not finite; POINTS at a time."""
    L, d, classes = ops.size, XT.shape[1], YT.shape[1]
    width = max(d, shapes[:, 1].max())
    hits[:] = 0
    finite = np.ones(LANES, dtype=np.bool_)
    # Zeros: the points past the last when fewer are left are computed, not counted.
    acts = np.zeros(((L + 1) * POINTS * width, LANES), dtype=params.dtype)
    for start in range(0, XT.shape[0], POINTS):
        cols = min(POINTS, XT.shape[0] - start)
        for j in range(cols):
            for i in range(d):
                put(acts, j * width + i, lanes(XT[start + j, i]))
        forward(ops, shapes, coefs, params, acts, POINTS, width)
        for j in range(cols):
            t, out = start + j, (L * POINTS + j) * width
            for q in range(LANES):
                counted = hit(acts, out * LANES + q, LANES, YT, t * classes, 1, classes)
                if counted < 0:
                    finite[q] = False
                else:
                    hits[q] += counted
    for q in range(LANES):
        if not finite[q]:
            hits[q] = -1


@jit
def aligned_rows(rows, like):
    """An empty rows by LANES array of ``like``'s dtype from a multiple of 64 bytes: each
    row one cache line (float64), not parts of two."""
    size = like.itemsize
    buffer = np.empty((rows + 64 // size) * LANES, dtype=like.dtype)
    start = (-buffer.ctypes.data % 64) // size
    return buffer[start : start + rows * LANES].reshape((rows, LANES))


@jit
def step_sizes(lrates, stopped):
    """Each model's step size, 0 once stopped."""
    rates = lrates.copy()
    for q in range(LANES):
        if stopped[q] >= 0:
            rates[q] = 0
    return items(rates)


@jit
def stop(q, params, kept):
    """Keeps model q's weights aside (in kept) and zeroes its column, which keeps its lane
    finite (step size 0) until they are put back."""
    kept[:, q] = params[:, q]
    params[:, q] = 0


@jit(fastmath=FASTMATH, nogil=True, slp_vectorize=True)
def group_steps(ops, shapes, coefs, params, XT, YT, indices, lrates, tiny, first, every,
                rec_losses, rec_hits, stopped):  # fmt: skip
    """Steps first to first + len(indices) of one group (the module docstring's arrays).

    The weights are updated in place once every gradient of the step is known.
    No model's weight gradient can have overflowed where the bound ``backward``
    returns stays below half the dtype's largest number; only where it does not
    are the gradients checked one by one, as the one-model loop checks them. A
    model whose gradients, loss or outputs were not finite stops (``stop``); its
    weights are back in params at the end. The loss is only computed where it is
    recorded: it is not finite only where an output is not, and then neither is a
    gradient.
    """
    check_ops(ops)
    dtype = params.dtype
    L, b, d, classes = ops.size, indices.shape[1], XT.shape[1], YT.shape[1]
    width = max(d, shapes[:, 1].max())  # the most numbers at a module's input or output
    zero = lanes(dtype.type(0))
    limit = lanes(overflow_limit(params))
    rows = (L + 1) * b * width  # each module's input, and the output, for each sample
    acts, grad = aligned_rows(rows, params), aligned_rows(rows, params)
    kept = np.empty_like(params)
    hits = np.empty(LANES, dtype=np.int64)
    # The helpers' arrays without reference counts: each call would count one (an atomic add)
    # for each array it takes, a third of a small network's step.
    model = borrowed(ops), borrowed(shapes), borrowed(coefs), borrowed(params)
    acts_b, grad_b, steps = borrowed(acts), borrowed(grad), borrowed(indices)
    for q in range(LANES):
        if stopped[q] >= 0:
            stop(q, params, kept)
    rate = step_sizes(lrates, stopped)
    out0, last0 = L * b * width, (L - 1) * b * width  # sample 0's output and softmax input

    next_record = first_record(first, every)
    done = (first + next_record - 1 % every) // every if every else 0  # records before this call
    for s in range(indices.shape[0]):
        it = first + s
        record = s == next_record
        if record:
            next_record += every
            correct(ops, shapes, coefs, params, XT, YT, hits)
            for q in range(LANES):
                if hits[q] < 0 and stopped[q] < 0:
                    stopped[q] = it
                    stop(q, params, kept)
                rec_hits[(it - 1 % every) // every - done, q] = hits[q]
            rate = step_sizes(lrates, stopped)
        for j in range(b):
            t = row(steps[s], j)
            for i in range(d):
                put(acts, j * width + i, gather(XT, t, i))
        forward(*model, acts_b, b, width)

        if record:  # NLL, one model at a time (a scalar log)
            for q in range(LANES):
                loss = dtype.type(0)
                for j in range(b):
                    loss += nll_span(acts, (out0 + j * width) * LANES + q, LANES, YT,
                                     indices[s, j, q] * classes, 1, classes, tiny)  # fmt: skip
                rec_losses[(it - 1 % every) // every - done, q] = loss
        for j in range(b):  # SoftMax and NLL differentiated together: p sum(y) - y
            t, out, g = row(steps[s], j), out0 + j * width, last0 + j * width
            total = zero
            for i in range(classes):
                total = add(total, gather(YT, t, i))
            for i in range(classes):
                put(grad, g + i, softmax_nll_grads(row(acts, out + i), total, gather(YT, t, i)))

        bound = backward(*model, acts_b, grad_b, b, width)
        if not below(bound, limit):  # rare: check the gradients one by one
            finite = gradients_finite(model[0], model[1], acts_b, grad_b, b, width)
            for q in range(LANES):
                if stopped[q] < 0 and not finite[q]:
                    stopped[q] = it
                    kept[:, q] = params[:, q]
        update(model[0], model[1], model[3], acts_b, grad_b, b, width, rate)
        for q in range(LANES):
            if stopped[q] == it:  # stopped in this step: zero from now on
                params[:, q] = 0
                rate = step_sizes(lrates, stopped)
    for q in range(LANES):
        if stopped[q] >= 0:
            params[:, q] = kept[:, q]
