"""Every hidden activation of the registry through every training path, against the reference.

The paths: the numpy backend layer by layer (the reference), the numba layers
layer by layer, the compiled loops (one sample a step, a batch a step) and a
sweep (models side by side). Whole runs of 3,000 steps end on the same weights,
within ``TRAINING_TOLERANCE`` (1e-10 in float64).
"""

import numpy as np
import pytest

import fastffn
from fastffn import NLL, Linear, Sequential, SoftMax
from fastffn.layers import HIDDEN_ACTIVATIONS
from fastffn.packing import compilable
from fastffn.testing import TRAINING_TOLERANCE

from .test_compiled import blobs

ITERS = 3000


def network(activation, dtype, backend):
    layers = [Linear(3, 6), activation(), Linear(6, 5), activation(), Linear(5, 3), SoftMax()]
    return Sequential(layers, NLL(), backend=backend, dtype=dtype)


def weights(model):
    return [w for m in model.linear_layers for w in (m.W, m.W0)]


@pytest.mark.parametrize("name", sorted(HIDDEN_ACTIVATIONS))
@pytest.mark.parametrize("batch_size", [1, 8])
def test_every_activation_ends_on_the_same_weights_on_every_path(name, batch_size, dtype):
    activation = HIDDEN_ACTIVATIONS[name]
    X, Y = blobs()
    lrate = 0.01 if batch_size == 1 else 0.002
    runs = {}
    for path, backend, compiled in [
        ("numpy", "numpy", True),
        ("numba layers", "numba", False),
        ("numba compiled", "numba", True),
    ]:
        np.random.seed(7)
        model = network(activation, dtype, backend)
        assert compilable(model) == (backend == "numba")
        start = [w.copy() for w in weights(model)]
        model.sgd(X, Y, ITERS, lrate, batch_size=batch_size, report=False, every=None,
                  compiled=compiled)  # fmt: skip
        runs[path] = weights(model)

    def build():
        return network(activation, dtype, "numba")

    result = fastffn.sweep(build, X, Y, iters=ITERS, lrate=lrate, seed=7, batch_size=batch_size,
                           every=None)  # fmt: skip
    runs["sweep"] = weights(result.models[0])
    tolerance = TRAINING_TOLERANCE[np.dtype(dtype)]
    for path, ws in runs.items():
        for w, w_ref in zip(ws, runs["numpy"], strict=True):
            assert w.dtype == dtype, path
            np.testing.assert_allclose(w, w_ref, **tolerance, err_msg=path)
    assert not np.allclose(runs["numpy"][0], start[0])  # it trained
