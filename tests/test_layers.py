"""Layers against central finite differences, and the notebook's worked example."""

import numpy as np
import pytest

from fastffn import NLL, LeakyReLU, Linear, ReLU, Sequential, Sigmoid, SoftMax, Tanh
from fastffn.backends import load
from fastffn.testing import KERNELS

# Central differences: step and tolerance per dtype (float32 needs a coarse step).
FD = {
    np.dtype(np.float64): {"eps": 1e-6, "rtol": 1e-6, "atol": 1e-8},
    np.dtype(np.float32): {"eps": 1e-2, "rtol": 2e-2, "atol": 2e-3},
}


def central_difference(f, x, eps):
    """The gradient of the scalar f() by x, perturbing x in place."""
    grad = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + eps
        up = f()
        x[i] = saved - eps
        down = f()
        x[i] = saved
        grad[i] = (float(up) - float(down)) / (2 * eps)
    return grad


@pytest.mark.parametrize(
    "layer", [Tanh, ReLU, lambda: LeakyReLU(0.1), Sigmoid, SoftMax, lambda: Linear(4, 3)]
)
def test_layer_input_gradient(layer, backend, dtype):
    rng = np.random.default_rng(0)
    layer = layer()
    layer.backend = backend
    if isinstance(layer, Linear):
        layer.W = layer.W.astype(dtype)
        layer.W0 = rng.standard_normal(layer.W0.shape).astype(dtype)
    Z = rng.standard_normal((4, 5)).astype(dtype)
    G = rng.standard_normal((3 if isinstance(layer, Linear) else 4, 5)).astype(dtype)

    def loss():
        return np.sum(G * layer.forward(Z), dtype=np.float64)

    loss()
    dLdZ = layer.backward(G)
    tol = FD[dtype]
    expected = central_difference(loss, Z, tol["eps"])
    np.testing.assert_allclose(dLdZ, expected, rtol=tol["rtol"], atol=tol["atol"])


def test_whole_network_weight_gradients(backend, dtype):
    np.random.seed(1)
    net = Sequential(
        [Linear(3, 5), Tanh(), Linear(5, 4), ReLU(), Linear(4, 3), SoftMax()],
        NLL(),
        backend=backend,
        dtype=dtype,
    )
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3, 6)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[:, rng.integers(3, size=6)]
    for m in net.linear_layers:
        m.W0 += rng.standard_normal(m.W0.shape).astype(dtype) * dtype.type(0.1)

    def loss():
        return net.loss.forward(net.forward(X), Y)

    loss()
    net.backward(net.loss.backward())
    tol = FD[dtype]
    for m in net.linear_layers:
        for weights, grad in ((m.W, m.dLdW), (m.W0, m.dLdW0)):
            expected = central_difference(loss, weights, tol["eps"])
            np.testing.assert_allclose(grad, expected, rtol=tol["rtol"], atol=tol["atol"])


# The notebook's worked example (cells 257-297), with the arrays it prints.
WORKED_Y = [[1, 0], [0, 0], [0, 1]]
WORKED_A = [[5, 4], [7, 9], [3, 2]]
PRINTED_dAdZ = [
    [[-20.0, -35.0, -15.0], [-35.0, -42.0, -21.0], [-15.0, -21.0, -6.0]],
    [[-12.0, -36.0, -8.0], [-36.0, -72.0, -18.0], [-8.0, -18.0, -2.0]],
]
PRINTED_dLdA = [[-0.2, 0.0], [0.0, 0.0], [0.0, -0.5]]
PRINTED_dLdZ = [[4.0, 4.0], [7.0, 9.0], [3.0, 1.0]]


def test_worked_example_jacobian():
    A = np.array(WORKED_A, dtype=np.float64)
    dAdZ = load("numpy").softmax_jacobian(A)  # n x n x b
    np.testing.assert_array_equal(dAdZ.transpose(2, 0, 1), PRINTED_dAdZ)


def test_worked_example_gradients(backend, dtype):
    A = np.array(WORKED_A, dtype=dtype)
    Y = np.array(WORKED_Y, dtype=dtype)
    dLdA = KERNELS["nll_backward"](backend, A, Y)
    np.testing.assert_allclose(dLdA, PRINTED_dLdA, rtol=1e-7)
    dLdZ = KERNELS["softmax_backward"](backend, A, dLdA)
    assert dLdZ.dtype == dtype
    np.testing.assert_allclose(dLdZ, PRINTED_dLdZ, rtol=1e-6)


def test_worked_example_through_the_layers(backend):
    """The same numbers through SoftMax and NLL objects, A set as the notebook sets it."""
    softmax, nll = SoftMax(), NLL()
    softmax.backend = nll.backend = backend
    softmax.A = np.array(WORKED_A, dtype=np.float64)
    nll.Ypred, nll.Y = softmax.A, np.array(WORKED_Y, dtype=np.float64)
    np.testing.assert_allclose(softmax.backward(nll.backward()), PRINTED_dLdZ, rtol=1e-12)
