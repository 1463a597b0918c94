"""The floors under three targets fastffn's issues set, measured: costs no code of ours removes.

Run from the repository's root, with OpenBLAS's tuning variables unset for this command only::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.limits

- ``call``: at 10 by 1, ``np.tanh``; a function that checks only its argument's class,
  rank and dtype and then calls ``np.tanh``: the least a validated call costs; and
  ``functional.tanh``, which also finds the backend and takes ``out=``.
- ``gather``: W2's BLAS bound (``workloads.mlp_gemms``) and ``gather_batches`` of one
  epoch's random batches from the 784 by 8192 X, as ``sgd`` gathers them: the bound plus the
  gather, against 1.2x the bound.
- ``share``: two equal jitted tasks on two threads, quiet and beside a spinning process:
  the slowdown the OS gives a sweep of two groups of lanes.
"""

import functools
import time
import timeit
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from fastffn import functional
from fastffn.backends.numba_loop import gather_batches

from . import workloads

_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


def fastest(run, rounds=7):
    """The least time of ``rounds`` calls of ``run``, in ms."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def call():
    """The least a validated call costs at 10 by 1, against ``np.tanh`` and ``F.tanh``."""

    def checked_tanh(Z, *, out=None, backend=None):
        if Z.__class__ is np.ndarray and Z.ndim == 2 and Z.dtype in _FLOATS and out is None:
            return np.tanh(Z)
        raise TypeError("Z")

    Z = np.random.default_rng(0).standard_normal((10, 1))
    runs = {"np.tanh": np.tanh, "checked then np.tanh": checked_tanh, "F.tanh": functional.tanh}
    ns = {k: min(timeit.repeat(lambda f=f: f(Z), number=20_000, repeat=9)) / 20_000 * 1e9
          for k, f in runs.items()}  # fmt: skip
    for name, t in ns.items():
        print(f"call   {name:22s} {t:6.0f} ns  {t / ns['np.tanh']:.2f}x np.tanh's time")


def gather():
    """W2's BLAS bound and the gather of one epoch's batches, each dtype."""
    b, n = workloads.MLP_BATCH, workloads.MLP_SAMPLES
    for dtype in (np.float64, np.float32):
        bound = fastest(workloads.mlp_gemms(dtype))
        X, _ = workloads.mlp_data(dtype)
        indices = np.random.default_rng(0).integers(n, size=(n // b, b))
        out = np.empty((n // b, X.shape[0], b), dtype)
        took = fastest(functools.partial(gather_batches, X, indices, out))
        name, share = np.dtype(dtype).name, took / bound
        print(f"gather {name}: bound {bound:.1f} ms, gather {took:.1f} ms ({share:.2f}x the "
              f"bound): the two {1 + share:.2f}x the bound")  # fmt: skip


@numba.njit(nogil=True)
def _work(steps):
    x = 0.0
    for i in range(steps):
        x = x * 0.999999 + i  # a dependency chain: one core's pace, no memory
    return x


def share(steps=60_000_000):
    """Two equal tasks on two threads, quiet and beside a spinning process."""
    _work(1)
    spinner = workloads.Spinner()
    with ThreadPoolExecutor(2) as pool:

        def two():
            return [f.result() for f in [pool.submit(_work, steps) for _ in range(2)]]

        try:
            quiet, busy = fastest(two, 5), fastest(spinner.beside(two), 5)
        finally:
            spinner.close()
    print(f"share  two equal tasks on two threads: quiet {quiet:.0f} ms, beside a spinning "
          f"process {busy:.0f} ms: {busy / quiet:.2f}x slower (1.33x on 1.5 cores)")  # fmt: skip


if __name__ == "__main__":
    call()
    gather()
    share()
