"""The canary of Numba's private parts (``fastffn.backends._numba_private``): on a Numba
version they were written for, each is in use and right; where they are off, training
gives the same numbers through the public fallbacks."""

import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from fastffn.backends import _numba_private as private


def test_the_private_parts_are_in_use_on_a_tested_numba():
    """Off on an older Numba (the floor, which CI also tests: the fallbacks hold); a newer
    one fails here until someone has checked the private parts on it."""
    version = tuple(int(v) for v in numba.__version__.split(".")[:2])
    if version > max(private.TESTED):
        pytest.fail(
            f"numba {numba.__version__} is newer than {private.TESTED}: check the private parts "
            "of fastffn.backends._numba_private on it, then add it to TESTED"
        )
    assert private.ACTIVE == (version in private.TESTED)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gemm_update_is_the_product_and_borrowed_the_array(dtype):
    """Or, where the private parts are off, says so (-1) and leaves W to the caller."""
    rng = np.random.default_rng(0)
    W, A, G = (rng.standard_normal(s).astype(dtype) for s in [(7, 5), (7, 9), (5, 9)])

    @numba.njit
    def update(W, A, G, alpha):
        return private.gemm_update(private.borrowed(W), A, G, alpha)

    expected = W + dtype(-0.5) * (A @ G.T) if private.ACTIVE else W.copy()
    assert update(W, A, G, dtype(-0.5)) == (0 if private.ACTIVE else -1)
    np.testing.assert_allclose(W, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_training_through_the_fallbacks_gives_the_same_weights():
    code = textwrap.dedent(
        """
        import numpy as np, fastffn
        from fastffn.backends import _numba_private
        from fastffn.sequential import network
        X, Y = fastffn.hard()
        net = network((2, 16, 16, 2))
        np.random.seed(3)
        net.sgd(X, Y, 300, 0.01, batch_size=4, report=False, every=None)
        print(_numba_private.ACTIVE)
        print(repr(net.modules[0].W.ravel().tolist()))
        """
    )
    runs = []
    for flag in ("1", "0"):
        env = {**__import__("os").environ, "FASTFFN_NUMBA_PRIVATE": flag}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        ).stdout.split("\n")
        runs.append((out[0], np.array(eval(out[1]))))
    assert [active for active, _ in runs] == [str(private.ACTIVE), "False"]
    np.testing.assert_allclose(runs[1][1], runs[0][1], rtol=1e-10, atol=1e-10)
