"""Filling Numba's cache ahead of use: ``fastffn warmup``, for wheels, images and containers.

Each kind runs a tiny job that compiles what that kind of run compiles, in both
dtypes, into the per-user cache (``NUMBA_CACHE_DIR`` where set): a later process
loads the machine code instead of compiling it. The loops themselves are compiled
at install (``backends.aot``) where the install built them; where it did not, a
kind compiles them here, once for every architecture.
"""

import itertools
import warnings

import numpy as np

from . import functional
from .backends import OPS
from .datasets import hard
from .sequential import network

DTYPES = (np.float64, np.float32)


def _sgd():
    """One sample and a batch a step, with and without records, the notebook's step."""
    X, Y = hard()
    for dtype, batch_size, every in itertools.product(DTYPES, (1, 8), (5, None)):
        model = network((2, 4, 2), seed=0, dtype=dtype)
        model.sgd(X, Y, 10, batch_size=batch_size, report=False, every=every, accuracy=True)


def _optimizers():
    """Momentum, Nesterov and Adam, one sample and a batch a step."""
    X, Y = hard()
    for dtype, batch_size, rule in itertools.product(DTYPES, (1, 8), ("momentum", "adam")):
        model = network((2, 4, 2), seed=0, dtype=dtype)
        model.sgd(X, Y, 10, batch_size=batch_size, report=False, every=None, optimizer=rule)


def _classifier():
    """``FFNClassifier.fit`` with each solver (needs scikit-learn)."""
    from .sklearn import FFNClassifier

    X, Y = hard()
    y = Y.argmax(axis=0)
    for dtype, solver in itertools.product(("float64", "float32"), ("sgd", "adam")):
        with warnings.catch_warnings():  # two epochs do not converge
            warnings.simplefilter("ignore")
            FFNClassifier((4,), solver=solver, max_iter=2, dtype=dtype).fit(X.T, y)


def _sweep():
    """``fastffn.sweep`` of the notebook's network at batch 1."""
    from .sweeps import sweep

    X, Y = hard()
    for dtype in DTYPES:

        def build(dtype=dtype):
            return network((2, 10, 10, 2), seed=None, dtype=dtype)

        sweep(build, X, Y, iters=10, lrate=[0.01, 0.02], seed=0, every=5)


def _kernels():
    """Every function of ``fastffn.functional`` on the numba backend."""
    rng = np.random.default_rng(0)
    for dtype in DTYPES:
        A, W, W0 = (rng.standard_normal(s).astype(dtype) for s in ((3, 2), (3, 4), (4, 1)))
        Z = functional.linear(A, W, W0, backend="numba")
        functional.linear_backward(A, W, Z, backend="numba")
        for name in OPS[1:]:  # every op but linear, which is done above
            out = getattr(functional, name)(Z, backend="numba")
            getattr(functional, f"{name}_backward")(out, Z, backend="numba")
        P, Y = functional.softmax(Z, backend="numba"), np.eye(4, 2, dtype=dtype)
        functional.nll(P, Y, backend="numba")
        functional.softmax_nll_backward(P, Y, backend="numba")


#: The kinds of run ``warmup`` compiles for, by name.
KINDS = {
    "sgd": _sgd,
    "optimizers": _optimizers,
    "classifier": _classifier,
    "sweep": _sweep,
    "kernels": _kernels,
}


def warmup(kinds=None):
    """Compiles, into the cache, what runs of ``kinds`` compile (default: every kind).

    Args:
        kinds (list of str): Names among ``KINDS``.

    Returns:
        list: The kinds compiled for.

    """
    kinds = list(KINDS) if kinds is None else list(kinds)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"kinds must be among {sorted(KINDS)}, got {unknown}")
    state = np.random.get_state()  # the jobs seed the global state: the caller's is kept
    try:
        for kind in kinds:
            KINDS[kind]()
    finally:
        np.random.set_state(state)
    return kinds
