"""The kernel table and the choice of backend.

``KERNELS`` is the one list of kernels: each backend module defines a function
of every name in it, with the same signature. The equivalence tests, the
pytest-benchmark suite and the asv suite all iterate this table, and each entry
knows how to build valid inputs for itself at a given size, so a kernel added
here is tested and benchmarked without further registration.

Backends are imported on first use: choosing ``"numpy"`` never imports numba.
"""

import contextlib
import importlib
import os
from dataclasses import dataclass

import numpy as np

BACKENDS = ("numba", "numpy")

_default_backend = os.environ.get("FASTFFN_BACKEND", "numba")
_loaded = {}  # name -> module, so that a layer finds its kernels with one lookup


def check_backend(name):
    """Returns ``name`` if it names a backend, else raises ValueError."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return name


def load(name=None):
    """Returns the module of kernels of backend ``name`` (default: the current one)."""
    name = name or _default_backend
    try:
        return _loaded[name]
    except KeyError:
        module = importlib.import_module(f"fastffn.backends.{check_backend(name)}")
        return _loaded.setdefault(name, module)


def get_backend():
    """Returns the name of the process-wide default backend."""
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
    """Sets the default backend inside a ``with`` block, restoring it after."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


# --- the table ----------------------------------------------------------------

# How each kind of argument is drawn, given (rng, rows, cols): valid inputs,
# so that the reference is well defined (probabilities sum to one, and so on).
_DRAW = {
    "normal": lambda rng, r, c: rng.standard_normal((r, c)),
    "logits": lambda rng, r, c: rng.standard_normal((r, c)) * 5,
    "tanh": lambda rng, r, c: np.tanh(rng.standard_normal((r, c))),
    "relu": lambda rng, r, c: np.maximum(0, rng.standard_normal((r, c))),
    "probabilities": lambda rng, r, c: _softmax(rng.standard_normal((r, c)) * 3),
    "one_hot": lambda rng, r, c: np.eye(r)[:, rng.integers(r, size=c)],
}


def _softmax(Z):
    E = np.exp(Z - Z.max(axis=0))
    return E / E.sum(axis=0)


@dataclass(frozen=True)
class Kernel:
    """One row of the table: a kernel's name and the arguments it takes.

    Attributes:
        name (str): The function's name in every backend module.
        args (str): One word per positional argument: ``kind:RC`` for an array
            drawn as ``_DRAW[kind]`` with rows R and columns C among ``m``
            (inputs), ``n`` (outputs or classes), ``b`` (batch) or ``1``;
            ``lrate`` for a scalar step size.

    """

    name: str
    args: str

    def inputs(self, rng, dtype, m, n, b):
        """Draws the positional arguments of a valid call at the given sizes."""
        size = {"m": m, "n": n, "b": b, "1": 1}
        dtype = np.dtype(dtype)
        out = []
        for arg in self.args.split():
            if arg == "lrate":
                out.append(dtype.type(0.005))
            else:
                kind, (rows, cols) = arg.split(":")
                out.append(_DRAW[kind](rng, size[rows], size[cols]).astype(dtype))
        return tuple(out)

    @property
    def sizes(self):
        """Which of m, n and b the kernel's cost depends on, e.g. ``"mnb"``."""
        dims = "".join(arg.partition(":")[2] for arg in self.args.split())
        return "".join(d for d in "mnb" if d in dims)

    def __call__(self, backend, *args):
        """Runs the kernel of ``backend`` on ``args``."""
        return getattr(load(backend), self.name)(*args)


KERNELS = {
    k.name: k
    for k in [
        Kernel("linear_forward", "normal:mn normal:n1 normal:mb"),
        Kernel("linear_backward", "normal:mn normal:mb normal:nb"),
        Kernel("sgd_update", "normal:mn normal:mn lrate"),
        Kernel("tanh_forward", "normal:nb"),
        Kernel("tanh_backward", "tanh:nb normal:nb"),
        Kernel("relu_forward", "normal:nb"),
        Kernel("relu_backward", "relu:nb normal:nb"),
        Kernel("softmax_forward", "logits:nb"),
        Kernel("softmax_backward", "probabilities:nb normal:nb"),
        Kernel("softmax_nll_backward", "probabilities:nb one_hot:nb"),
        Kernel("nll_forward", "probabilities:nb one_hot:nb"),
        Kernel("nll_backward", "probabilities:nb one_hot:nb"),
        Kernel("class_fun", "probabilities:nb"),
    ]
}
