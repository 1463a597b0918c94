"""What it means for two backends to agree: one tolerance per dtype, here only.

Every equivalence test, and the benchmarks' agreement tracking, use these.
"""

import numpy as np

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
