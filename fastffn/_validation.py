"""Checks run in Python before any kernel, so no Numba error reaches a user.

Arrays reach the kernels as C-contiguous, finite, 2-D float32 or float64
matrices. Conversions made on the way, each safe and documented:

- bool and integer arrays, and Python lists of numbers, become float64;
- float16 becomes float32;
- Fortran-ordered and non-contiguous views are copied to C order;
- inside a Linear layer, inputs take the layer's dtype (the model's dtype wins).

Anything else (complex, object, strings) is refused with a TypeError.
"""

import numbers

import numpy as np


class NonFiniteError(ValueError):
    """An array holds NaN or inf where finite numbers are needed."""


def float_dtype(dtype):
    """The float dtype an array of ``dtype`` computes in, or None if it has none."""
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    return None


def check_dtype(name, dtype):
    """Returns ``dtype`` as float32 or float64, else raises TypeError naming ``name``."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from None
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got {dtype}")
    return dtype


def as_matrix(name, x, dtype=None, rows=None, cols=None, finite=True):
    """Returns ``x`` as a C-contiguous finite 2-D float array, or raises.

    Args:
        name (str): The argument's name, for messages.
        x (array_like): The input, d by b.
        dtype (dtype): The dtype wanted; None keeps x's float dtype (see module doc).
        rows (int): The number of rows required, or None.
        cols (int): The number of columns required, or None.
        finite (bool): Whether to refuse NaN and inf.

    Returns:
        ndarray: A C-contiguous rows by cols array of dtype; ``x`` itself when it
            already is one.

    Raises:
        TypeError: x is not numeric or not real.
        ValueError: x is not 2-D, is empty, has the wrong shape or holds NaN or inf.

    """
    if (
        type(x) is np.ndarray
        and x.ndim == 2
        and x.dtype in (np.float32, np.float64)
        and (dtype is None or x.dtype == dtype)
        and x.flags.c_contiguous
        and x.size
        and (rows is None or x.shape[0] == rows)
        and (cols is None or x.shape[1] == cols)
    ):
        if finite and not np.isfinite(x).all():
            raise NonFiniteError(f"{name} must be finite, got NaN or inf in an array of {x.shape}")
        return x  # the common case, kept short: layers call this on every pass
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except ValueError as err:
            raise TypeError(f"{name} must be a 2-D array of numbers: {err}") from None
    target = float_dtype(x.dtype)
    if target is None:
        raise TypeError(f"{name} must hold real numbers (float, int or bool), got dtype {x.dtype}")
    if x.ndim != 2:
        hint = "; for one sample use x.reshape(-1, 1)" if x.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (features by batch), got shape {x.shape}{hint}")
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {x.shape}")
    if rows is not None and x.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows, got shape {x.shape}")
    if cols is not None and x.shape[1] != cols:
        raise ValueError(f"{name} must have {cols} columns, got shape {x.shape}")
    return as_matrix(name, np.ascontiguousarray(x, dtype=dtype or target), finite=finite)


def as_count(name, value, minimum=1, maximum=None):
    """Returns ``value`` as an int in [minimum, maximum], else raises naming ``name``."""
    integral = type(value) is int or isinstance(value, numbers.Integral)  # int first: no ABC
    if isinstance(value, bool) or not integral:
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


#: The seeds NumPy's global random state takes (``np.random.seed``): 0 to 2**32 - 1.
SEED_MAX = 2**32 - 1


def as_seed(name, value):
    """Returns ``value`` as a seed of NumPy's global state (an int from 0 to ``SEED_MAX``),
    else raises naming ``name`` and the range."""
    return as_count(name, value, minimum=0, maximum=SEED_MAX)


def as_step_size(name, value):
    """Returns ``value`` as a float if it is finite and > 0, else raises naming ``name``."""
    return as_real(name, value, minimum=0.0, inclusive=False)


def as_real(name, value, minimum=0.0, inclusive=True):
    """Returns ``value`` (any real number: int, float, Fraction, NumPy scalar) as a finite
    float >= ``minimum`` (> where not ``inclusive``), else raises naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    number = float(value)
    if not (np.isfinite(number) and (number >= minimum if inclusive else number > minimum)):
        bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")
    return number


def all_finite(arrays):
    """Whether every array of the list holds only finite numbers (one test for all of them)."""
    return bool(np.isfinite(np.concatenate([a.ravel() for a in arrays])).all())


def check_one_hot(name, Y):
    """Raises ValueError unless each column of Y is one-hot (or a probability vector)."""
    sums = Y.sum(axis=0)
    bad = np.flatnonzero((Y < 0).any(axis=0) | (np.abs(sums - 1) > 1e-4))
    if bad.size:
        raise ValueError(
            f"{name} must hold one-hot (or probability) columns: non-negative, each summing "
            f"to 1; column {bad[0]} is {Y[:, bad[0]]}"
        )
