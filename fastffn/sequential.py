"""The notebook's Sequential model: layers in a row, a loss, and SGD."""

import itertools

import numpy as np

from . import backends, packing, schedule, training
from ._validation import NonFiniteError, all_finite, as_matrix, check_dtype, check_one_hot
from .backends import ACCURACY_BLOCK
from .layers import NLL, Activation, Layer, Linear, ReLU, SoftMax, is_builtin


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
        if not isinstance(modules, list | tuple) or not modules:
            raise TypeError(f"modules must be a non-empty list of layers, got {modules!r}")
        for name, m in [*((f"modules[{k}]", m) for k, m in enumerate(modules)), ("loss", loss)]:
            if not (
                callable(getattr(m, "forward", None)) and callable(getattr(m, "backward", None))
            ):
                raise TypeError(f"{name} must be a layer (with forward and backward), got {m!r}")
        self.modules = modules
        self.loss = loss
        self.check_chain()
        if backend is not None:
            self.backend = backend
        backends.get_backend()  # a bad FASTFFN_BACKEND fails here, naming the variable
        if dtype is not None:
            dtype = check_dtype("dtype", dtype)
            for m in self.linear_layers:
                m.W = m.W.astype(dtype)  # W0 follows

    @property
    def layers(self):
        """The built-in layers among the modules and the loss."""
        return [m for m in [*self.modules, self.loss] if isinstance(m, Layer)]

    @property
    def linear_layers(self):
        return [m for m in self.modules if isinstance(m, Linear)]

    @property
    def backend(self):
        """The backend the layers run on when they share one (a layer given none runs on
        the default here: ``fastffn.get_backend()``), else None."""
        names = {m.backend or backends.get_backend() for m in self.layers}
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

    def widths(self):
        """The rows the model takes and gives, each None where a layer of the user's own hides it.

        Returns:
            tuple: (input width, output width), each an int or None.

        """
        ends = []
        for modules in (self.modules, self.modules[::-1]):
            width = None
            for m in modules:
                if isinstance(m, Linear) and is_builtin(m):
                    width = m.m if modules is self.modules else m.n
                    break
                if not (isinstance(m, Activation) and is_builtin(m)):
                    break  # a layer of the user's own may change the width
            ends.append(width)
        return tuple(ends)

    def check_chain(self):
        """Raises ValueError unless each Linear layer takes what the one before gives.

        Only widths that are known count: a layer of the user's own may change
        the width, so the chain starts again after it.
        """
        width = None
        for k, m in enumerate(self.modules):
            if isinstance(m, Linear):
                if width is not None and m.m != width:
                    raise ValueError(
                        f"modules[{k}] is Linear({m.m}, {m.n}) but the Linear layer before it "
                        f"gives {width} outputs; the sizes must chain"
                    )
                width = m.n
            elif not (isinstance(m, Activation) and is_builtin(m)):
                width = None

    def check_data(self, X, Y=None, names=("X", "Y")):
        """Validates X (and Y) against the model, casting them to its dtype.

        Args:
            X (array_like): A d by n matrix of n points.
            Y (array_like): A k by n one-hot matrix of their classes, or None.
            names (tuple): What the errors call X and Y.

        Returns:
            ndarray or tuple: X, or (X, Y), as C-contiguous arrays of the model's dtype.

        """
        rows, classes = self.widths()
        X = as_matrix(names[0], X, self.dtype, rows=rows)
        if Y is None:
            return X
        Y = as_matrix(names[1], Y, self.dtype, rows=classes, cols=X.shape[1])
        check_one_hot(names[1], Y)
        return X, Y

    def sgd(self, X, Y, iters=100, lrate=0.005, **options):
        """Trains the neural network by running stochastic gradient descent.

        Each iteration draws ``batch_size`` columns with ``np.random.randint(n)``
        (or ``rng.integers(n)``), as the notebook draws one, so a seeded run
        gives the notebook's weights. A model of built-in layers ending in
        SoftMax and NLL on the numba backend runs its iterations compiled; any
        other trains layer by layer through its own methods, with the same
        results (``fastffn.training``).

        Args:
            X (ndarray): A d by n matrix representing n training data points
                each with d dimensions.
            Y (ndarray): A k by n one-hot matrix representing n training labels.
            iters (int): The number of iterations to run stochastic gradient
                descent.
            lrate (float): The step size for stochastic gradient descent.
            **options: Keyword-only:
                batch_size (int): Columns per step, drawn with replacement (so
                    any size >= 1); the gradient is summed over them, as the
                    notebook's layers do. Default 1.
                rng (numpy.random.Generator): Draw from it instead of NumPy's
                    global random state.
                report (bool or callable): True (the default) prints the
                    notebook's line through ``print_accuracy`` before the steps
                    1, 1 + every, ...; False prints nothing; a callable is called
                    as ``report(it, loss, accuracy)`` instead, the order of ``history``.
                every (int or None): Iterations between records (default 250);
                    None records nothing.
                accuracy (bool or None): Whether a record measures the accuracy
                    over all of X (a forward pass of X): None (the default)
                    measures it where it is reported (``report`` True or a
                    callable); a record not measured holds None there.
                compiled (bool): Whether to run compiled where the model allows
                    (default True); False trains layer by layer.
                optimizer (str or Optimizer): The update rule: ``"sgd"`` (the
                    default, the notebook's step), ``"momentum"``, ``"nesterov"``
                    or ``"adam"`` (``fastffn.optimizers`` gives the formulas), or
                    an ``Optimizer``, whose state goes on from call to call.
                batches (array_like): An iters by batch_size array of the
                    columns each step takes, in place of drawing them (e.g.
                    epochs of shuffled batches); nothing is drawn.
                average (bool): Whether a step uses the batch's mean gradient
                    (and ``weight_decay / b``), scikit-learn's convention, instead
                    of the notebook's sum (default False).
                threads (int or None): The BLAS threads of the steps' matrix
                    products; None (the default) takes, chunk by chunk, the CPUs
                    other processes leave free (``fastffn._threads.BlasThreads``).
                momentum, beta1, beta2, eps, weight_decay (float): The rule's
                    hyperparameters (defaults 0.9, 0.9, 0.999, 1e-8 and 0.0):
                    ``weight_decay * W`` is added to each W's gradient.

        Returns:
            list: ``(iteration, loss, accuracy)`` every ``every`` iterations
                (1, 1 + every, ...): the loss of that step's batch, which
                costs nothing more, and the accuracy before its update (None
                where not measured, see ``accuracy``).

        Raises:
            FloatingPointError: A step's loss or gradients were not finite; the
                model keeps its weights from before that step.

        """
        return training.sgd(self, X, Y, iters, lrate, **options)

    def _overrides(self, name):
        """Whether this model's method ``name`` is not Sequential's own (a subclass's, or set on
        the instance): a compiled run cannot stand in for it."""
        return getattr(type(self), name) is not getattr(Sequential, name) or name in vars(self)

    def forward(self, Xt):
        """Predicts the output for a training input batch.

        Args:
            Xt (ndarray): A d by b matrix of points to predict
                with dimension d and batch size b.

        Returns:
            ndarray: A k by b matrix of the network's outputs (class
                probabilities when the last module is SoftMax).

        """
        Xt = self.check_data(Xt)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported, not warned
            return self._forward(Xt)

    def _forward(self, Xt):
        """``forward`` on data already checked: built-in layers run unchecked, and every
        module's output is tested for overflow (all in one test)."""
        outputs = []
        for k, m in enumerate(self.modules):
            if is_builtin(m):
                Xt = m._forward(Xt)
            else:
                Xt = as_matrix(f"the output of modules[{k}]", m.forward(Xt), finite=False)
            outputs.append(Xt)
        if not all_finite(outputs):
            k = next(k for k, out in enumerate(outputs) if not np.isfinite(out).all())
            raise NonFiniteError(
                f"X is finite but the network's values overflowed in modules[{k}] "
                f"({type(self.modules[k]).__name__}); scale X down, or check the weights"
            )
        return Xt

    def backward(self, dLdA):
        """Computes the gradients of the loss with respect to each weight
        in the neural network to prepare for stochastic gradient descent.

        Args:
            dLdA (ndarray): An n by b matrix representing the gradient of the
                loss with respect to the outputs of the neural network for a
                batch of size b.

        """
        self._backward(as_matrix("dLdA", dLdA, finite=False), self.modules)

    def _backward(self, dLdA, modules):
        """Backpropagates dLdA (checked) through ``modules`` in reverse."""
        for m in modules[::-1]:
            dLdA = m._backward(dLdA) if is_builtin(m) else m.backward(dLdA)

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
        X, Y = self.check_data(X, Y)
        hits = packing.hits_in_loop(self, X, Y)
        if hits is not None:
            return np.float64(hits / X.shape[1])
        with np.errstate(over="ignore", invalid="ignore"):
            return self._accuracy(X, Y)

    def _accuracy(self, X, Y, forward=None):
        """``accuracy`` on checked data, through ``forward`` (default ``_forward``), in blocks
        of columns so that the layers keep only a block's activations."""
        forward = forward or self._forward
        cf = self.modules[-1].class_fun
        n, hits = X.shape[1], 0
        for j in range(0, n, ACCURACY_BLOCK):  # a block of all the columns is X itself
            block = slice(j, j + ACCURACY_BLOCK)
            Xb, Yb = np.ascontiguousarray(X[:, block]), np.ascontiguousarray(Y[:, block])
            hits += np.count_nonzero(cf(forward(Xb)) == cf(Yb))
        return np.float64(hits / n)

    def held_out(self, X, Y):
        """The accuracy and the mean loss (over the points) on checked data, in blocks as
        ``_accuracy`` measures.

        Returns:
            tuple: Two floats.

        """
        cf = self.modules[-1].class_fun
        n, hits, loss = X.shape[1], 0, 0.0
        for j in range(0, n, ACCURACY_BLOCK):
            block = slice(j, j + ACCURACY_BLOCK)
            Xb, Yb = np.ascontiguousarray(X[:, block]), np.ascontiguousarray(Y[:, block])
            P = self._forward(Xb)
            hits += np.count_nonzero(cf(P) == cf(Yb))
            loss += float(self.loss._forward(P, Yb))
        return hits / n, loss / n

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
        if schedule.is_record(it, every):
            schedule.print_report((it, self.accuracy(X, Y), cur_loss))


def network(widths, seed=0, backend=None, dtype=np.float64, activation=ReLU):
    """A network of Linear layers and activations ending in SoftMax + NLL, seeded.

    Args:
        widths (tuple): Layer widths from inputs to classes, e.g. (2, 10, 10, 2).
        seed (int or None): Seed of NumPy's global random state for the weights;
            None draws them from the state as it is.
        backend (str): ``"numba"``, ``"numpy"`` or None for the default.
        dtype (dtype): float64 or float32.
        activation (type): The layer after each hidden Linear layer, e.g. ReLU or Tanh.

    Returns:
        Sequential: The model.

    """
    if seed is not None:
        np.random.seed(seed)
    modules = []
    for m, n in itertools.pairwise(widths):
        modules += [Linear(m, n, dtype=dtype), activation()]
    modules[-1] = SoftMax()
    return Sequential(modules, NLL(), backend=backend)
