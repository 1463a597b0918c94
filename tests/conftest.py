import os

import numpy as np
import pytest
from hypothesis import settings

from fastffn.backends import BACKENDS

DTYPES = [np.float64, np.float32]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend in turn."""
    return request.param


@pytest.fixture(params=DTYPES, ids=["float64", "float32"])
def dtype(request):
    """Each supported dtype in turn."""
    return np.dtype(request.param)


# CI runs the same hypothesis examples every time (CI=true there), so that a run
# fails for a change, never for a draw; locally each run explores new examples.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
