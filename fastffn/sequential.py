"""The notebook's Sequential model: layers in a row, a loss, and SGD."""

import numpy as np

from . import backends
from ._validation import as_matrix, check_dtype
from .layers import Layer, Linear


class Sequential:
    """A standard neural network model with linear stacked layers."""

    def __init__(self, modules, loss, backend=None, dtype=None):
        """Initialize the modules and the loss for the network.

        Args:
            modules (list of Layer): A list of modules to make up the linear
                neural network.
            loss (Layer): A final module to use to compute the loss of the
                neural network.
            backend (str): ``"numba"`` or ``"numpy"`` for every layer; None
                leaves each layer's own choice (by default the process-wide one).
            dtype (dtype): float32 or float64 to cast every Linear layer's
                weights to; None keeps them.

        """
        self.modules = modules
        self.loss = loss
        if backend is not None:
            self.backend = backend
        if dtype is not None:
            dtype = check_dtype("dtype", dtype)
            for m in self.linear_layers:
                m.W, m.W0 = m.W.astype(dtype), m.W0.astype(dtype)

    @property
    def layers(self):
        """The built-in layers among the modules and the loss."""
        return [m for m in [*self.modules, self.loss] if isinstance(m, Layer)]

    @property
    def linear_layers(self):
        return [m for m in self.modules if isinstance(m, Linear)]

    @property
    def backend(self):
        """The backend of the layers when they share one, else None."""
        names = {m.backend for m in self.layers}
        return names.pop() if len(names) == 1 else None

    @backend.setter
    def backend(self, name):
        backends.check_backend(name)
        for m in self.layers:
            m.backend = name

    @property
    def dtype(self):
        """The dtype of the first Linear layer's weights (float64 without one)."""
        linear = self.linear_layers
        return linear[0].W.dtype if linear else np.dtype(np.float64)

    def check_data(self, X, Y=None):
        """Validates X (and Y) against the model, casting them to its dtype.

        Args:
            X (array_like): A d by n matrix of n points.
            Y (array_like): A k by n one-hot matrix of their classes, or None.

        Returns:
            ndarray or tuple: X, or (X, Y), as C-contiguous arrays of the model's dtype.

        """
        linear = self.linear_layers
        rows = linear[0].m if linear else None
        X = as_matrix("X", X, self.dtype, rows=rows)
        if Y is None:
            return X
        classes = linear[-1].n if linear else None
        return X, as_matrix("Y", Y, self.dtype, rows=classes, cols=X.shape[1])

    def sgd(self, X, Y, iters=100, lrate=0.005):
        """Trains the neural network by running stochastic gradient descent.

        Draws one sample per iteration with ``np.random.randint(n)``, as the
        notebook does, so a seeded run gives the notebook's weights.

        Args:
            X (ndarray): A d by n matrix representing n training data points
                each with d dimensions.
            Y (ndarray): A k by n one-hot matrix representing n training labels.
            iters (int): The number of iterations to run stochastic gradient
                descent.
            lrate (float): The step size for stochastic gradient descent.

        """
        X, Y = self.check_data(X, Y)
        n = X.shape[1]

        for it in range(iters):
            t = np.random.randint(n)

            Xt = X[:, t : t + 1]
            Yt = Y[:, t : t + 1]

            loss = self.loss.forward(self.forward(Xt), Yt)
            self.backward(self.loss.backward())

            self.print_accuracy(it, X, Y, loss)

            self.sgd_step(lrate)

    def forward(self, Xt):
        """Predicts the output for a training input batch.

        Args:
            Xt (ndarray): A d by b matrix of points to predict
                with dimension d and batch size b.

        Returns:
            ndarray: A k by b matrix of the network's outputs (class
                probabilities when the last module is SoftMax).

        """
        for m in self.modules:
            Xt = m.forward(Xt)

        return Xt

    def backward(self, dLdA):
        """Computes the gradients of the loss with respect to each weight
        in the neural network to prepare for stochastic gradient descent.

        Args:
            dLdA (ndarray): An n by b matrix representing the gradient of the
                loss with respect to the outputs of the neural network for a
                batch of size b.

        """
        for m in self.modules[::-1]:
            dLdA = m.backward(dLdA)

    def sgd_step(self, lrate):
        """Runs a single update step on the weight matrices throughout the
        neural network using stochastic gradient descent.

        Args:
            lrate (float): Learning rate for the update step.

        """
        for m in self.modules:
            m.sgd_step(lrate)

    def accuracy(self, X, Y):
        """The fraction of the columns of X classified as their one-hot Y says."""
        cf = self.modules[-1].class_fun
        return np.mean(cf(self.forward(X)) == cf(Y))

    def print_accuracy(self, it, X, Y, cur_loss, every=250):
        """Displays current prediction statistics.

        Args:
            it (int): Current iteration.
            X (ndarray): A d by n matrix of n points to evaluate, each with
                d dimensions.
            Y (ndarray): A k by n one-hot matrix of n labels.
            cur_loss (float): Current loss.
            every (int): Frequency to output statistics.

        """
        if it % every == 1:
            acc = self.accuracy(X, Y)
            print("Iteration =", it, "\tAcc =", acc, "\tLoss =", cur_loss, flush=True)
