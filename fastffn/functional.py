"""The kernels as plain functions on arrays: fastffn's public kernel API.

Arrays are features by batch (each column a sample), float32 or float64, as
in the notebook. Every function checks its inputs once, here, and then calls
the chosen backend's kernel unchecked: on ``"numba"`` the very kernels the
compiled training loops run, on ``"numpy"`` the notebook's reference.

- Array-likes, ints and bools are converted as the layers convert them
  (to float64; float16 to float32; any order to C order).
- A shape that does not fit raises ``ValueError``; float32 beside float64
  raises ``TypeError`` naming both arguments.
- NaN and inf are computed with, as NumPy does: they show in the result.
- ``backend=None`` is the current default (``fastffn.set_backend``,
  ``fastffn.use_backend``). A function that returns one array takes ``out=``,
  a C-contiguous array of the result's shape and dtype, which it fills and returns.

Example:
    >>> import numpy as np
    >>> from fastffn import functional as F
    >>> A = np.ones((3, 2)); W = np.ones((3, 4)); W0 = np.zeros((4, 1))
    >>> F.relu(F.linear(A, W, W0)).shape
    (4, 2)
"""

import numpy as np

from . import backends
from ._validation import as_matrix, as_real

__all__ = [
    "linear",
    "linear_backward",
    "tanh",
    "tanh_backward",
    "relu",
    "relu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "sigmoid",
    "sigmoid_backward",
    "softmax",
    "softmax_backward",
    "nll",
    "softmax_nll_backward",
]

#: The dtypes taken as they are; ``is`` against these is the cheapest check of all.
_FLOAT64, _FLOAT32 = np.dtype(np.float64), np.dtype(np.float32)


def _matrix(name, x):
    """x as a C-contiguous 2-D float32 or float64 array (the layers' conversions)."""
    if (
        x.__class__ is np.ndarray
        and x.ndim == 2
        and (x.dtype is _FLOAT64 or x.dtype is _FLOAT32)
        and x.flags.c_contiguous
    ):
        return x  # the common case, first and inline: at 10 by 1 every 50 ns shows
    return as_matrix(name, x, finite=False)


def _same(names, arrays, shapes):
    """Raises unless the arrays share one dtype and, where ``shapes`` gives them, their shapes."""
    first = arrays[0]
    for name, x, shape in zip(names, arrays, shapes, strict=True):
        if x.dtype != first.dtype:
            raise TypeError(
                f"{names[0]} and {name} must have one dtype, got {first.dtype} and {x.dtype}"
            )
        if shape is not None and x.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {x.shape}")


def _out(out, result):
    """``result`` written into ``out``, which is returned."""
    if not (
        type(out) is np.ndarray
        and out.shape == result.shape
        and out.dtype == result.dtype
        and out.flags.c_contiguous
        and out.flags.writeable
    ):
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else repr(out)
        raise ValueError(
            f"out must be a writeable C-contiguous {result.dtype} array of shape "
            f"{result.shape}, got {got}"
        )
    out[...] = result
    return out


def _elementwise(kernel, Z, out, backend, *slope):
    """Forward kernel ``kernel`` of Z (n by b), with LeakyReLU's slope where given."""
    Z = _matrix("Z", Z)
    kernel = getattr(backends.load(backend), kernel)
    # A Python float slope would promote float32 to float64: it takes Z's dtype.
    result = kernel(Z, Z.dtype.type(as_real("slope", slope[0]))) if slope else kernel(Z)
    return result if out is None else _out(out, result)


def _elementwise_backward(kernel, A, dA, out, backend, *slope, names=("A", "dA")):
    """Backward kernel ``kernel`` from outputs A and the gradient dA by them (n by b)."""
    A, dA = _matrix(names[0], A), _matrix(names[1], dA)
    if dA.dtype is not A.dtype or dA.shape != A.shape:
        _same(names, (A, dA), (None, A.shape))
    if slope:
        slope = (A.dtype.type(as_real("slope", slope[0])),)
    result = getattr(backends.load(backend), kernel)(A, dA, *slope)
    return result if out is None else _out(out, result)


def linear(A, W, W0, *, out=None, backend=None):
    """A linear layer's forward pass.

    Args:
        A (array_like): The m by b inputs.
        W (array_like): The m by n weights.
        W0 (array_like): The n by 1 biases.

    Returns:
        ndarray: The n by b ``W.T @ A + W0``.

    """
    A, W, W0 = _matrix("A", A), _matrix("W", W), _matrix("W0", W0)
    m, n = W.shape
    if not (A.dtype is W.dtype is W0.dtype and A.shape[0] == m and W0.shape == (n, 1)):
        _same(("W", "A", "W0"), (W, A, W0), (None, (m, A.shape[1]), (n, 1)))
    result = backends.load(backend).linear_forward(W, W0, A)
    return result if out is None else _out(out, result)


def linear_backward(A, W, dZ, *, backend=None):
    """A linear layer's backward pass, summed over the batch.

    Args:
        A (array_like): The m by b inputs of the forward pass.
        W (array_like): The m by n weights.
        dZ (array_like): The n by b gradient by the outputs.

    Returns:
        tuple: ``W @ dZ`` (m by b, the gradient by A), ``A @ dZ.T`` (m by n, by W)
            and ``dZ.sum(axis=1, keepdims=True)`` (n by 1, by W0).

    """
    A, W, dZ = _matrix("A", A), _matrix("W", W), _matrix("dZ", dZ)
    m, n = W.shape
    b = A.shape[1]
    if not (A.dtype is W.dtype is dZ.dtype and A.shape[0] == m and dZ.shape == (n, b)):
        _same(("W", "A", "dZ"), (W, A, dZ), (None, (m, b), (n, b)))
    dW, dW0, dA = backends.load(backend).linear_backward(W, A, dZ)
    return dA, dW, dW0


def tanh(Z, *, out=None, backend=None):
    """Hyperbolic tangent of the n by b matrix Z; returns n by b."""
    return _elementwise("tanh_forward", Z, out, backend)


def tanh_backward(A, dA, *, out=None, backend=None):
    """The gradient by tanh's input, from its n by b outputs A and the gradient dA by them."""
    return _elementwise_backward("tanh_backward", A, dA, out, backend)


def relu(Z, *, out=None, backend=None):
    """Rectified linear unit ``max(Z, 0)`` of the n by b matrix Z; returns n by b."""
    return _elementwise("relu_forward", Z, out, backend)


def relu_backward(A, dA, *, out=None, backend=None):
    """The gradient by ReLU's input, from its n by b outputs A and the gradient dA by them."""
    return _elementwise_backward("relu_backward", A, dA, out, backend)


def leaky_relu(Z, slope=0.01, *, out=None, backend=None):
    """Leaky ReLU of the n by b matrix Z: Z where Z > 0, else ``slope * Z`` (slope >= 0)."""
    return _elementwise("leaky_relu_forward", Z, out, backend, slope)


def leaky_relu_backward(A, dA, slope=0.01, *, out=None, backend=None):
    """The gradient by leaky ReLU's input, from its n by b outputs A and the gradient dA."""
    return _elementwise_backward("leaky_relu_backward", A, dA, out, backend, slope)


def sigmoid(Z, *, out=None, backend=None):
    """Logistic sigmoid ``1 / (1 + exp(-Z))`` of the n by b matrix Z; returns n by b."""
    return _elementwise("sigmoid_forward", Z, out, backend)


def sigmoid_backward(A, dA, *, out=None, backend=None):
    """The gradient by the sigmoid's input, from its n by b outputs A and the gradient dA."""
    return _elementwise_backward("sigmoid_backward", A, dA, out, backend)


def softmax(Z, *, out=None, backend=None):
    """Softmax of each column of the n by b logits Z; returns n by b probabilities."""
    return _elementwise("softmax_forward", Z, out, backend)


def softmax_backward(P, dP, *, out=None, backend=None):
    """The softmax Jacobian's product with dP, column by column: the notebook's einsum.

    Args:
        P (array_like): The n by b softmax outputs.
        dP (array_like): The n by b gradient by them.

    Returns:
        ndarray: The n by b gradient by the logits, ``P * (dP - sum(P * dP, axis=0))``.

    """
    return _elementwise_backward("softmax_backward", P, dP, out, backend, names=("P", "dP"))


def nll(P, Y, *, backend=None):
    """The negative log-likelihood ``-sum(Y * log P)`` of n by b probabilities P and targets Y.

    Returns:
        float: The loss summed over the batch (P floored at the dtype's smallest normal).

    """
    P, Y = _matrix("P", P), _matrix("Y", Y)
    if Y.dtype is not P.dtype or Y.shape != P.shape:
        _same(("P", "Y"), (P, Y), (None, P.shape))
    return float(backends.load(backend).nll_forward(P, Y))


def softmax_nll_backward(P, Y, *, out=None, backend=None):
    """The gradient of ``nll(softmax(Z), Y)`` by Z, from P = softmax(Z): ``P * Y.sum(0) - Y``."""
    P, Y = _matrix("P", P), _matrix("Y", Y)
    if Y.dtype is not P.dtype or Y.shape != P.shape:
        _same(("P", "Y"), (P, Y), (None, P.shape))
    result = backends.load(backend).softmax_nll_backward(P, Y)
    return result if out is None else _out(out, result)
