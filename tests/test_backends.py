"""What choosing a backend costs: imports, memory, and the inputs it accepts."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastffn import NLL, Linear, ReLU, Sequential, SoftMax, Tanh


def run_python(code):
    """Runs ``code`` in a fresh interpreter and returns its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_numpy_backend_never_imports_numba():
    out = run_python(
        """
        import sys
        import fastffn
        fastffn.set_backend("numpy")
        X, Y = fastffn.hard()
        nn = fastffn.Sequential([fastffn.Linear(2, 4), fastffn.Tanh(),
                                 fastffn.Linear(4, 2), fastffn.SoftMax()], fastffn.NLL())
        nn.sgd(X, Y, iters=10)
        print("numba" in sys.modules)
        """
    )
    assert out.splitlines()[-1] == "False"


def test_numba_softmax_backward_never_forms_the_jacobian():
    """n = 2000 classes, b = 256: the reference's n*n*b tensor would need 8 GB."""
    out = run_python(
        """
        import resource
        import numpy as np
        from fastffn.testing import KERNELS
        k = KERNELS["softmax_backward"]
        k("numba", *k.inputs(np.random.default_rng(0), np.float64, 1, 4, 4))  # compile
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        args = k.inputs(np.random.default_rng(0), np.float64, 1, 2000, 256)
        out = k("numba", *args)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(out.shape, (peak - before) / 1024)
        """
    )
    shape, grown_mib = out.rsplit(" ", 1)
    assert shape == "(2000, 256)"
    # Inputs and output are 3 x 4 MB; the Jacobian alone would be 8000 MB.
    assert float(grown_mib) < 100, grown_mib


def awkward_inputs(dtype_model=np.float64):
    """The same 2 by 5 data as float32, int, bool, Fortran order, a strided view, a list."""
    base = np.arange(10, dtype=np.float64).reshape(2, 5) - 4
    return {
        "float64": base,
        "float32": base.astype(np.float32),
        "float16": base.astype(np.float16),
        "int": base.astype(np.int64),
        "bool": base > 0,
        "fortran": np.asfortranarray(base),
        "strided": np.repeat(base, 2, axis=1)[:, ::2],
        "transposed": np.ascontiguousarray(base.T).T,
        "list": base.tolist(),
    }


@pytest.mark.parametrize("kind", list(awkward_inputs()))
def test_awkward_inputs_are_converted(kind, backend, dtype):
    X = awkward_inputs()[kind]
    np.random.seed(0)
    model = Sequential(
        [Linear(2, 3), Tanh(), Linear(3, 3), ReLU(), Linear(3, 2), SoftMax()],
        NLL(),
        backend=backend,
        dtype=dtype,
    )
    Y = np.array([[1, 0, 1, 0, 1], [0, 1, 0, 1, 0]])
    out = model.forward(X)
    assert out.dtype == dtype and out.shape == (2, 5)
    expected = model.forward(np.asarray(X, dtype=np.float64).astype(dtype))
    np.testing.assert_array_equal(out, expected)
    np.random.seed(0)
    model.sgd(X, Y, iters=5)


@pytest.mark.parametrize("kind", ["float32", "int", "bool", "fortran", "strided", "list"])
@pytest.mark.parametrize("layer", [Tanh, ReLU, SoftMax])
def test_activations_accept_awkward_inputs(layer, kind, backend):
    Z = awkward_inputs()[kind]
    layer = layer()
    layer.backend = backend
    A = layer.forward(Z)
    assert A.dtype == (np.float32 if kind == "float32" else np.float64)
    assert layer.backward(np.ones_like(A)).shape == A.shape
