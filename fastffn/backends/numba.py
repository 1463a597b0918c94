"""The fast backend: Numba-jitted twins of the kernels in ``numpy.py``.

Same names, same signatures, same shapes. Inputs arrive validated (C-contiguous
float32 or float64 of matching dtypes), so each kernel compiles for two
signatures only. ``fastmath`` stays off but for sums along memory and the
small products' loops (``FASTMATH``). Compilation is lazy (first call) and cached on disk in a
per-user directory when it can be written (``_numba_cache``).

Each kernel of the table allocates its result and hands the work to an
``*_into`` function of ``numba_into``, which writes into arrays it is given; the
compiled training loops call those with buffers they allocate once, so every
path runs the same arithmetic.

"""

import functools
import inspect

import numpy as np

from . import numpy as reference
from ._numba_cache import jit
from .numba_into import (
    adam_update_into,
    blas_wins,
    linear_forward_into,
    matmul_nn_into,
    matmul_nt_into,
    momentum_update_into,
    nesterov_update_into,
    nll_total,
    row_sums_into,
    sgd_update_into,
    softmax_backward_into,
    softmax_forward_into,
    softmax_nll_backward_into,
)
from .ops import ELEMENTWISE, backward_into, forward_into

#: From this many float32 numbers, NumPy's SIMD tanh beats the jitted loop
#: (``simd_tanh`` works in float64, half NumPy's lanes).
SIMD_MIN_SIZE = 4096
#: Up to this many numbers, a ufunc call costs less than a jitted one plus its faster loop.
UFUNC_MAX_SIZE = 128


# --- the table's kernels: allocate, then compute into -----------------------------


def linear_forward(W, W0, A):
    """``W.T @ A + W0``: W m by n, W0 n by 1, A m by b; returns n by b.

    From BLAS's size (``blas_wins``) the layers' kernels take NumPy's matmul, the
    BLAS the user's own NumPy code calls: jitted code's np.dot calls SciPy's, and two
    BLAS libraries in turn slow each other, each one's threads still spinning after its
    call (docs/performance.md). The bias is then added in place. Below, the jitted loops.
    """
    if blas_wins.py_func(W.shape[0], W.shape[1], A.shape[1], 1):
        Z = W.T @ A
        Z += W0
        return Z
    return _linear_forward(W, W0, A)


@jit
def _linear_forward(W, W0, A):
    Z = np.empty((W.shape[1], A.shape[1]), dtype=W.dtype)
    linear_forward_into(W, W0, A, Z)
    return Z


def linear_backward(W, A, dLdZ):
    """Returns dLdW (m by n), dLdW0 (n by 1) and dLdA (m by b), summed over b: the
    products in NumPy's BLAS from its size, as ``linear_forward``."""
    if blas_wins.py_func(W.shape[0], W.shape[1], A.shape[1], 1):
        dLdW0 = np.empty((W.shape[1], 1), dtype=W.dtype)
        row_sums_into(dLdZ, dLdW0)
        return A @ dLdZ.T, dLdW0, W @ dLdZ
    return _linear_backward(W, A, dLdZ)


@jit
def _linear_backward(W, A, dLdZ):
    dLdW = np.empty_like(W)
    dLdW0 = np.empty((W.shape[1], 1), dtype=W.dtype)
    dLdA = np.empty_like(A)
    matmul_nt_into(A, dLdZ, dLdW)
    row_sums_into(dLdZ, dLdW0)
    matmul_nn_into(W, dLdZ, dLdA)
    return dLdW, dLdW0, dLdA


@jit
def sgd_update(W, dLdW, lrate):
    """``W - lrate * dLdW`` as a new array; lrate is already of W's dtype."""
    out = np.empty_like(W)
    sgd_update_into(W, dLdW, lrate, out)
    return out


@jit
def momentum_update(W, V, dLdW, lrate, momentum, decay):
    """New W and V after one step of SGD with momentum (see the reference)."""
    W, V = W.copy(), V.copy()
    momentum_update_into(W.reshape(W.size), V.reshape(V.size), dLdW.reshape(W.size), lrate,
                         momentum, decay)  # fmt: skip
    return W, V


@jit
def nesterov_update(W, V, dLdW, lrate, momentum, decay):
    """New W and V after one step of Nesterov's accelerated gradient (see the reference)."""
    W, V = W.copy(), V.copy()
    nesterov_update_into(W.reshape(W.size), V.reshape(V.size), dLdW.reshape(W.size), lrate,
                         momentum, decay)  # fmt: skip
    return W, V


@jit
def adam_update(W, M, V, dLdW, step, beta1, beta2, eps, decay, scale):
    """New W, M and V after one step of Adam (see the reference)."""
    W, M, V = W.copy(), M.copy(), V.copy()
    flat = W.size
    adam_update_into(W.reshape(flat), M.reshape(flat), V.reshape(flat), dLdW.reshape(flat), step,
                     beta1, beta2, eps, decay, scale)  # fmt: skip
    return W, M, V


def _tanh_forward_either(Z):
    """Hyperbolic tangent of an n by b matrix: the jitted loop (``simd_tanh``, in float64
    lanes), or NumPy's ufunc where it wins: for float32, whose SIMD lanes are twice as
    many, and below ``UFUNC_MAX_SIZE`` numbers, where a jitted call's fixed cost loses.
    Where NumPy's tanh is AVX-512 it wins at every size (docs/performance.md) and
    ``tanh_forward`` is the reference's function."""
    if Z.size <= UFUNC_MAX_SIZE or (Z.dtype == np.float32 and Z.size >= SIMD_MIN_SIZE):
        return np.tanh(Z)
    return _tanh_forward(Z)


@functools.cache
def numpy_tanh_in_avx512():
    """Whether NumPy dispatches float64 tanh to an AVX-512 loop here (``X86_V4`` since
    NumPy 2.4, ``AVX512_SKX`` and the like before)."""
    try:
        from numpy.lib.introspect import opt_func_info

        target = opt_func_info("^tanh$", "float64")["tanh"]["dd"]["current"]
    except (ImportError, KeyError, TypeError):  # another NumPy, another CPU family
        return False
    return target == "X86_V4" or target.startswith("AVX512")


@jit
def activation_forward(op, Z, c):
    """Elementwise op ``op`` (``ops``) of an n by b matrix, with coefficient c."""
    A = np.empty_like(Z)
    forward_into(op, c, Z, 0, A, 0, Z.size)
    return A


@jit
def activation_backward(op, A, dLdA, c):
    """The gradient through elementwise op ``op`` from its n by b outputs A."""
    dLdZ = np.empty_like(A)
    backward_into(op, c, A, 0, dLdA, 0, dLdZ, 0, A.size)
    return dLdZ


def _activation_kernels(op, name):
    """``<name>_forward`` and ``<name>_backward`` of elementwise op ``op``: its maps of
    ``ops`` over an n by b matrix, with the reference's docstrings, and its coefficient
    c (LeakyReLU's slope) last where the reference takes one. Made for every op of
    ``ops.ELEMENTWISE``, so an activation added there needs nothing here."""
    twins = getattr(reference, f"{name}_forward"), getattr(reference, f"{name}_backward")
    if len(inspect.signature(twins[0]).parameters) > 1:  # takes its coefficient

        @jit
        def forward(Z, c):
            return activation_forward(op, Z, c)

        @jit
        def backward(A, dLdA, c):
            return activation_backward(op, A, dLdA, c)

    else:

        @jit
        def forward(Z):
            return activation_forward(op, Z, Z.dtype.type(0))

        @jit
        def backward(A, dLdA):
            return activation_backward(op, A, dLdA, A.dtype.type(0))

    kernels = {}
    for kernel, twin in zip((forward, backward), twins, strict=True):
        kernel.__doc__ = twin.__doc__
        kernels[twin.__name__] = kernel
    return kernels


for _op, _name in ELEMENTWISE.items():
    globals().update(_activation_kernels(_op, _name))
_tanh_forward = globals().pop("tanh_forward")  # the loop, where it beats NumPy's (above)
#: Where NumPy's tanh wins at every size, the reference's own function: a tie by
#: construction, without the choice's cost.
tanh_forward = reference.tanh_forward if numpy_tanh_in_avx512() else _tanh_forward_either


@jit
def softmax_forward(Z):
    """Column-wise softmax of n by b logits (float32 in float32 lanes: ``exp_lanes``)."""
    A = np.empty_like(Z)
    softmax_forward_into(Z, A)
    return A


@jit
def softmax_backward(A, dLdA):
    """Gradient through softmax from its n by b outputs A, in O(n * b)."""
    dLdZ = np.empty_like(A)
    softmax_backward_into(A, dLdA, dLdZ)
    return dLdZ


@jit
def softmax_nll_backward(Ypred, Y):
    """Gradient of NLL by the logits of the softmax that gave Ypred (n by b)."""
    dLdZ = np.empty_like(Ypred)
    softmax_nll_backward_into(Ypred, Y, dLdZ)
    return dLdZ


@jit
def nll_forward(Ypred, Y):
    """Negative log-likelihood summed over an n by b batch: the log of the predictions of
    nonzero targets only (one a column for one-hot Y), not of all n * b as NumPy's."""
    return nll_total(Ypred, Y, np.finfo(Ypred.dtype).tiny)


@jit
def nll_backward(Ypred, Y):
    """``-Y / Ypred``, the NLL gradient for n by b predictions (Ypred at least tiny)."""
    return -Y / np.maximum(Ypred, np.finfo(Ypred.dtype).tiny)


@jit
def class_fun(Ypred):
    """Index of each column's largest entry (the first on ties), shape (b,)."""
    n, b = Ypred.shape
    out = np.zeros(b, dtype=np.intp)
    for j in range(b):
        for i in range(1, n):
            if Ypred[i, j] > Ypred[out[j], j]:
                out[j] = i
    return out
