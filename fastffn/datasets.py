"""The course's toy datasets, as X (2 by n) and one-hot Y (2 by n).

The numbers ship with the package in ``data/datasets.json``. Labels y become
one-hot columns as ``Y = vstack([1 - y, y])``, so the class index equals y.
"""

import json
from functools import cache
from importlib.resources import files

import numpy as np

__all__ = [
    "hard",
    "xor",
    "xor_more",
    "super_simple_separable",
    "super_simple_separable_through_origin",
]


@cache
def _load():
    return json.loads(files("fastffn").joinpath("data/datasets.json").read_text())


def _dataset(name):
    entry = _load()[name]
    X = np.array(entry["X"], dtype=np.float64)
    y = np.array(entry["y"], dtype=np.float64)
    return X, np.vstack([1 - y, y])


def hard():
    """The notebook's dataset: 20 points, not linearly separable.

    Returns:
        tuple: X (2 by 20) and one-hot Y (2 by 20), float64.

    """
    return _dataset("hard")


def xor():
    """The four corners of XOR: X (2 by 4) and one-hot Y (2 by 4)."""
    return _dataset("xor")


def xor_more():
    """XOR with eight points: X (2 by 8) and one-hot Y (2 by 8)."""
    return _dataset("xor_more")


def super_simple_separable():
    """Four linearly separable points: X (2 by 4) and one-hot Y (2 by 4)."""
    return _dataset("super_simple_separable")


def super_simple_separable_through_origin():
    """Four points separable through the origin: X (2 by 4) and one-hot Y (2 by 4)."""
    return _dataset("super_simple_separable_through_origin")
