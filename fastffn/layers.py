"""The notebook's layers: thin stateful shells around stateless kernels.

Each layer holds what the notebook's holds (weights, the activations of the
last forward pass, the gradients of the last backward pass) and hands the
arithmetic to the kernels of its backend. Shapes are the notebook's: data are
column-major, features by batch.
"""

import numpy as np

from . import backends
from ._validation import as_count, as_matrix, check_dtype


class Layer:
    """Base class for neural network layers.

    Subclass it with ``forward`` and ``backward`` (and ``sgd_step`` if the layer
    has weights) to put a layer of your own in a ``Sequential``.

    Attributes:
        backend (str or None): ``"numba"`` or ``"numpy"``; None follows the
            process-wide default (``fastffn.set_backend``).

    """

    _backend = None

    @property
    def backend(self):
        return self._backend

    @backend.setter
    def backend(self, name):
        self._backend = None if name is None else backends.check_backend(name)

    @property
    def kernels(self):
        """The module of kernels this layer runs on."""
        return backends.load(self._backend)

    def sgd_step(self, lrate=None):
        """Some layers do not have weights to update on gradient descent steps."""


class Linear(Layer):
    """A simple, fully-connected linear layer."""

    def __init__(self, m, n, dtype=np.float64, backend=None):
        """Initializes the layer based on input and output dimensions.

        Note: Kernel is initialized using normal distribution with mean 0 and
        variance 1 / m, drawn from NumPy's global random state exactly as the
        notebook draws it (then cast to dtype). All biases are initialized to zero.

        Args:
            m (int): Number of inputs to the layer.
            n (int): Number of outputs from the layer.
            dtype (dtype): float64 (the default) or float32.
            backend (str): ``"numba"``, ``"numpy"`` or None for the default.

        """
        self.m, self.n = as_count("m", m), as_count("n", n)
        dtype = check_dtype("dtype", dtype)
        self.W0 = np.zeros((n, 1), dtype=dtype)
        self.W = np.random.normal(0, np.sqrt(1 / m), (m, n)).astype(dtype, copy=False)
        self.backend = backend

    @classmethod
    def from_weights(cls, W, W0, backend=None):
        """A layer holding the given weights; draws nothing from the random state.

        Args:
            W (ndarray): An m by n float32 or float64 weight matrix.
            W0 (ndarray): An n by 1 bias column.
            backend (str): ``"numba"``, ``"numpy"`` or None for the default.

        Returns:
            Linear: The layer, with copies of W and W0 in W's dtype.

        """
        W = as_matrix("W", W)
        layer = cls.__new__(cls)
        layer.m, layer.n = W.shape
        layer.W, layer.W0 = W.copy(), as_matrix("W0", W0, W.dtype, rows=layer.n, cols=1).copy()
        layer.backend = backend
        return layer

    def forward(self, A):
        """Computes the forward pass through the linear network for a batch.

        Args:
            A (ndarray): An m by b matrix representing the m activations from the
                previous layer for a batch of size b; cast to the layer's dtype.

        Returns:
            ndarray: An n by b matrix ``W.T @ A + W0``.

        """
        self.A = as_matrix("A", A, self.W.dtype, rows=self.m)
        return self.kernels.linear_forward(self.W, self.W0, self.A)

    def backward(self, dLdZ):
        """Stores dLdW and dLdW0 (summed over the batch) and returns dLdA.

        Args:
            dLdZ (ndarray): An n by b matrix representing the gradient of the loss
                with respect to the layer outputs for a batch of size b.

        Returns:
            ndarray: An m by b matrix representing the gradient of the loss with
                respect to the inputs to the layer for a batch of size b.

        """
        # Gradients may be non-finite: Sequential.step checks them before any update.
        dLdZ = as_matrix("dLdZ", dLdZ, self.W.dtype, self.n, self.A.shape[1], finite=False)
        self.dLdW, self.dLdW0, dLdA = self.kernels.linear_backward(self.W, self.A, dLdZ)
        return dLdA

    def sgd_step(self, lrate):
        """Performs a single step of gradient descent on W and W0.

        Args:
            lrate (float): A learning rate to scale the gradient for the update;
                cast to the layer's dtype.

        """
        lrate = self.W.dtype.type(lrate)
        self.W = self.kernels.sgd_update(self.W, self.dLdW, lrate)
        self.W0 = self.kernels.sgd_update(self.W0, self.dLdW0, lrate)


class Activation(Layer):
    """An elementwise layer given by a pair of kernels, forward and backward.

    Subclasses name the kernels; ``A`` keeps the last forward pass's outputs.
    """

    forward_kernel = backward_kernel = None

    def forward(self, Z):
        """Computes the activation of the n by b pre-activations Z (n by b)."""
        self.A = getattr(self.kernels, self.forward_kernel)(as_matrix("Z", Z))
        return self.A

    def backward(self, dLdA):
        """Maps the n by b gradient dLdA to the n by b gradient dLdZ."""
        dLdA = as_matrix("dLdA", dLdA, self.A.dtype, *self.A.shape, finite=False)
        return getattr(self.kernels, self.backward_kernel)(self.A, dLdA)


class Tanh(Activation):
    """Hyperbolic tangent activation layer."""

    forward_kernel, backward_kernel = "tanh_forward", "tanh_backward"


class ReLU(Activation):
    """Rectified linear unit layer."""

    forward_kernel, backward_kernel = "relu_forward", "relu_backward"


class SoftMax(Activation):
    """Softmax activation layer (column-wise over n classes)."""

    forward_kernel, backward_kernel = "softmax_forward", "softmax_backward"

    def class_fun(self, Ypred):
        """Computes the index of the maximum of each column.

        Args:
            Ypred (ndarray): An n by b matrix of softmax outputs (or one-hot targets).

        Returns:
            ndarray: The b class indices.

        """
        return self.kernels.class_fun(as_matrix("Ypred", Ypred))


class NLL(Layer):
    """Negative log-likelihood loss layer."""

    def forward(self, Ypred, Y):
        """Computes the loss given the predicted and actual results.

        Args:
            Ypred (ndarray): An n by b matrix of predicted probabilities.
            Y (ndarray): An n by b one-hot matrix of the expected classes.

        Returns:
            scalar: The total loss over the batch, of Ypred's dtype.

        """
        self.Ypred = as_matrix("Ypred", Ypred)
        self.Y = as_matrix("Y", Y, self.Ypred.dtype, *self.Ypred.shape)
        return self.Ypred.dtype.type(self.kernels.nll_forward(self.Ypred, self.Y))

    def backward(self):
        """Returns the n by b gradient of the loss with respect to Ypred."""
        return self.kernels.nll_backward(self.Ypred, self.Y)
