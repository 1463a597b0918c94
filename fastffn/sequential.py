"""The notebook's Sequential model: layers in a row, a loss, and SGD."""

import numpy as np

from . import backends, persistence
from ._validation import NonFiniteError, as_count, as_matrix, as_step_size, check_dtype
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

    def check_chain(self):
        """Raises ValueError unless each Linear layer takes what the one before gives."""
        width = None
        for k, m in enumerate(self.modules):
            if isinstance(m, Linear):
                if width is not None and m.m != width:
                    raise ValueError(
                        f"modules[{k}] is Linear({m.m}, {m.n}) but the Linear layer before it "
                        f"gives {width} outputs; the sizes must chain"
                    )
                width = m.n

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
        Y = as_matrix("Y", Y, self.dtype, rows=classes, cols=X.shape[1])
        sums = Y.sum(axis=0)
        bad = np.flatnonzero((Y < 0).any(axis=0) | (np.abs(sums - 1) > 1e-4))
        if bad.size:
            raise ValueError(
                "Y must hold one-hot (or probability) columns: non-negative, each summing "
                f"to 1; column {bad[0]} is {Y[:, bad[0]]}"
            )
        return X, Y

    def sgd(
        self,
        X,
        Y,
        iters=100,
        lrate=0.005,
        *,
        batch_size=1,
        rng=None,
        report=True,
        every=250,
        compiled=True,
    ):
        """Trains the neural network by running stochastic gradient descent.

        Each iteration draws ``batch_size`` columns with ``np.random.randint(n)``
        (or ``rng.integers(n)``), as the notebook draws one, so a seeded run
        gives the notebook's weights. A model of built-in layers ending in
        SoftMax and NLL on the numba backend runs its iterations compiled
        (``fastffn.training``); any other trains layer by layer, with the same
        results.

        Args:
            X (ndarray): A d by n matrix representing n training data points
                each with d dimensions.
            Y (ndarray): A k by n one-hot matrix representing n training labels.
            iters (int): The number of iterations to run stochastic gradient
                descent.
            lrate (float): The step size for stochastic gradient descent.
            batch_size (int): Columns per step, drawn with replacement; the
                gradient is summed over them, as the notebook's layers do.
            rng (numpy.random.Generator): Draw from it instead of NumPy's
                global random state.
            report (bool or callable): True prints the notebook's line (see
                print_accuracy) before the steps 1, 1 + every, ...; False
                reports nothing; a callable is called as
                ``report(it, accuracy, loss)`` instead of printing.
            every (int): Iterations between reports.
            compiled (bool): Whether to run compiled where the model allows;
                False trains layer by layer (to compare the two).

        Returns:
            list: ``(iteration, loss, accuracy)`` at each report.

        Raises:
            FloatingPointError: A step's loss or gradients were not finite; the
                model keeps its weights from before that step.

        """
        X, Y = self.check_data(X, Y)
        n = X.shape[1]
        iters = as_count("iters", iters, minimum=0)
        lrate = as_step_size("lrate", lrate)
        batch_size = as_count("batch_size", batch_size, maximum=n)
        every = as_count("every", every)
        if not (isinstance(report, bool) or callable(report)):
            raise TypeError(f"report must be True, False or a callable, got {report!r}")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator or None, got {rng!r}")
        draw = rng.integers if rng is not None else np.random.randint
        on_numba = all((m.backend or backends.get_backend()) == "numba" for m in self.layers)
        loop = None
        if compiled and on_numba:
            from .training import CompiledSGD  # imports numba, so only here

            loop = CompiledSGD.of(self)
            XT, YT = CompiledSGD.as_rows(X, Y)

        def steps(count):
            """Takes ``count`` steps; returns their losses."""
            if loop is not None:
                indices = draw(n, size=(count, batch_size))
                done, losses = loop.run(XT, YT, indices, lrate)
                if done < count:
                    raise diverged(it + done, losses[done])
                return losses
            losses = []
            for i in range(count):
                losses.append(self.step(X, Y, draw(n, size=batch_size), lrate, it + i))
            return losses

        history = []
        it = 0
        # Overflow is caught as a non-finite loss or gradient; NumPy need not warn too.
        with np.errstate(all="ignore"):
            while it < iters:
                if report and it % every == 1 % every:
                    try:
                        accuracy = self.accuracy(X, Y)
                    except NonFiniteError:  # the data are finite: a layer overflowed
                        raise diverged(it, np.nan) from None
                    loss = steps(1)[0]
                    history.append((it, float(loss), float(accuracy)))
                    if report is True:
                        print_report(it, accuracy, loss)
                    else:
                        report(it, accuracy, loss)
                    it += 1
                else:
                    next_report = it + (1 - it) % every if report else iters
                    count = min(iters, next_report, it + CHUNK) - it
                    steps(count)
                    it += count
        return history

    def step(self, X, Y, columns, lrate, it=None):
        """One SGD step, layer by layer, on the given columns of X and Y.

        Args:
            X (ndarray): A d by n matrix of training points.
            Y (ndarray): A k by n one-hot matrix of their classes.
            columns (ndarray): The b column indices of the batch.
            lrate (float): The step size.
            it (int): The iteration, for the error message.

        Returns:
            scalar: The batch's loss before the step.

        Raises:
            FloatingPointError: The loss or a Linear layer's gradient is not
                finite; no weight has changed.

        """
        try:
            loss = self.loss.forward(self.forward(X[:, columns]), Y[:, columns])
        except NonFiniteError:  # the data are finite: a layer's output overflowed
            raise diverged(it, np.nan) from None
        self.backward(self.loss.backward())
        grads = [g for m in self.linear_layers for g in (m.dLdW, m.dLdW0)]
        if not (np.isfinite(loss) and all(np.isfinite(g).all() for g in grads)):
            raise diverged(it, loss)
        self.sgd_step(lrate)
        return loss

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
        # Overflow shows as a layer refusing a non-finite input: say so in terms of X.
        with np.errstate(over="ignore", invalid="ignore"):
            for k, m in enumerate(self.modules):
                try:
                    Xt = m.forward(Xt)
                except NonFiniteError:
                    raise NonFiniteError(
                        f"X is finite but the network's values overflowed before modules[{k}] "
                        f"({type(m).__name__}); scale X down, or check the weights"
                    ) from None

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

    def save(self, path):
        """Writes the model to a ``.npz`` file, atomically (see ``fastffn.load``).

        Args:
            path (str or PathLike): Where to write.

        """
        persistence.save(self, path)

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
            print_report(it, self.accuracy(X, Y), cur_loss)


# Iterations run in compiled chunks of at most this many, to bound index memory.
CHUNK = 1 << 16


def print_report(it, acc, loss):
    """Prints the notebook's report line."""
    print("Iteration =", it, "\tAcc =", acc, "\tLoss =", loss, flush=True)


def diverged(it, loss):
    return FloatingPointError(
        f"training diverged at iteration {it}: the loss ({loss}) or a gradient is not "
        "finite; the model keeps its weights from before that step (try a smaller lrate)"
    )
