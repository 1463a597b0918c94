"""Exp and tanh in code that loops vectorise, for the kernels (``numba.py``), the
one-sample loop (``numba_column.py``) and the sweeps' lanes (``_lanes.py``);
tests/test_kernels.py holds each to libm's or NumPy's within a few ulp over its
whole range.
"""

import math

import numpy as np
from numba import types
from numba.extending import overload

from ._numba_cache import jit

# --- exp in SIMD lanes ---------------------------------------------------------

# exp(x) = 2**k * exp(r) with k = round(x / ln 2) and |r| <= ln(2) / 2: r by Cody
# and Waite's two-part ln 2 (exact products, so no reassoc here), exp(r) by its
# Taylor polynomial to degree 13, and 2**k written into a float's exponent bits
# as two factors (2**k alone is not a normal float below k = -1022).
_EXP_TAYLOR = tuple(1.0 / math.factorial(i) for i in range(13, -1, -1))
_EXP_MAX, _EXP_MIN = 709.782712893384, -745.1332191019412  # exp's float64 range
_LN2_HI, _LN2_LO = 6.93145751953125e-1, 1.42860682030941723212e-6


@jit(fastmath={"contract"})  # as its callers: the same fused operations as inline
def ln2_reduction(y):
    """k = round(y / ln 2) and r = y - k ln 2, |r| <= ln(2) / 2, without rounding error
    in k ln 2 (Cody and Waite: k times each part of ln 2 is exact)."""
    k = np.floor(y * 1.4426950408889634 + 0.5)
    return k, (y - k * _LN2_HI) - k * _LN2_LO


@jit(fastmath={"contract"})
def simd_exp(x):
    """``exp(x)`` in float64 within 2 ulp of libm's, in code that loops vectorise.

    Numba calls libm's ``exp`` one number at a time (its SIMD library, SVML, is
    gone since 0.62); a loop over this runs in SIMD lanes, 2-5x faster.
    Overflow gives inf, underflow 0 (denormals on the way), NaN stays NaN.
    """
    x = np.float64(x)
    clipped = x if x > _EXP_MIN else _EXP_MIN  # NaN too: the ends and NaN are set at the end
    k, r = ln2_reduction(clipped if clipped < _EXP_MAX else _EXP_MAX)
    p = 0.0
    for c in _EXP_TAYLOR:  # floats alike: a plain loop LLVM unrolls, no literal_unroll (0.2 s)
        p = p * r + c
    k1 = np.int64(k) >> 1
    k2 = np.int64(k) - k1
    y = p * np.int64((k1 + 1023) << 52).view(np.float64)
    y *= np.int64((k2 + 1023) << 52).view(np.float64)
    # Selects, not branches: LLVM packs neighbouring calls into SIMD lanes (the
    # sweep's 8 models), which a branch would keep scalar.
    y = np.inf if x > _EXP_MAX else y
    y = 0.0 if x < _EXP_MIN else y
    return x if x != x else y


# float32: the same reduction with a float32 split of ln 2 (k ln 2 still exact) and
# the Taylor polynomial to degree 7, within 1 ulp of the exact exp: 8 numbers a
# vector where simd_exp takes 4.
_EXPF_TAYLOR = tuple(np.float32(1.0 / math.factorial(i)) for i in range(7, -1, -1))
_EXPF_MAX, _EXPF_MIN = np.float32(88.72283), np.float32(-103.97208)  # exp's float32 range
_LN2F_HI, _LN2F_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)


@jit(fastmath={"contract"})
def simd_expf(x):
    """``exp(x)`` for a float32 x in float32, as ``simd_exp``: within 2 ulp of NumPy's."""
    clipped = x if x > _EXPF_MIN else _EXPF_MIN
    clipped = clipped if clipped < _EXPF_MAX else _EXPF_MAX
    k = np.floor(clipped * np.float32(1.44269504) + np.float32(0.5))
    r = (clipped - k * _LN2F_HI) - k * _LN2F_LO
    p = np.float32(0)
    for c in _EXPF_TAYLOR:
        p = p * r + c
    k1 = np.int32(k) >> 1
    k2 = np.int32(k) - k1
    y = p * np.int32((k1 + 127) << 23).view(np.float32)
    y *= np.int32((k2 + 127) << 23).view(np.float32)
    y = np.float32(np.inf) if x > _EXPF_MAX else y
    y = np.float32(0) if x < _EXPF_MIN else y
    return x if x != x else y


def exp_lanes(x):
    """``exp(x)`` in SIMD lanes of x's own type: ``simd_expf`` for float32, else
    ``simd_exp`` (jitted code only)."""
    raise TypeError("exp_lanes is for jitted code")


@overload(exp_lanes)
def _exp_lanes(x):
    return (lambda x: simd_expf(x)) if x == types.float32 else (lambda x: simd_exp(x))


# tanh(x) = t / (t + 2) with t = expm1(2|x|), its sign set after: no cancellation
# anywhere. expm1(y) = 2**k expm1(r) + (2**k - 1) with r as in simd_exp and
# expm1(r) = r times a Taylor polynomial, accurate however small r is.
_EXPM1_TAYLOR = tuple(1.0 / math.factorial(i) for i in range(14, 0, -1))
_TANH_ONE = 22.0  # tanh(22) rounds to 1 in float64; larger |x| would overflow t


@jit(fastmath={"contract"})
def simd_tanh(x):
    """``tanh(x)`` in float64 within 3 ulp of libm's, in code that loops vectorise.

    1.6x NumPy's ``np.tanh`` for float64 at 256 by 128 (``tanh_forward``);
    ±0, ±inf and NaN come out as from ``np.tanh``.
    """
    x = np.float64(x)
    size = abs(x)
    k, r = ln2_reduction(2.0 * (size if size < _TANH_ONE else _TANH_ONE))  # NaN: set at the end
    p = 0.0
    for c in _EXPM1_TAYLOR:
        p = p * r + c
    scale = np.int64((np.int64(k) + 1023) << 52).view(np.float64)  # 2**k, 0 <= k <= 64
    t = scale * (r * p) + (scale - 1.0)
    y = math.copysign(t / (t + 2.0), x)
    return x if x != x else y  # a select, as in simd_exp
