"""The kernel table and what it means for two backends to agree.

``KERNELS`` is the one list of kernels: each backend module defines a function
of every name in it, with the same signature. The equivalence tests, the
pytest-benchmark suite and the asv suite all iterate this table, and each entry
knows how to build valid inputs for itself at a given size, so a kernel added
here is tested and benchmarked without further registration. The activations'
kernels come from the registry of built-in layers (``fastffn.layers.BUILTIN``).

The tolerances are one per dtype, here only: every equivalence test, and the
benchmarks' agreement tracking, use them.
"""

from dataclasses import dataclass

import numpy as np

from . import backends
from .layers import BUILTIN, Activation

#: Tolerance of one kernel call, fast backend against the reference.
TOLERANCE = {
    np.dtype(np.float64): {"rtol": 1e-12, "atol": 1e-12},
    np.dtype(np.float32): {"rtol": 1e-5, "atol": 1e-5},
}

#: Tolerance on weights after thousands of SGD steps, which compound rounding.
TRAINING_TOLERANCE = {
    np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-10},
    np.dtype(np.float32): {"rtol": 1e-3, "atol": 1e-4},
}


def assert_agree(actual, desired, tolerance=TOLERANCE):
    """Asserts that ``actual`` (fast) matches ``desired`` (reference).

    Both may be arrays, scalars or tuples of them; dtypes must match exactly and
    values within the tolerance of the desired dtype. Integer results (class
    indices) must be equal.
    """
    if isinstance(desired, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(desired)
        for a, d in zip(actual, desired, strict=True):
            assert_agree(a, d, tolerance)
        return
    actual, desired = np.asarray(actual), np.asarray(desired)
    if desired.ndim == 0:  # Numba returns every float scalar as a Python float
        actual = actual.astype(desired.dtype)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    assert actual.dtype == desired.dtype, (actual.dtype, desired.dtype)
    if desired.dtype.kind == "f":
        np.testing.assert_allclose(actual, desired, **tolerance[desired.dtype])
    else:
        np.testing.assert_array_equal(actual, desired)


def worst_difference(actual, desired, tolerance=TOLERANCE):
    """The largest ``|actual - desired|`` in units of the allowed difference.

    Args:
        actual: Arrays, scalars or tuples of them (fast backend).
        desired: The same from the reference.
        tolerance (dict): dtype -> rtol and atol, as ``TOLERANCE``.

    Returns:
        float: Below 1 where ``assert_agree`` passes; the benchmarks track it.

    """
    if isinstance(desired, tuple):
        return max(worst_difference(a, d, tolerance) for a, d in zip(actual, desired, strict=True))
    desired = np.asarray(desired)
    tol = tolerance.get(desired.dtype, {"rtol": 0.0, "atol": 0.5})  # integers: exact
    desired, actual = desired.astype(np.float64), np.asarray(actual, dtype=np.float64)
    allowed = tol["atol"] + tol["rtol"] * np.abs(desired)
    return float(np.max(np.abs(actual - desired) / allowed))


# --- the table ----------------------------------------------------------------

# How each kind of argument is drawn, given (rng, rows, cols): valid inputs, so
# that the reference is well defined (probabilities sum to one, and so on). An
# activation's name draws its outputs: the reference forward of "logits".
_DRAW = {
    "normal": lambda rng, r, c: rng.standard_normal((r, c)),
    "logits": lambda rng, r, c: rng.standard_normal((r, c)) * 3,
    "one_hot": lambda rng, r, c: np.eye(r)[:, rng.integers(r, size=c)],
    "square": lambda rng, r, c: rng.standard_normal((r, c)) ** 2,  # Adam's second moments
}


def _draw(kind, rng, rows, cols):
    if kind in _DRAW:
        return _DRAW[kind](rng, rows, cols)
    forward = getattr(backends.load("numpy"), f"{kind}_forward")
    layer = next(c for c in BUILTIN.values() if getattr(c, "kernel", None) == kind)()
    Z = _DRAW["logits"](rng, rows, cols)
    return forward(Z, *layer.coefficients(Z.dtype))  # a default layer's coefficient


@dataclass(frozen=True)
class Kernel:
    """One row of the table: a kernel's name and the arguments it takes.

    Attributes:
        name (str): The function's name in every backend module.
        args (str): One word per positional argument: ``kind:RC`` for an array
            drawn as ``kind`` (see ``_DRAW``) with rows R and columns C among
            ``m`` (inputs), ``n`` (outputs or classes), ``b`` (batch) or ``1``;
            ``lrate`` for a scalar step size, a number for a hyperparameter.

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
            elif ":" not in arg:  # a number: a hyperparameter
                out.append(dtype.type(float(arg)))
            else:
                kind, (rows, cols) = arg.split(":")
                # C order, as the layers hand every array to a kernel
                out.append(np.ascontiguousarray(_draw(kind, rng, size[rows], size[cols]), dtype))
        return tuple(out)

    @property
    def sizes(self):
        """Which of m, n and b the kernel's cost depends on, e.g. ``"mnb"``."""
        dims = "".join(arg.partition(":")[2] for arg in self.args.split())
        return "".join(d for d in "mnb" if d in dims)

    def __call__(self, backend, *args):
        """Runs the kernel of ``backend`` on ``args``."""
        return getattr(backends.load(backend), self.name)(*args)


def _activation_kernels():
    for cls in BUILTIN.values():
        if issubclass(cls, Activation):
            coef = "" if cls.coef is None else " 0.01"  # LeakyReLU's slope
            yield Kernel(f"{cls.kernel}_forward", "logits:nb" + coef)
            yield Kernel(f"{cls.kernel}_backward", f"{cls.kernel}:nb normal:nb" + coef)


KERNELS = {
    k.name: k
    for k in [
        Kernel("linear_forward", "normal:mn normal:n1 normal:mb"),
        Kernel("linear_backward", "normal:mn normal:mb normal:nb"),
        Kernel("sgd_update", "normal:mn normal:mn lrate"),
        Kernel("momentum_update", "normal:mn normal:mn normal:mn lrate 0.9 0.01"),
        Kernel("nesterov_update", "normal:mn normal:mn normal:mn lrate 0.9 0.01"),
        Kernel(
            "adam_update", "normal:mn normal:mn square:mn normal:mn lrate 0.9 0.999 1e-8 0.01 0.25"
        ),
        *_activation_kernels(),
        Kernel("softmax_nll_backward", "softmax:nb one_hot:nb"),
        Kernel("nll_forward", "softmax:nb one_hot:nb"),
        Kernel("nll_backward", "softmax:nb one_hot:nb"),
        Kernel("class_fun", "softmax:nb"),
    ]
}
