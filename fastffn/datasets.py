"""Datasets as X (d by n) and one-hot Y (classes by n), column-major like the notebook.

The course's toy datasets ship with the package in ``data/datasets.json``;
their labels y become one-hot columns as ``Y = vstack([1 - y, y])``, so the
class index equals y. ``blobs`` and ``spirals`` generate problems of any size.
"""

import json
from functools import cache
from importlib.resources import files

import numpy as np

__all__ = [
    "blobs",
    "hard",
    "spirals",
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
    return X, one_hot(entry["y"][0], 2)  # == vstack([1 - y, y]) for labels 0 and 1


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


def one_hot(y, classes):
    """The classes by n one-hot matrix of the n integer labels y."""
    return np.eye(classes)[:, np.asarray(y)]


def blobs(n=1000, d=2, classes=3, seed=0):
    """Gaussian blobs: one unit-variance cloud per class around random centres.

    Args:
        n (int): Number of points.
        d (int): Number of features.
        classes (int): Number of classes.
        seed (int): Seed of the generator; the same seed gives the same data.

    Returns:
        tuple: X (d by n) and one-hot Y (classes by n), float64.

    """
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-4, 4, size=(classes, d))
    y = rng.integers(classes, size=n)
    X = centres[y] + rng.standard_normal((n, d))
    return X.T.copy(), one_hot(y, classes)


def spirals(n=1000, classes=3, seed=0, noise=0.15):
    """Interleaved 2-D spiral arms, one per class: not separable by a few lines.

    Args:
        n (int): Number of points.
        classes (int): Number of classes (arms).
        seed (int): Seed of the generator.
        noise (float): Standard deviation of the noise added to the angle.

    Returns:
        tuple: X (2 by n) and one-hot Y (classes by n), float64.

    """
    rng = np.random.default_rng(seed)
    y = rng.integers(classes, size=n)
    radius = rng.uniform(0.05, 1, size=n)
    angle = 4 * radius + 2 * np.pi * y / classes + rng.normal(0, noise, size=n)
    X = np.vstack([radius * np.cos(angle), radius * np.sin(angle)])
    return X, one_hot(y, classes)
