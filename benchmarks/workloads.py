"""The workloads fastffn's speed is measured on, shared by every benchmark.

pytest-benchmark (``tests/benchmarks``) and asv (``benchmarks/``) both time these,
so their figures describe the same work. They live beside the asv suites, not in
the installed package.
Each function prepares its inputs and returns ``run``, a function of no
arguments that does the timed work once and returns its result. Preparation
includes a first call, so that compilation never lands in a timed round.
"""

import contextlib
import copy
import functools
import itertools
import os

import numpy as np

from fastffn import hard
from fastffn.sequential import network
from fastffn.testing import KERNELS

#: Training paths: the reference, numba layer by layer, numba compiled.
PATHS = ("numpy", "numba-layers", "numba")

#: W1, the notebook's job: 2-10-10-2 ReLU, batch 1, this many iterations on hard().
NOTEBOOK_ITERS = 10_000

#: W2, a larger MLP: 784-256-256-10, batch 128, one epoch of this many samples.
MLP_WIDTHS, MLP_BATCH, MLP_SAMPLES = (784, 256, 256, 10), 128, 8192


#: First-call latency: what a fresh interpreter runs, the notebook's job once.
FIRST_SGD_SCRIPT = """
import fastffn
from fastffn.sequential import network
X, Y = fastffn.hard()
network((2, 10, 10, 2)).sgd(X, Y, 10000, report=False, every=None)
"""
#: The same where the install built no extension (``backends.aot``): the loop is jitted.
FIRST_SGD_JITTED_SCRIPT = (
    "import fastffn.backends.aot as aot\naot.extension = lambda: None\n" + FIRST_SGD_SCRIPT
)


def _trainer(widths, X, Y, path, dtype, iters, report=False, every=None, **sgd):
    """``run()`` for training a fresh ``network(widths)`` on X, Y along ``path`` (report
    lines, where ``report`` is True, printed to ``os.devnull``)."""
    backend = "numpy" if path == "numpy" else "numba"
    # Drawn once: a run times the sgd call, as JAX's times its loop from given weights.
    start = network(widths, backend=backend, dtype=dtype)
    compiled = path != "numba-layers"

    def train(iters):
        model = copy.deepcopy(start)
        np.random.seed(1)
        with contextlib.redirect_stdout(_devnull()) if report else contextlib.nullcontext():
            model.sgd(X, Y, iters, report=report, every=every, compiled=compiled, **sgd)
        return model

    train(2)  # compiles, where there is anything to compile
    return lambda: train(iters)


def notebook_job(path, iters=NOTEBOOK_ITERS, dtype=np.float64):
    """W1: the notebook's 2-10-10-2 ReLU network on hard(), batch 1, no reports.

    Args:
        path (str): One of ``PATHS``.
        iters (int): SGD iterations.
        dtype (dtype): float64 or float32.

    Returns:
        callable: ``run()`` trains a freshly seeded model and returns it.

    """
    X, Y = hard()
    return _trainer((2, 10, 10, 2), X, Y, path, dtype, iters, lrate=0.005)


@functools.cache
def _devnull():
    """``os.devnull`` opened once: a run times what printing costs, not opening a file
    (opening and closing it in each run added 1.5-2% to W1 with reports)."""
    return open(os.devnull, "w")  # kept open for the life of the process


def notebook_job_reports(report, iters=NOTEBOOK_ITERS):
    """W1 on the numba backend with the notebook's report lines every 250 steps
    (printed to ``os.devnull``), or with no records at all (``report=False``)."""
    X, Y = hard()
    every = 250 if report else None
    return _trainer((2, 10, 10, 2), X, Y, "numba", np.float64, iters, report, every, lrate=0.005)


def _jax():
    """JAX, float64 on; ImportError where it is missing (``pip install 'fastffn[compare]'``)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def _jax_step(widths, X, model=None):
    """JAX's SGD step ``step(params, x, y, lrate)`` on one batch of rows (x: b by d, y: b
    by k), the notebook's network, and its start: ``model``'s weights (default: seeded)."""
    jax = _jax()
    jnp = jax.numpy

    def loss(params, x, y):
        a = x
        for k, (W, W0) in enumerate(params):
            z = a @ W + W0
            a = jax.nn.softmax(z, axis=1) if k == len(params) - 1 else jax.nn.relu(z)
        return -jnp.sum(y * jnp.log(a))

    def step(params, x, y, lrate):
        grads = jax.grad(loss)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - lrate * g, params, grads)

    model = model or network(widths, dtype=X.dtype)
    start = [(jnp.asarray(m.W), jnp.asarray(m.W0.ravel())) for m in model.linear_layers]
    return jax, step, start


def jax_sgd(widths, X, Y, iters, lrate, batch_size=1):
    """The same training in JAX: ``jax.jit`` over ``lax.fori_loop``, for comparison.

    The same initial weights and sample indices as ``_trainer`` draws, in X's
    dtype; JAX's data in its own n by d layout, prepared outside the timing, and
    a batch of one taken by ``dynamic_slice`` (larger ones by ``take``).

    Returns:
        callable: ``run()`` trains and returns the list of (W, W0) pairs.

    """
    jax, step, start = _jax_step(widths, X)
    jnp, lax = jax.numpy, jax.lax
    np.random.seed(1)
    indices = jnp.asarray(np.random.randint(X.shape[1], size=(iters, batch_size)))
    rows, targets = jnp.asarray(X.T.copy()), jnp.asarray(Y.T.copy())

    def batch(data, i):
        if batch_size == 1:
            return lax.dynamic_slice_in_dim(data, indices[i, 0], 1, axis=0)
        return jnp.take(data, indices[i], axis=0)

    @jax.jit
    def train(params):
        def body(i, params):
            return step(params, batch(rows, i), batch(targets, i), lrate)

        return lax.fori_loop(0, iters, body, params)

    jax.block_until_ready(train(start))  # compiles
    return lambda: [(W, W0[:, None]) for W, W0 in jax.block_until_ready(train(start))]


def notebook_job_jax(iters=NOTEBOOK_ITERS):
    """W1 in JAX (see ``jax_sgd``)."""
    X, Y = hard()
    return jax_sgd((2, 10, 10, 2), X, Y, iters, 0.005)


def mlp_epoch_jax(dtype=np.float64, samples=MLP_SAMPLES):
    """W2 in JAX: ``jax.jit`` of one step, over sequential batches of an n by d array.

    Returns:
        callable: ``run()`` trains an epoch from the seeded weights; returns them.

    """
    X, Y = mlp_data(dtype, samples)
    jax, step, start = _jax_step(MLP_WIDTHS, X)
    rows, targets = jax.numpy.asarray(X.T.copy()), jax.numpy.asarray(Y.T.copy())
    step = jax.jit(functools.partial(step, lrate=1e-3))
    batches = [(k, k + MLP_BATCH) for k in range(0, samples - MLP_BATCH + 1, MLP_BATCH)]

    def run():
        params = start
        for a, b in batches:
            params = step(params, rows[a:b], targets[a:b])
        return jax.block_until_ready(params)

    run()  # compiles
    return run


#: W5, a learning-rate sweep: the notebook's job for this many learning rates, seed 0.
SWEEP_MODELS = (16, 256)


def sweep_lrates(models):
    """W5's learning rates: ``models`` of them, log-spaced from 1e-3 to 5e-2."""
    return list(np.geomspace(1e-3, 5e-2, models))


def _notebook_model():
    return network((2, 10, 10, 2), seed=None)


def sweep_job(path, models=16, iters=NOTEBOOK_ITERS):
    """W5: ``models`` copies of the notebook's job, one learning rate each, seed 0.

    Args:
        path (str): ``"sweep"`` (``fastffn.sweep``, all at once) or ``"one after
            another"`` (``Sequential.sgd`` for each, as a loop over the grid would).
        models (int): Learning rates in the grid.
        iters (int): SGD steps for each model.

    Returns:
        callable: ``run()`` trains them and returns the list of models.

    """
    from fastffn.sweeps import sweep

    X, Y = hard()
    lrates = sweep_lrates(models)

    def one_after_another(iters):
        trained = []
        for lrate in lrates:
            np.random.seed(0)
            model = _notebook_model()
            model.sgd(X, Y, iters, lrate, report=False, every=None)
            trained.append(model)
        return trained

    def together(iters):
        return sweep(_notebook_model, X, Y, iters=iters, lrate=lrates, seed=0, every=None).models

    train = together if path == "sweep" else one_after_another
    train(2)  # compiles
    return lambda: train(iters)


#: A sweep of wider models: 16 learning rates of 64-128-128-10 at batch 8 on blobs.
WIDE_SWEEP = (64, 128, 128, 10), 8, 1000


def wide_sweep_job(path):
    """``WIDE_SWEEP``: 16 models of wide layers, ``"sweep"`` or ``"one after another"``.

    Returns:
        callable: ``run()`` trains them and returns the list of models.

    """
    from fastffn.datasets import blobs
    from fastffn.sweeps import sweep

    widths, b, iters = WIDE_SWEEP
    X, Y = blobs(n=2000, d=widths[0], classes=widths[-1], seed=0)
    lrates = list(np.geomspace(1e-4, 3e-3, 16))  # none diverges

    def build():
        return network(widths, seed=None)

    def one_after_another():
        trained = []
        for lrate in lrates:
            np.random.seed(0)
            model = build()
            model.sgd(X, Y, iters, lrate, batch_size=b, report=False, every=None)
            trained.append(model)
        return trained

    def together():
        return sweep(build, X, Y, iters=iters, lrate=lrates, seed=0, batch_size=b,
                     every=None).models  # fmt: skip

    run = together if path == "sweep" else one_after_another
    run()  # compiles
    return run


def sweep_job_jax(models=16, iters=NOTEBOOK_ITERS):
    """W5 in JAX: ``jax.jit(jax.vmap(train))`` over the learning rates, each train a
    ``lax.fori_loop`` as ``jax_sgd``'s; the same initial weights and samples.

    Returns:
        callable: ``run()`` trains and returns the stacked (W, W0) pairs.

    """
    X, _ = hard()
    np.random.seed(0)
    model = _notebook_model()
    indices = np.random.randint(X.shape[1], size=(iters, 1))
    jax, step, start = _jax_step((2, 10, 10, 2), X, model)
    jnp, lax = jax.numpy, jax.lax
    rows, targets = jnp.asarray(X.T.copy()), jnp.asarray(hard()[1].T.copy())
    indices = jnp.asarray(indices)

    def train(lrate):
        def body(i, params):
            x = lax.dynamic_slice_in_dim(rows, indices[i, 0], 1, axis=0)
            y = lax.dynamic_slice_in_dim(targets, indices[i, 0], 1, axis=0)
            return step(params, x, y, lrate)

        return lax.fori_loop(0, iters, body, start)

    run_all = jax.jit(jax.vmap(train))
    lrates = jnp.asarray(sweep_lrates(models))

    def run():
        return jax.block_until_ready(run_all(lrates))

    run()  # compiles
    return run


#: The Dask scaling run: a grid of this many configurations (8 learning rates by
#: 4 seeds) of a 64-64-64-10 ReLU network on blobs of 10,000 by 64, at batch 1.
#: Steps enough that training, not the run's fixed costs (data sent, models built
#: and drawn, tasks), is most of it: at 3,000 the second worker gave 1.19-1.70x.
DASK_GRID, DASK_WIDTHS, DASK_ITERS = (8, 4), (64, 64, 64, 10), 8000


def dask_sweep_job(client, iters=DASK_ITERS):
    """The Dask scaling run of ``fastffn.sweep`` on ``client``'s workers.

    Returns:
        callable: ``run()`` trains the grid and returns its ``SweepResult``.

    """
    from fastffn.datasets import blobs
    from fastffn.sweeps import sweep

    X, Y = blobs(10_000, DASK_WIDTHS[0], DASK_WIDTHS[-1], seed=0)
    rates, seeds = DASK_GRID
    grid = {"lrate": list(np.geomspace(1e-4, 1e-2, rates)), "seed": list(range(seeds))}

    def run(iters):
        build = functools.partial(network, DASK_WIDTHS, seed=None)
        return sweep(build, X, Y, iters=iters, every=None, client=client, **grid)

    run(2)  # compiles, on each worker
    return lambda: run(iters)


#: The width table: 16-w-w-4 ReLU networks on blobs, this many steps at each batch size.
WIDTHS, WIDTH_BATCHES, WIDTH_ITERS = (10, 32, 100, 256), (1, 32), 2000


def width_data():
    """The width table's data: blobs of 2,000 points, 16 features, 4 classes."""
    from fastffn.datasets import blobs

    return blobs(2000, 16, 4, seed=0)


def width_job(path, width, batch_size):
    """A 16-w-w-4 ReLU network, ``WIDTH_ITERS`` steps of ``batch_size`` on ``width_data()``."""
    X, Y = width_data()
    widths = (16, width, width, 4)
    return _trainer(widths, X, Y, path, np.float64, WIDTH_ITERS, lrate=1e-3, batch_size=batch_size)


def width_job_jax(width, batch_size):
    """``width_job`` in JAX (see ``jax_sgd``)."""
    X, Y = width_data()
    return jax_sgd((16, width, width, 4), X, Y, WIDTH_ITERS, 1e-3, batch_size)


def mlp_data(dtype=np.float64, samples=MLP_SAMPLES):
    """W2's random data: X (784 by samples) and one-hot Y (10 by samples)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((MLP_WIDTHS[0], samples)).astype(dtype)
    Y = np.eye(MLP_WIDTHS[-1], dtype=dtype)[:, rng.integers(MLP_WIDTHS[-1], size=samples)]
    return X, Y


def mlp_epoch(path, dtype=np.float64, samples=MLP_SAMPLES, every=None):
    """W2: one epoch of a 784-256-256-10 ReLU MLP, batches of 128, random data (records
    every ``every`` steps as ``sgd``'s defaults take them, where given).

    Returns:
        callable: ``run()`` trains a freshly seeded model and returns it.

    """
    X, Y = mlp_data(dtype, samples)
    iters = samples // MLP_BATCH
    return _trainer(MLP_WIDTHS, X, Y, path, dtype, iters, every=every, lrate=1e-3,
                    batch_size=MLP_BATCH)  # fmt: skip


def mlp_gemms(dtype=np.float64, samples=MLP_SAMPLES):
    """W2's BLAS bound: only the matrix products of its epoch, at its shapes, through NumPy's
    BLAS: a step's forward ``W.T @ A`` for each layer, backward ``W @ dZ`` (not for the
    data) and ``A @ dZ.T`` for each layer, into arrays made once.

    Returns:
        callable: ``run()`` does the epoch's products once.

    """
    rng = np.random.default_rng(0)
    b, widths = MLP_BATCH, MLP_WIDTHS
    Ws = [rng.standard_normal((m, n)).astype(dtype) for m, n in itertools.pairwise(widths)]
    As = [rng.standard_normal((m, b)).astype(dtype) for m in widths]
    dWs = [np.empty_like(W) for W in Ws]
    products = []
    for k, W in enumerate(Ws):
        products.append((W.T, As[k], As[k + 1]))  # forward
        products.append((As[k], As[k + 1].T, dWs[k]))  # the weights' gradient
        if k:
            products.append((W, As[k + 1], As[k]))  # the gradient by the layer's input

    def run():
        for _ in range(samples // b):
            for left, right, out in products:
                np.matmul(left, right, out=out)
        return dWs

    run()
    return run


def kernel_call(name, backend, m, n, b, dtype=np.float64):
    """One call of a kernel of the table (W3 is softmax_backward at b = 128).

    Args:
        name (str): A key of ``fastffn.testing.KERNELS``.
        backend (str): ``"numba"`` or ``"numpy"``.
        m (int): Inputs of a linear layer.
        n (int): Outputs of a layer, or classes.
        b (int): Batch size.
        dtype (dtype): float64 or float32.

    Returns:
        callable: ``run()`` calls the kernel on fixed random inputs.

    """
    kernel = KERNELS[name]
    args = kernel.inputs(np.random.default_rng(0), dtype, m, n, b)
    kernel(backend, *args)
    return lambda: kernel(backend, *args)


def functional_arrays(dtype=np.float64, m=5, n=4, b=3, seed=0):
    """Fixed random A (m by b), W (m by n), W0 (n by 1), logits Z, their softmax P and
    one-hot Y (n by b) of ``dtype``."""
    from fastffn.backends import numpy as reference

    rng = np.random.default_rng(seed)
    A, W = rng.standard_normal((m, b)).astype(dtype), rng.standard_normal((m, n)).astype(dtype)
    W0 = rng.standard_normal((n, 1)).astype(dtype)
    Z = (rng.standard_normal((n, b)) * 3).astype(dtype)
    Y = np.eye(n, dtype=dtype)[:, rng.integers(n, size=b)]
    return A, W, W0, Z, reference.softmax_forward(Z), Y


def functional_calls(dtype=np.float64, m=5, n=4, b=3, seed=0):
    """Each ``fastffn.functional`` function beside its plain NumPy formula, on fixed arrays.

    Args:
        dtype (dtype): float64 or float32.
        m (int): Inputs of the linear layer (A is m by b, W m by n).
        n (int): Its outputs, and the rows of every other array (n by b).
        b (int): Batch size.
        seed (int): Of the random arrays (``functional_arrays``).

    Returns:
        dict: ``name: (function, args, formula)``: ``function(*args)`` is the call,
            ``formula()`` the NumPy expression it computes.

    """
    from fastffn import functional as F

    A, W, W0, Z, P, Y = functional_arrays(dtype, m, n, b, seed)
    slope, one = Z.dtype.type(0.2), Z.dtype.type(1)

    def softmax():
        E = np.exp(Z - Z.max(axis=0))
        return E / E.sum(axis=0)

    return {
        "linear": (F.linear, (A, W, W0), lambda: W.T @ A + W0),
        "linear_backward": (
            F.linear_backward,
            (A, W, Z),
            lambda: (W @ Z, A @ Z.T, Z.sum(axis=1, keepdims=True)),
        ),
        "tanh": (F.tanh, (Z,), lambda: np.tanh(Z)),
        "relu": (F.relu, (Z,), lambda: np.maximum(Z, 0)),
        "leaky_relu": (F.leaky_relu, (Z, 0.2), lambda: np.where(Z > 0, Z, slope * Z)),
        "sigmoid": (F.sigmoid, (Z,), lambda: 1 / (1 + np.exp(-Z))),
        "tanh_backward": (F.tanh_backward, (P, Z), lambda: (1 - P**2) * Z),
        "relu_backward": (F.relu_backward, (P, Z), lambda: Z * (P != 0)),
        "leaky_relu_backward": (
            F.leaky_relu_backward,
            (Z, P, 0.2),
            lambda: P * np.where(Z > 0, one, slope),
        ),
        "sigmoid_backward": (F.sigmoid_backward, (P, Z), lambda: P * (1 - P) * Z),
        "softmax": (F.softmax, (Z,), softmax),
        "softmax_backward": (F.softmax_backward, (P, Z), lambda: P * (Z - (P * Z).sum(axis=0))),
        "nll": (F.nll, (P, Y), lambda: -np.sum(Y * np.log(P))),
        "softmax_nll_backward": (F.softmax_nll_backward, (P, Y), lambda: P * Y.sum(axis=0) - Y),
    }


#: W4: scikit-learn's digits (75/25 split, pixels / 16), a 64-64-10 ReLU network,
#: batch 32, 20 epochs, no L2 penalty: each solver with its learning rate.
DIGITS_SOLVERS = {"sgd": 0.1, "adam": 0.001}


def digits_job(path, solver):
    """W4: ``FFNClassifier`` (path "numba") or ``MLPClassifier`` (path "scikit-learn").

    The same hyperparameters for both: ``solver`` at ``DIGITS_SOLVERS[solver]``,
    momentum 0 for sgd, 20 epochs whatever the loss does (tol 0).

    Returns:
        tuple: ``run()``, which fits a fresh classifier and returns it, and the
            held-out data ``(X_test, y_test)`` to score it on.

    """
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    from fastffn.sklearn import FFNClassifier

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, test_size=0.25, random_state=0)
    params = {
        "hidden_layer_sizes": (64,), "solver": solver, "batch_size": 32, "max_iter": 20,
        "learning_rate_init": DIGITS_SOLVERS[solver], "alpha": 0.0, "momentum": 0.0,
        "tol": 0.0, "n_iter_no_change": 20, "random_state": 0,
    }  # fmt: skip
    estimator = FFNClassifier if path == "numba" else MLPClassifier

    def run():
        with warnings.catch_warnings():  # 20 epochs, converged or not
            warnings.simplefilter("ignore")
            return estimator(**params).fit(X_train, y_train)

    run()  # compiles
    return run, (X_test, y_test)


#: The busy-machine rows: W2 (float64 and float32) and W5 (16 models), fastffn's and JAX's.
BUSY_WORKLOADS = {
    "W2 MLP float64": (lambda: mlp_epoch("numba"), lambda: mlp_epoch_jax(np.float64)),
    "W2 MLP float32": (
        lambda: mlp_epoch("numba", np.float32),
        lambda: mlp_epoch_jax(np.float32),
    ),
    "W5 sweep of 16": (lambda: sweep_job("sweep"), lambda: sweep_job_jax(16)),
}


class Spinner:
    """Another process that keeps one core busy while a run is timed beside it: started
    once, stopped (SIGSTOP) between runs and resumed (SIGCONT) for one, so that quiet and
    busy runs can take turns at no cost of starting it. A fresh interpreter, not a fork of
    this process (JAX's threads make forking it unsafe)."""

    def __init__(self):
        import signal
        import subprocess
        import sys

        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        self.signal = signal
        os.kill(self.process.pid, signal.SIGSTOP)

    def beside(self, run):
        """``run`` as a function of no arguments that runs it while the spinner spins."""

        def busy():
            os.kill(self.process.pid, self.signal.SIGCONT)
            try:
                return run()
            finally:
                os.kill(self.process.pid, self.signal.SIGSTOP)

        return busy

    def close(self):
        self.process.kill()
        self.process.wait()
