"""fastffn: the NumPy teaching notebook's feed-forward network, on Numba kernels.

``from fastffn import *`` gives the notebook's names (layers, Sequential and its
datasets), so the notebook's code runs unchanged. Nothing compiles at import,
and numba is imported only when its backend is first used.
"""

from ._validation import NonFiniteError
from .backends import get_backend, set_backend, use_backend
from .datasets import (
    hard,
    super_simple_separable,
    super_simple_separable_through_origin,
    xor,
    xor_more,
)
from .layers import NLL, Layer, LeakyReLU, Linear, ReLU, Sigmoid, SoftMax, Tanh
from .optimizers import Optimizer
from .persistence import load, save
from .sequential import Sequential
from .sweeps import SweepResult, sweep

__version__ = "0.1.0"

__all__ = [
    "Layer",
    "Linear",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "SoftMax",
    "NLL",
    "Sequential",
    "Optimizer",
    "sweep",
    "SweepResult",
    "NonFiniteError",
    "save",
    "load",
    "get_backend",
    "set_backend",
    "use_backend",
    "hard",
    "xor",
    "xor_more",
    "super_simple_separable",
    "super_simple_separable_through_origin",
]
