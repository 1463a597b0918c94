import numpy as np
import pytest

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
