"""Every kernel of the table: numba against the numpy reference."""

import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastffn import backends
from fastffn.backends import BACKENDS
from fastffn.testing import KERNELS, TOLERANCE, assert_agree


def signature(func):
    return inspect.signature(getattr(func, "py_func", func))


@pytest.mark.parametrize("name", KERNELS)
def test_every_backend_defines_the_kernel_with_one_signature(name):
    signatures = {signature(getattr(backends.load(b), name)) for b in BACKENDS}
    assert len(signatures) == 1, signatures


def test_the_table_lists_every_public_kernel():
    public = {
        name
        for name, f in vars(backends.load("numpy")).items()
        if inspect.isfunction(f) and f.__module__ == "fastffn.backends.numpy"
    }
    # softmax_jacobian is the reference's helper: forming it is what the fast path avoids.
    assert public - {"softmax_jacobian"} == set(KERNELS)


sizes = st.integers(min_value=1, max_value=40)


@pytest.mark.parametrize("name", KERNELS)
@settings(max_examples=40, deadline=None)
@given(
    m=sizes,
    n=sizes,
    b=st.one_of(st.just(1), sizes),
    dtype=st.sampled_from([np.float64, np.float32]),
    seed=st.integers(0, 2**32 - 1),
)
def test_numba_matches_the_reference(name, m, n, b, dtype, seed):
    kernel = KERNELS[name]
    args = kernel.inputs(np.random.default_rng(seed), dtype, m, n, b)
    assert_agree(actual=kernel("numba", *args), desired=kernel("numpy", *args))


@pytest.mark.parametrize("name", KERNELS)
def test_kernels_keep_the_dtype(name, backend, dtype):
    out = KERNELS[name](backend, *KERNELS[name].inputs(np.random.default_rng(0), dtype, 3, 4, 5))
    for array in out if isinstance(out, tuple) else (out,):
        if np.ndim(array):
            assert array.dtype == (np.intp if name == "class_fun" else dtype)


def test_blas_path_matches_the_reference(dtype):
    """Sizes above BLAS_MIN_FLOPS take np.dot instead of the loops."""
    for name in ("linear_forward", "linear_backward"):
        args = KERNELS[name].inputs(np.random.default_rng(1), dtype, 64, 48, 32)
        assert_agree(actual=KERNELS[name]("numba", *args), desired=KERNELS[name]("numpy", *args))


def test_softmax_forward_ties_and_class_fun_pick_the_first(backend):
    Y = np.array([[1.0, 0.0, 0.5], [1.0, 1.0, 0.5]])
    np.testing.assert_array_equal(KERNELS["class_fun"](backend, Y), [0, 1, 0])


def _loop_of(scalar, dtype=np.float64):
    """A jitted loop of the jitted scalar function over a vector, into ``dtype``."""
    from numba import njit

    @njit
    def apply(x):
        out = np.empty_like(x, dtype=dtype)
        for i in range(x.size):
            out[i] = scalar(x[i])
        return out

    return apply


def test_simd_exp_is_libm_exp_within_2_ulp():
    """The vectorisable exp of the softmax and sigmoid loops, over exp's whole float64 range."""
    from fastffn.backends.simd import simd_exp

    exps = _loop_of(simd_exp)

    rng = np.random.default_rng(0)
    ranges = [(-1, 1), (-40, 0), (-750, -700), (700, 709.78), (-1e-9, 1e-9)]
    x = np.concatenate([rng.uniform(lo, hi, 10_000) for lo, hi in ranges])
    got, want = exps(x), np.exp(x)
    assert np.all(np.abs(got - want) <= 2 * np.spacing(want))
    edges = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 709.79, -745.2, -745.1, 1e-300])
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(exps(edges), np.exp(edges))  # inf, 0, denormal, NaN
    x32 = x[:20_000].astype(np.float32)  # computed in float64, then rounded: no worse than
    got32 = exps(x32).astype(np.float32)  # a correctly rounded float32 exp (NumPy's is 2 ulp)
    want32 = np.exp(x32.astype(np.float64)).astype(np.float32)
    assert np.all(np.abs(got32 - want32) <= np.spacing(want32))


def test_simd_expf_is_within_1_ulp_of_exp_over_the_float32_range():
    """The float32 exp of the float32 softmax and sigmoid loops (``exp_lanes``)."""
    from fastffn.backends.simd import simd_expf

    exps = _loop_of(simd_expf, np.float32)

    rng = np.random.default_rng(0)
    ranges = [(-1, 1), (-20, 20), (-104, -85), (80, 88.72), (-1e-6, 1e-6)]
    x = np.concatenate([rng.uniform(lo, hi, 20_000) for lo, hi in ranges]).astype(np.float32)
    got, exact = exps(x), np.exp(x.astype(np.float64))
    assert np.all(np.abs(got - exact) <= np.spacing(exact.astype(np.float32)))
    edges = np.array([np.nan, np.inf, -np.inf, 0, -0.0, 88.73, -104, -103.9, 1e-30], np.float32)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(exps(edges), np.exp(edges))  # inf, 0, denormal, NaN


def test_simd_tanh_is_libm_tanh_within_3_ulp():
    """The vectorisable tanh of the Tanh loops, over tanh's range and its edges."""
    from fastffn.backends.simd import simd_tanh

    tanhs = _loop_of(simd_tanh)

    rng = np.random.default_rng(0)
    ranges = [(-1, 1), (-0.2, 0.2), (-0.4, 0.4), (-5, 5), (-25, 25), (-1e-8, 1e-8)]
    x = np.concatenate([rng.uniform(lo, hi, 10_000) for lo, hi in ranges])
    got, want = tanhs(x), np.tanh(x)
    assert np.all(np.abs(got - want) <= 3 * np.spacing(np.abs(want)))
    edges = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-300, -5e-324, 22.0, 800.0, -800.0])
    np.testing.assert_array_equal(tanhs(edges), np.tanh(edges))
    np.testing.assert_array_equal(np.signbit(tanhs(edges)), np.signbit(np.tanh(edges)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_tanh_loop_that_tanh_forward_runs_without_avx512(dtype):
    """``tanh_forward`` calls np.tanh where NumPy's tanh is AVX-512 (as on our machine):
    the jitted loop it runs elsewhere is checked here directly."""
    from fastffn.backends.numba import _tanh_forward

    Z = (np.random.default_rng(0).standard_normal((64, 32)) * 4).astype(dtype)
    np.testing.assert_allclose(_tanh_forward(Z), np.tanh(Z), **TOLERANCE[np.dtype(dtype)])
    assert _tanh_forward(Z).dtype == dtype
