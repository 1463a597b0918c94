"""fastffn.functional: each function against its NumPy formula, on both backends, and its checks."""

import functools

import numpy as np
import pytest

from benchmarks.workloads import functional_arrays as data
from benchmarks.workloads import functional_calls
from fastffn import functional as F
from fastffn.backends import numpy as reference
from fastffn.testing import TOLERANCE, assert_agree

NAMES = list(functional_calls())
#: The functions that return more than one array, or a float: no ``out=``.
NO_OUT = ("linear_backward", "nll")


@pytest.mark.parametrize("name", NAMES)
def test_each_function_is_its_formula(name, backend, dtype):
    function, args, formula = functional_calls(dtype)[name]
    assert_agree(actual=function(*args, backend=backend), desired=formula())


def test_softmax_backward_is_the_notebooks_einsum(backend, dtype):
    _A, _W, _W0, Z, P, _Y = data(dtype)
    Jv = np.einsum("ikj,kj->ij", reference.softmax_jacobian(P), Z)
    assert_agree(actual=F.softmax_backward(P, Z, backend=backend), desired=Jv)


@pytest.mark.parametrize("name", [name for name in NAMES if name not in NO_OUT])
def test_out_is_written_and_returned(name, backend, dtype):
    function, args, formula = functional_calls(dtype)[name]
    call, expected = functools.partial(function, *args), formula()
    out = np.full(expected.shape, np.nan, dtype=dtype)
    assert call(out=out, backend=backend) is out
    np.testing.assert_allclose(out, expected, **TOLERANCE[np.dtype(dtype)])
    with pytest.raises(ValueError, match="out must be"):
        call(out=np.empty((1, 1), dtype=dtype), backend=backend)


def test_linear_backward_and_nll(backend, dtype):
    A, W, _W0, Z, P, Y = data(dtype)
    dA, dW, dW0 = F.linear_backward(A, W, Z, backend=backend)
    assert_agree(actual=(dA, dW, dW0), desired=(W @ Z, A @ Z.T, Z.sum(axis=1, keepdims=True)))
    loss = F.nll(P, Y, backend=backend)
    assert type(loss) is float
    assert loss == pytest.approx(float(-np.sum(Y * np.log(P))), rel=TOLERANCE[dtype]["rtol"])


def test_shapes_that_do_not_fit_raise_valueerror_on_every_backend(backend):
    A, W, W0, Z, P, Y = data(np.float64)
    with pytest.raises(ValueError, match="A must have shape"):
        F.linear(A[:-1], W, W0, backend=backend)  # numba's kernel would read past A
    with pytest.raises(ValueError, match="W0 must have shape"):
        F.linear(A, W, W0[:-1], backend=backend)
    with pytest.raises(ValueError, match="dZ must have shape"):
        F.linear_backward(A, W, Z[:, :-1], backend=backend)
    with pytest.raises(ValueError, match="dA must have shape"):
        F.relu_backward(P, Z[:-1], backend=backend)
    with pytest.raises(ValueError, match="Y must have shape"):
        F.nll(P, Y[:, :-1], backend=backend)
    with pytest.raises(ValueError, match="2-D"):
        F.relu(np.ones(3), backend=backend)


def test_mixed_dtypes_raise_typeerror_naming_both(backend):
    A, W, W0, Z, P, _Y = data(np.float64)
    with pytest.raises(TypeError, match="W and A must have one dtype"):
        F.linear(A.astype(np.float32), W, W0, backend=backend)
    with pytest.raises(TypeError, match="P and dP must have one dtype"):
        F.softmax_backward(P, Z.astype(np.float32), backend=backend)


def test_array_likes_and_ints_are_converted_as_in_the_layers(backend):
    out = F.relu([[1, -2], [3, 4]], backend=backend)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[1, 0], [3, 4]])
    Z = np.arange(12.0).reshape(3, 4).T  # Fortran order
    np.testing.assert_array_equal(F.tanh(Z, backend=backend), np.tanh(Z))


def test_bad_slope_and_backend_are_named():
    with pytest.raises(ValueError, match="slope"):
        F.leaky_relu(np.ones((2, 2)), slope=-1)
    with pytest.raises(ValueError, match="backend"):
        F.relu(np.ones((2, 2)), backend="jax")


def test_nan_shows_in_the_result(backend):
    Z = np.array([[np.nan, 1.0]])
    assert np.isnan(F.sigmoid(Z, backend=backend)[0, 0])
