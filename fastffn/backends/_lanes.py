"""Arithmetic on rows of LANES models, for ``numba_lanes``.

A row of a group's arrays (a weight, an activation, a gradient) holds one number
for each of the LANES models trained side by side. ``row`` loads one into a
tuple, the functions below compute on tuples model by model, ``put`` stores one
back. All the loads of a row come before any of its stores, so LLVM's SLP
vectorizer may pack each tuple into SIMD registers (two of AVX2's for float64)
without proving that the arrays do not overlap, which Numba does not tell it.
Each model's operations are those of the one-model loop, in the same order.

Written out lane by lane: a function passed to a generic map would make every
caller uncachable (Numba keeps the function object as a dynamic global).
"""

import numpy as np

from ._numba_cache import jit
from .numba_into import FASTMATH, module_bound, softmax_nll_grad
from .simd import simd_exp


@jit
def row(V, r):
    """``V[r]``'s LANES numbers (V is rows by LANES)."""
    r = np.uint64(r)  # an index that cannot be negative: no wraparound code
    return V[r, 0], V[r, 1], V[r, 2], V[r, 3], V[r, 4], V[r, 5], V[r, 6], V[r, 7]


@jit
def items(v):
    """The LANES numbers of vector v as a tuple."""
    return v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]


@jit
def put(V, r, t):
    """Stores the LANES numbers of t in ``V[r]``."""
    r = np.uint64(r)
    V[r, 0], V[r, 1], V[r, 2], V[r, 3], V[r, 4], V[r, 5], V[r, 6], V[r, 7] = t


@jit
def gather(V, t, i):
    """``V[t[q], i]`` for each model q: column i of each model's own row t[q]."""
    a, b, c, d, e, f, g, h = t
    return V[a, i], V[b, i], V[c, i], V[d, i], V[e, i], V[f, i], V[g, i], V[h, i]


@jit
def lanes(x):
    """x for every model."""
    return x, x, x, x, x, x, x, x


@jit(fastmath=FASTMATH)
def add(a, b):
    """``a + b``, model by model."""
    a0, a1, a2, a3, a4, a5, a6, a7 = a
    b0, b1, b2, b3, b4, b5, b6, b7 = b
    return a0 + b0, a1 + b1, a2 + b2, a3 + b3, a4 + b4, a5 + b5, a6 + b6, a7 + b7


@jit(fastmath=FASTMATH)
def sub(a, b):
    """``a - b``, model by model."""
    a0, a1, a2, a3, a4, a5, a6, a7 = a
    b0, b1, b2, b3, b4, b5, b6, b7 = b
    return a0 - b0, a1 - b1, a2 - b2, a3 - b3, a4 - b4, a5 - b5, a6 - b6, a7 - b7


@jit(fastmath=FASTMATH)
def mul(a, b):
    """``a * b``, model by model."""
    a0, a1, a2, a3, a4, a5, a6, a7 = a
    b0, b1, b2, b3, b4, b5, b6, b7 = b
    return a0 * b0, a1 * b1, a2 * b2, a3 * b3, a4 * b4, a5 * b5, a6 * b6, a7 * b7


@jit(fastmath=FASTMATH)
def div(a, b):
    """``a / b``, model by model."""
    a0, a1, a2, a3, a4, a5, a6, a7 = a
    b0, b1, b2, b3, b4, b5, b6, b7 = b
    return a0 / b0, a1 / b1, a2 / b2, a3 / b3, a4 / b4, a5 / b5, a6 / b6, a7 / b7


@jit(fastmath=FASTMATH)
def fma(a, b, c):
    """``a * b + c``, model by model (one rounding where the machine fuses them)."""
    a0, a1, a2, a3, a4, a5, a6, a7 = a
    b0, b1, b2, b3, b4, b5, b6, b7 = b
    c0, c1, c2, c3, c4, c5, c6, c7 = c
    return (
        a0 * b0 + c0, a1 * b1 + c1, a2 * b2 + c2, a3 * b3 + c3,
        a4 * b4 + c4, a5 * b5 + c5, a6 * b6 + c6, a7 * b7 + c7,
    )  # fmt: skip


@jit
def maximum(a, b):
    """``max(a, b)``, model by model (Python's max: its NaN rules, argument order kept)."""
    a0, a1, a2, a3, a4, a5, a6, a7 = a
    b0, b1, b2, b3, b4, b5, b6, b7 = b
    return (
        max(a0, b0), max(a1, b1), max(a2, b2), max(a3, b3),
        max(a4, b4), max(a5, b5), max(a6, b6), max(a7, b7),
    )  # fmt: skip


@jit
def absolute(a):
    """``abs(a)``, model by model."""
    a0, a1, a2, a3, a4, a5, a6, a7 = a
    return abs(a0), abs(a1), abs(a2), abs(a3), abs(a4), abs(a5), abs(a6), abs(a7)


@jit
def below(a, b):
    """Whether ``a < b`` for every model (False where a is NaN)."""
    a0, a1, a2, a3, a4, a5, a6, a7 = a
    b0, b1, b2, b3, b4, b5, b6, b7 = b
    return (
        (a0 < b0) & (a1 < b1) & (a2 < b2) & (a3 < b3)
        & (a4 < b4) & (a5 < b5) & (a6 < b6) & (a7 < b7)
    )  # fmt: skip


@jit
def exp(a):
    """``simd_exp``, model by model."""
    a0, a1, a2, a3, a4, a5, a6, a7 = a
    return (
        simd_exp(a0), simd_exp(a1), simd_exp(a2), simd_exp(a3),
        simd_exp(a4), simd_exp(a5), simd_exp(a6), simd_exp(a7),
    )  # fmt: skip


@jit(fastmath=FASTMATH)
def module_bounds(sa, sg):
    """``module_bound``, model by model."""
    a0, a1, a2, a3, a4, a5, a6, a7 = sa
    g0, g1, g2, g3, g4, g5, g6, g7 = sg
    return (
        module_bound(a0, g0), module_bound(a1, g1), module_bound(a2, g2), module_bound(a3, g3),
        module_bound(a4, g4), module_bound(a5, g5), module_bound(a6, g6), module_bound(a7, g7),
    )  # fmt: skip


@jit(fastmath=FASTMATH)
def softmax_nll_grads(q, total, t):
    """``softmax_nll_grad``, model by model."""
    q0, q1, q2, q3, q4, q5, q6, q7 = q
    s0, s1, s2, s3, s4, s5, s6, s7 = total
    t0, t1, t2, t3, t4, t5, t6, t7 = t
    return (
        softmax_nll_grad(q0, s0, t0), softmax_nll_grad(q1, s1, t1),
        softmax_nll_grad(q2, s2, t2), softmax_nll_grad(q3, s3, t3),
        softmax_nll_grad(q4, s4, t4), softmax_nll_grad(q5, s5, t5),
        softmax_nll_grad(q6, s6, t6), softmax_nll_grad(q7, s7, t7),
    )  # fmt: skip
