"""Choosing a backend: which module of kernels a layer runs on.

Each backend module (``numpy.py``, the reference; ``numba.py``, the fast one)
defines the same kernels with the same signatures; ``fastffn.testing.KERNELS``
lists them. Backends are imported on first use: choosing ``"numpy"`` never
imports numba.

The default backend is process-wide (``set_backend``, initially
``FASTFFN_BACKEND`` or ``"numba"``) and may be overridden inside a ``with
use_backend(...)`` block, which holds for the current thread (or asyncio task)
only.
"""

import contextlib
import contextvars
import glob
import importlib
import os
from typing import NamedTuple

import numpy as np

from .numpy import ACTIVATIONS

BACKENDS = ("numba", "numpy")
#: Columns an accuracy pass runs at once, on every path: bounds its memory on large data.
ACCURACY_BLOCK = 4096
#: From this many multiply-adds (m * n) a product with one column goes to BLAS; below,
#: plain loops along memory (for the notebook's 2-10-10-2 network a BLAS call costs
#: more than the arithmetic; up to 100 by 100 the loops are 1-3x faster).
BLAS_MIN_FLOPS = 32_768
#: From this many (m * n * b) a product of several columns goes to BLAS: its kernels
#: hold b columns' sums in registers, where a loop reads and writes them at every
#: multiply-add (16 by 10 by 32: 2.3x faster in BLAS; 10 by 10 by 2: 1.7x).
BLAS_MIN_BATCH_FLOPS = 256
#: Models side by side in a group of the sweeps' loop (``numba_lanes``): its SIMD lanes.
LANES = 8
#: The compiled loops' op codes, one per kernel family: ``fastffn.packing`` maps a
#: Linear layer to "linear" and an activation to its kernel name.
OPS = ("linear", *ACTIVATIONS, "softmax")


class Packed(NamedTuple):
    """A model as every compiled loop takes it (``fastffn.packing.pack`` makes one).

    Attributes:
        ops (ndarray): The L module op codes (int64), indices into ``OPS``.
        shapes (ndarray): L by 3 int64: for a Linear module its m, n and the
            offset of its W in params (W0 follows W); for others 0, the width and 0.
        coefs (ndarray): L numbers of the model's dtype: each activation's
            coefficient (LeakyReLU's slope), 0 where it has none.
        params (ndarray): Every weight, flat, of the model's dtype.

    """

    ops: np.ndarray
    shapes: np.ndarray
    coefs: np.ndarray
    params: np.ndarray


_default_backend = None  # read from FASTFFN_BACKEND on first use
_block_backend = contextvars.ContextVar("fastffn_backend", default=None)
_loaded = {}  # name -> module, so that a layer finds its kernels with one lookup


def check_backend(name, argument="backend"):
    """Returns ``name`` if it names a backend, else raises ValueError naming ``argument``."""
    if name not in BACKENDS:
        raise ValueError(f"{argument} must be one of {BACKENDS}, got {name!r}")
    return name


def load(name=None):
    """Returns the module of kernels of backend ``name`` (default: the current one)."""
    if name is None:  # get_backend's checks only until a default is set: every call comes here
        name = _block_backend.get() or _default_backend or get_backend()
    try:
        return _loaded[name]
    except (KeyError, TypeError):  # not loaded yet, or no name at all
        module = importlib.import_module(f"fastffn.backends.{check_backend(name)}")
        return _loaded.setdefault(name, module)


def get_backend():
    """Returns the name of the default backend here (a ``use_backend`` block's, or the process's).

    Raises:
        ValueError: The environment variable ``FASTFFN_BACKEND`` names no backend.

    """
    global _default_backend
    name = _block_backend.get()
    if name is not None:
        return name
    if _default_backend is None:
        env = os.environ.get("FASTFFN_BACKEND", "numba")
        _default_backend = check_backend(env, "the environment variable FASTFFN_BACKEND")
    return _default_backend


def set_backend(name):
    """Sets the process-wide default backend, used by every layer given none.

    Args:
        name (str): ``"numba"`` (the default) or ``"numpy"`` (the reference).
            The environment variable ``FASTFFN_BACKEND`` sets the initial value.

    """
    global _default_backend
    _default_backend = check_backend(name)


@contextlib.contextmanager
def use_backend(name):
    """Sets the default backend inside a ``with`` block, for this thread only."""
    token = _block_backend.set(check_backend(name))
    try:
        yield
    finally:
        _block_backend.reset(token)


def sources():
    """The files compiled code depends on: every backend module, and ``optimizers.py``,
    whose rule codes the loops read. Their contents stamp Numba's cache and the
    ahead-of-time loop (``aot``)."""
    backends = os.path.dirname(__file__)
    paths = sorted(glob.glob(os.path.join(backends, "*.py")))
    return [*paths, os.path.join(os.path.dirname(backends), "optimizers.py")]
