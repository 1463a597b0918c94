"""Datasets as X (d by n) and one-hot Y (classes by n), column-major like the notebook.

The course's toy datasets ship with the package in ``data/datasets.json``;
their labels y become one-hot columns as ``Y = vstack([1 - y, y])``, so the
class index equals y. ``blobs`` and ``spirals`` generate problems of any size;
``digits`` is real data, scikit-learn's bundled handwritten digits.
"""

import json
from functools import cache
from importlib.resources import files

import numpy as np

__all__ = [
    "blobs",
    "digits",
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


def digits():
    """Handwritten digits: scikit-learn's bundled copy of the UCI set, 1,797 8 by 8 images.

    Needs scikit-learn, an optional extra: ``pip install 'fastffn[sklearn]'``.

    Returns:
        tuple: X (64 by 1797, pixels / 16, in [0, 1]) and one-hot Y (10 by 1797).

    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "digits() needs scikit-learn, an optional extra: pip install 'fastffn[sklearn]'"
        ) from None
    X, y = load_digits(return_X_y=True)
    return np.ascontiguousarray(X.T / 16), one_hot(y, 10)


def split(X, Y, test_size, seed=0):
    """Holds out a random ``test_size`` share of the columns (samples).

    Args:
        X (ndarray): d by n points.
        Y (ndarray): k by n one-hot classes.
        test_size (float): The share held out, in (0, 1); at least one sample each side.
        seed (int): Seed of the shuffle.

    Returns:
        tuple: X_train, Y_train, X_test, Y_test, columns in shuffled order.

    """
    n = X.shape[1]
    held = round(test_size * n) if 0 < test_size < 1 else 0
    if not 0 < held < n:
        raise ValueError(
            f"test_size must leave a sample on each side of the split of {n}, got {test_size}"
        )
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:held], order[held:]
    return X[:, train], Y[:, train], X[:, test], Y[:, test]
