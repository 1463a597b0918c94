"""The notebook's layers: thin stateful shells around stateless kernels, and their registry.

Each layer holds what the notebook's holds (weights, the activations of the
last forward pass, the gradients of the last backward pass) and hands the
arithmetic to the kernels of its backend. Shapes are the notebook's: data are
column-major, features by batch.

A built-in layer checks its arguments in ``forward`` and ``backward``, then
computes in ``_forward`` and ``_backward``; a ``Sequential``, which checks its
data once at its own entry, calls those directly.

``BUILTIN`` is the one registry of built-in layers. Everything that names a
layer derives from it: the kernel table (``fastffn.testing``), the compiled
loop's op codes (``fastffn.training``), the names in saved files
(``fastffn.persistence``) and the command line's ``--activation``. Adding an
elementwise activation takes its two kernels in each backend, one entry here
and a two-line class.
"""

import numpy as np

from . import backends
from ._validation import as_count, as_matrix, as_real, check_dtype


class Layer:
    """Base class for neural network layers.

    Subclass it with ``forward`` and ``backward`` (and ``sgd_step`` if the layer
    has weights) to put a layer of your own in a ``Sequential``.

    Attributes:
        backend (str or None): ``"numba"`` or ``"numpy"``; None follows the
            default (``fastffn.set_backend``, ``fastffn.use_backend``).

    """

    _backend = None
    #: The name of the layer's one coefficient (LeakyReLU's "slope"), which its kernels
    #: take after their arrays and saved files keep; None where it has none.
    coef = None

    @property
    def backend(self):
        return self._backend

    @backend.setter
    def backend(self, name):
        self._backend = None if name is None else backends.check_backend(name)

    @property
    def kernels(self):
        """The module of kernels this layer runs on."""
        return backends.load(self._backend or backends.get_backend())

    def sgd_step(self, lrate=None):
        """Some layers do not have weights to update on gradient descent steps."""


class Linear(Layer):
    """A simple, fully-connected linear layer.

    Attributes:
        W (ndarray): The m by n weights; assigning converts (ints to float64,
            any order to C order) or refuses (wrong shape, NaN) with a clear error,
            and sets the layer's dtype, which W0 follows.
        W0 (ndarray): The n by 1 biases, of W's dtype.

    """

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
        self._W0 = np.zeros((n, 1), dtype=dtype)
        self._W = np.random.normal(0, np.sqrt(1 / m), (m, n)).astype(dtype, copy=False)
        self.backend = backend

    @classmethod
    def from_weights(cls, W, W0, backend=None):
        """A layer holding copies of the given weights; draws nothing from the random state.

        Args:
            W (ndarray): An m by n weight matrix (its dtype is the layer's).
            W0 (ndarray): An n by 1 bias column.
            backend (str): ``"numba"``, ``"numpy"`` or None for the default.

        Returns:
            Linear: The layer.

        """
        W = as_matrix("W", W)
        layer = cls.__new__(cls)
        layer.m, layer.n = W.shape
        layer.W, layer.W0 = W.copy(), np.array(W0, copy=True)
        layer.backend = backend
        return layer

    @property
    def W(self):
        return self._W

    @W.setter
    def W(self, W):
        self._W = as_matrix("W", W, rows=self.m, cols=self.n)
        if hasattr(self, "_W0") and self._W0.dtype != self._W.dtype:
            self._W0 = self._W0.astype(self._W.dtype)

    @property
    def W0(self):
        return self._W0

    @W0.setter
    def W0(self, W0):
        self._W0 = as_matrix("W0", W0, self._W.dtype, rows=self.n, cols=1)

    def forward(self, A):
        """Computes the forward pass through the linear network for a batch.

        Args:
            A (ndarray): An m by b matrix representing the m activations from the
                previous layer for a batch of size b; cast to the layer's dtype.

        Returns:
            ndarray: An n by b matrix ``W.T @ A + W0``.

        """
        return self._forward(as_matrix("A", A, self._W.dtype, rows=self.m))

    def _forward(self, A):
        if A.dtype != self._W.dtype:  # a model may mix float32 and float64 layers
            A = A.astype(self._W.dtype)
        self.A = A
        return self.kernels.linear_forward(self._W, self._W0, A)

    def backward(self, dLdZ):
        """Stores dLdW and dLdW0 (summed over the batch) and returns dLdA.

        Args:
            dLdZ (ndarray): An n by b matrix representing the gradient of the loss
                with respect to the layer outputs for a batch of size b.

        Returns:
            ndarray: An m by b matrix representing the gradient of the loss with
                respect to the inputs to the layer for a batch of size b.

        """
        # Gradients may be non-finite: training checks them before any update.
        b = self.A.shape[1]
        return self._backward(as_matrix("dLdZ", dLdZ, self._W.dtype, self.n, b, finite=False))

    def _backward(self, dLdZ):
        if dLdZ.dtype != self._W.dtype:
            dLdZ = dLdZ.astype(self._W.dtype)
        self.dLdW, self.dLdW0, dLdA = self.kernels.linear_backward(self._W, self.A, dLdZ)
        return dLdA

    def sgd_step(self, lrate):
        """Performs a single step of gradient descent on W and W0.

        Args:
            lrate (float): A learning rate to scale the gradient for the update;
                cast to the layer's dtype.

        """
        lrate, kernels = self._W.dtype.type(lrate), self.kernels
        self._W = kernels.sgd_update(self._W, self.dLdW, lrate)
        self._W0 = kernels.sgd_update(self._W0, self.dLdW0, lrate)


class Activation(Layer):
    """An elementwise layer computed by the kernels ``<kernel>_forward`` and ``<kernel>_backward``.

    Subclasses set ``kernel``, and ``coef`` where the layer has a coefficient;
    ``A`` keeps the last forward pass's outputs.
    """

    kernel = None

    def coefficients(self, dtype):
        """The kernels' arguments after the arrays, of ``dtype``: () or (coefficient,)."""
        return tuple(np.dtype(dtype).type(v) for v in arguments(self).values())

    def forward(self, Z):
        """Computes the activation of the n by b pre-activations Z (n by b)."""
        return self._forward(as_matrix("Z", Z))

    def _forward(self, Z):
        kernel = getattr(self.kernels, f"{self.kernel}_forward")
        self.A = kernel(Z, *self.coefficients(Z.dtype))
        return self.A

    def backward(self, dLdA):
        """Maps the n by b gradient dLdA to the n by b gradient dLdZ."""
        return self._backward(as_matrix("dLdA", dLdA, self.A.dtype, *self.A.shape, finite=False))

    def _backward(self, dLdA):
        if dLdA.dtype != self.A.dtype:
            dLdA = dLdA.astype(self.A.dtype)
        kernel = getattr(self.kernels, f"{self.kernel}_backward")
        return kernel(self.A, dLdA, *self.coefficients(self.A.dtype))


class Tanh(Activation):
    """Hyperbolic tangent activation layer."""

    kernel = "tanh"


class ReLU(Activation):
    """Rectified linear unit layer."""

    kernel = "relu"


class LeakyReLU(Activation):
    """Leaky rectified linear unit: Z where Z > 0, else ``slope * Z``.

    Attributes:
        slope (float): The gradient for negative inputs, finite and >= 0.

    """

    kernel, coef = "leaky_relu", "slope"

    def __init__(self, slope=0.01):
        self.slope = as_real("slope", slope)


class Sigmoid(Activation):
    """Logistic sigmoid activation layer, ``1 / (1 + exp(-Z))``."""

    kernel = "sigmoid"


class SoftMax(Activation):
    """Softmax activation layer (column-wise over n classes).

    Its ``backward`` is the notebook's product with the softmax Jacobian. Where
    it feeds the NLL loss in training, the two are differentiated together as
    ``Ypred - Y`` instead (``fastffn.training``).
    """

    kernel = "softmax"

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
        Ypred = as_matrix("Ypred", Ypred)
        return self._forward(Ypred, as_matrix("Y", Y, Ypred.dtype, *Ypred.shape))

    def _forward(self, Ypred, Y):
        if Y.dtype != Ypred.dtype:
            Y = Y.astype(Ypred.dtype)
        self.Ypred, self.Y = Ypred, Y
        return Ypred.dtype.type(self.kernels.nll_forward(Ypred, Y))

    def backward(self):
        """Returns the n by b gradient of the loss with respect to Ypred."""
        return self.kernels.nll_backward(self.Ypred, self.Y)


#: The built-in layers, by the name saved files give them. An elementwise
#: activation also names its kernels and the command line's --activation.
BUILTIN = {cls.__name__: cls for cls in (Linear, Tanh, ReLU, LeakyReLU, Sigmoid, SoftMax, NLL)}

#: The hidden activations: elementwise layers, by kernel name.
HIDDEN_ACTIVATIONS = {
    cls.kernel: cls
    for cls in BUILTIN.values()
    if issubclass(cls, Activation) and cls is not SoftMax
}


def arguments(module):
    """``{name: value}`` of a module's coefficient (``Layer.coef``), for saved files and
    sweeps' architectures; empty where it has none, or is the user's own without one."""
    name = getattr(module, "coef", None)
    return {} if name is None else {name: getattr(module, name)}


def is_builtin(module):
    """Whether ``module`` is a built-in layer whose methods are the built-in ones.

    A subclass, or an instance given a method of its own, is the user's: it
    runs through its public methods, never a compiled loop.
    """
    return type(module) in _BUILTIN_TYPES and _METHODS.isdisjoint(vars(module))


_BUILTIN_TYPES = frozenset(BUILTIN.values())
_METHODS = frozenset(("forward", "backward", "sgd_step"))
