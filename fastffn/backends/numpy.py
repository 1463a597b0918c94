"""The reference backend: the notebook's NumPy math, naive and obviously right.

Every function here is the ground truth its fast twin in ``numba.py`` is tested
against, so nothing here is optimised. Deliberate differences from the
notebook, each the same function mathematically:

- ``softmax_forward`` subtracts each column's maximum before ``exp`` so that
  large logits do not overflow;
- the identity matrices of the softmax Jacobian take the array's dtype, so a
  float32 model stays float32;
- NLL reads probabilities below the dtype's smallest normal number (``tiny``)
  as ``tiny``, so a predicted 0 gives a large finite loss, not inf or NaN;
- ``softmax_nll_backward``, the gradient training uses where SoftMax feeds NLL,
  is ``Ypred * sum(Y) - Y``, the chain rule worked out by hand. The notebook's
  arithmetic, ``-Y / Ypred`` through the Jacobian, loses the gradient where a
  probability underflows to 0 (a saturated softmax); this does not.

Shapes follow the notebook: m inputs, n outputs (or classes), batch of b columns.
"""

import numpy as np

#: The elementwise activations: each has ``<name>_forward`` and ``<name>_backward``
#: here, and every backend and compiled loop knows it by this name (``OPS``).
ACTIVATIONS = ("tanh", "relu", "leaky_relu", "sigmoid")


def linear_forward(W, W0, A):
    """Computes the linear layer's output ``W.T @ A + W0``.

    Args:
        W (ndarray): An m by n weight matrix.
        W0 (ndarray): An n by 1 bias column.
        A (ndarray): An m by b matrix of inputs.

    Returns:
        ndarray: An n by b matrix of pre-activations Z.

    """
    return W.T @ A + W0


def linear_backward(W, A, dLdZ):
    """Computes the linear layer's gradients, summed over the batch.

    Args:
        W (ndarray): An m by n weight matrix.
        A (ndarray): The m by b inputs seen by the forward pass.
        dLdZ (ndarray): An n by b gradient of the loss with respect to the outputs.

    Returns:
        tuple: dLdW (m by n), dLdW0 (n by 1) and dLdA (m by b).

    """
    dLdW = A @ dLdZ.T  # Implicit sum over all b
    dLdW0 = np.sum(dLdZ, axis=1, keepdims=True)
    return dLdW, dLdW0, W @ dLdZ


def sgd_update(W, dLdW, lrate):
    """Takes one gradient-descent step, returning a new array.

    Args:
        W (ndarray): Weights of any shape.
        dLdW (ndarray): Their gradient, same shape.
        lrate (scalar): The step size, already of W's dtype.

    Returns:
        ndarray: ``W - lrate * dLdW``.

    """
    return W - lrate * dLdW


def momentum_update(W, V, dLdW, lrate, momentum, decay):
    """One step of SGD with momentum (Polyak's heavy ball, as scikit-learn writes it).

    ``G = dLdW + decay * W`` (L2 weight decay), ``V' = momentum * V - lrate * G``,
    ``W' = W + V'``. With momentum 0 this is SGD on the decayed gradient.

    Args:
        W (ndarray): Weights of any shape.
        V (ndarray): Their velocity, same shape (zeros before the first step).
        dLdW (ndarray): Their gradient, same shape.
        lrate, momentum, decay (scalar): Already of W's dtype.

    Returns:
        tuple: The new W and V.

    """
    G = dLdW + decay * W
    V = momentum * V - lrate * G
    return W + V, V


def nesterov_update(W, V, dLdW, lrate, momentum, decay):
    """One step of Nesterov's accelerated gradient in Sutskever et al.'s (2013) form,
    as scikit-learn writes it: ``V`` as in ``momentum_update``, then
    ``W' = W + (momentum * V' - lrate * G)``.

    Returns:
        tuple: The new W and V.

    """
    G = dLdW + decay * W
    V = momentum * V - lrate * G
    return W + (momentum * V - lrate * G), V


def adam_update(W, M, V, dLdW, step, beta1, beta2, eps, decay, scale):
    """One step of Adam (Kingma & Ba 2015, Algorithm 1 in the efficient form of its section 2).

    ``G = scale * (dLdW + decay * W)`` (scale 1, or 1 / b for the batch mean),
    ``M' = beta1 * M + (1 - beta1) * G``,
    ``V' = beta2 * V + (1 - beta2) * G**2``, ``W' = W - step * M' / (sqrt(V') + eps)``,
    where the caller's ``step`` is ``lrate * sqrt(1 - beta2**t) / (1 - beta1**t)``
    at step t = 1, 2, ... (the bias corrections).

    Args:
        W (ndarray): Weights of any shape.
        M, V (ndarray): Their first and second moment estimates (zeros at first).
        dLdW (ndarray): Their gradient.
        step, beta1, beta2, eps, decay, scale (scalar): Already of W's dtype.

    Returns:
        tuple: The new W, M and V.

    """
    G = scale * (dLdW + decay * W)
    M = beta1 * M + (1 - beta1) * G
    V = beta2 * V + (1 - beta2) * (G * G)
    return W - step * M / (np.sqrt(V) + eps), M, V


def tanh_forward(Z):
    """Hyperbolic tangent of an n by b matrix of pre-activations."""
    return np.tanh(Z)


def tanh_backward(A, dLdA):
    """Gradient through tanh, given its n by b outputs A and upstream dLdA."""
    return (1 - A**2) * dLdA


def relu_forward(Z):
    """Rectified linear unit of an n by b matrix of pre-activations."""
    return np.maximum(0, Z)


def relu_backward(A, dLdA):
    """Gradient through ReLU, given its n by b outputs A and upstream dLdA."""
    return dLdA * (A != 0)


def leaky_relu_forward(Z, c):
    """Leaky rectified linear unit: Z where Z > 0, else ``c * Z`` (c, the slope, of Z's dtype)."""
    return np.where(Z > 0, Z, c * Z)


def leaky_relu_backward(A, dLdA, c):
    """Gradient through leaky ReLU, given its n by b outputs A (positive where Z was)."""
    return dLdA * np.where(A > 0, A.dtype.type(1), c)


def sigmoid_forward(Z):
    """Logistic sigmoid ``1 / (1 + exp(-Z))`` of an n by b matrix of pre-activations."""
    return 1 / (1 + np.exp(-Z))


def sigmoid_backward(A, dLdA):
    """Gradient through the sigmoid, given its n by b outputs A and upstream dLdA."""
    return A * (1 - A) * dLdA


def softmax_forward(Z):
    """Column-wise softmax of an n by b matrix of logits.

    Returns:
        ndarray: An n by b matrix whose columns are probability vectors.

    """
    E = np.exp(Z - np.max(Z, axis=0, keepdims=True))
    return E / np.sum(E, axis=0, keepdims=True)


def softmax_jacobian(A):
    """Forms the batched softmax Jacobian, as the notebook does.

    Args:
        A (ndarray): An n by b matrix of softmax outputs.

    Returns:
        ndarray: An n by n by b tensor with ``dAdZ[i, j, k]`` the derivative of
            output j by input i for sample k.

    """
    n, _ = A.shape
    eye = np.eye(n, dtype=A.dtype)
    return np.einsum("jk,jk,ji->ijk", A, 1 - A, eye) + np.einsum("jk,ik,ji->ijk", -A, A, 1 - eye)


def softmax_backward(A, dLdA):
    """Gradient through softmax via the n by n by b Jacobian (O(n**2 * b) memory).

    Args:
        A (ndarray): The n by b softmax outputs.
        dLdA (ndarray): An n by b gradient of the loss with respect to A.

    Returns:
        ndarray: An n by b gradient of the loss with respect to the logits.

    """
    return np.einsum("ikj,kj->ij", softmax_jacobian(A), dLdA)


def softmax_nll_backward(Ypred, Y):
    """Gradient of NLL by the logits of the softmax that gave Ypred: ``Ypred * sum(Y) - Y``.

    The Jacobian product of ``-Y / Ypred`` worked out by hand: column j of
    ``(diag(a) - a a.T) (-y / a)`` is ``a sum(y) - y``, which is ``Ypred - Y``
    for one-hot Y and stays exact where a probability underflows.

    Args:
        Ypred (ndarray): An n by b matrix of softmax outputs.
        Y (ndarray): An n by b one-hot (or probability) matrix of targets.

    Returns:
        ndarray: An n by b gradient of the loss with respect to the logits.

    """
    return Ypred * np.sum(Y, axis=0, keepdims=True) - Y


def nll_forward(Ypred, Y):
    """Negative log-likelihood summed over an n by b batch.

    Args:
        Ypred (ndarray): An n by b matrix of predicted probabilities.
        Y (ndarray): An n by b one-hot matrix of targets.

    Returns:
        scalar: The total loss, of the arrays' dtype.

    """
    return -np.sum(Y * np.log(np.maximum(Ypred, np.finfo(Ypred.dtype).tiny)))


def nll_backward(Ypred, Y):
    """Gradient of the NLL loss with respect to the n by b predictions."""
    return -Y / np.maximum(Ypred, np.finfo(Ypred.dtype).tiny)


def class_fun(Ypred):
    """Index of the largest entry of each column of an n by b matrix (b,)."""
    return np.argmax(Ypred, axis=0)
