"""Each elementwise activation's arithmetic, written once, for every compiled path.

Each elementwise op is two scalar functions here, its forward ``<name>(x, c)``
and backward ``<name>_grad(a, g, c)``, listed in ``ELEMENTWISE``;
``forward_into`` and ``backward_into`` choose them by op code and map them over
arrays. The numba kernels and every compiled loop call those maps, so an
activation is added here (its two functions and a branch in each map) and in
the reference (``numpy.py``: its kernels and its name in ``ACTIVATIONS``), and
in no loop.

``c`` is the op's one coefficient (LeakyReLU's slope; ignored by the others),
already of the data's dtype. The backward takes the forward's output ``a``, as
the notebook's layers keep it. An unknown op code raises: it never runs as
another op.
"""

import numpy as np
from numba import types
from numba.extending import overload

from . import OPS
from ._numba_cache import jit
from .numpy import ACTIVATIONS
from .simd import exp_lanes, simd_tanh

LINEAR, TANH, RELU, LEAKY_RELU, SIGMOID, SOFTMAX = (OPS.index(name) for name in (
    "linear", "tanh", "relu", "leaky_relu", "sigmoid", "softmax"))  # fmt: skip


def like(x, value):
    """``value`` as a number of x's type (jitted code only): a Python 1 would promote
    float32 to float64."""
    raise TypeError("like is for jitted code")


@overload(like)
def _like(x, value):
    if x == types.float32:
        return lambda x, value: np.float32(value)
    return lambda x, value: np.float64(value)


# --- each elementwise op, forward and backward, once -------------------------------


@jit
def tanh(x, c):
    return like(x, simd_tanh(x))


@jit
def tanh_grad(a, g, c):
    return (like(a, 1) - a * a) * g


@jit
def relu(x, c):
    return max(like(x, 0), x)


@jit
def relu_grad(a, g, c):
    return g * (a != 0)


@jit
def leaky_relu(x, c):
    return x if x > 0 else c * x


@jit
def leaky_relu_grad(a, g, c):
    return g * (like(a, 1) if a > 0 else c)


@jit
def sigmoid(x, c):
    one = like(x, 1)
    return one / (one + exp_lanes(-x))


@jit
def sigmoid_grad(a, g, c):
    return a * (like(a, 1) - a) * g


#: Each elementwise op's name: its forward here is ``<name>(x, c)``, its backward
#: ``<name>_grad(a, g, c)``; ``numba.py`` makes its kernels from this table.
ELEMENTWISE = {OPS.index(name): name for name in ACTIVATIONS}


# The maps choose the op once, outside the loop, so that SIMD lanes take its body; they
# are inlined in Numba's IR, since a call would count references to the arrays. They
# do not raise on an unknown op (a raise slows the loops that inline them): every loop
# checks its ops once first (``check_ops``).


@jit
def check_ops(ops):
    """Raises ValueError unless every code of ``ops`` is one of ``OPS``."""
    for op in ops:
        if not 0 <= op < len(OPS):
            raise ValueError("fastffn: unknown op code")


@jit(inline="always")
def forward_into(op, c, Z, z0, A, a0, count):
    """Elementwise op ``op``'s forward from ``Z.flat[z0:z0 + count]`` into ``A.flat[a0:...]``."""
    if op == TANH:
        for i in range(count):
            A.flat[a0 + i] = tanh(Z.flat[z0 + i], c)
    elif op == RELU:
        for i in range(count):
            A.flat[a0 + i] = relu(Z.flat[z0 + i], c)
    elif op == LEAKY_RELU:
        for i in range(count):
            A.flat[a0 + i] = leaky_relu(Z.flat[z0 + i], c)
    elif op == SIGMOID:
        for i in range(count):
            A.flat[a0 + i] = sigmoid(Z.flat[z0 + i], c)


@jit(inline="always")
def backward_into(op, c, A, a0, dA, g0, dZ, z0, count):
    """Elementwise op ``op``'s backward from outputs ``A.flat[a0:a0 + count]`` and the
    gradient ``dA.flat[g0:...]`` by them into ``dZ.flat[z0:...]``."""
    if op == TANH:
        for i in range(count):
            dZ.flat[z0 + i] = tanh_grad(A.flat[a0 + i], dA.flat[g0 + i], c)
    elif op == RELU:
        for i in range(count):
            dZ.flat[z0 + i] = relu_grad(A.flat[a0 + i], dA.flat[g0 + i], c)
    elif op == LEAKY_RELU:
        for i in range(count):
            dZ.flat[z0 + i] = leaky_relu_grad(A.flat[a0 + i], dA.flat[g0 + i], c)
    elif op == SIGMOID:
        for i in range(count):
            dZ.flat[z0 + i] = sigmoid_grad(A.flat[a0 + i], dA.flat[g0 + i], c)
