"""Where Numba caches fastffn's compiled kernels: a per-user directory, never the package.

Numba's own default writes ``__pycache__`` files next to the source, which for an
installed fastffn is inside ``site-packages``: ``pip uninstall`` leaves them
behind, and a leftover ``fastffn/`` folder then shadows a later install. Here the
cache lives in ``NUMBA_CACHE_DIR`` when that is set, else in the user's cache
directory (``$XDG_CACHE_HOME/fastffn``, ``~/.cache/fastffn``; the platform's
equivalent on macOS and Windows). Where it cannot be written, kernels compile
in memory for each process instead, without error.
"""

import functools
import hashlib
import os
import sys

import numba

from . import sources
from ._numba_private import cache_on_disk, with_slp_vectorizer


def cache_dir():
    """The directory fastffn's compiled kernels are cached in."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.path.join(os.environ["NUMBA_CACHE_DIR"], "fastffn")
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~/AppData/Local")
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "fastffn", "numba")


def _source_stamp(py_file):
    """What a cached function (of file ``py_file``, one of them) is valid for: the contents of
    every backend module, not its file's alone.

    Numba's own stamp is the function's file: a kernel compiled into a loop of
    another file would stay cached after an edit. Here an edit to any backend
    module recompiles them all, as does one to ``optimizers.py``, whose rule codes
    the loops read.
    """
    return tuple(_file_hash(path, *_stat(path)) for path in sources())


@functools.lru_cache(maxsize=256)
def _file_hash(path, mtime, size):
    """The SHA-256 of a file's contents, read once for each (mtime, size) it has."""
    with open(path, "rb") as file:
        return hashlib.sha256(file.read()).hexdigest()


def _stat(path):
    st = os.stat(path)
    return st.st_mtime, st.st_size


def _cache_path(subpath):
    return os.path.join(cache_dir(), subpath)


def jit(func=None, slp_vectorize=False, **options):
    """``numba.njit(**options)``, cached on disk in ``cache_dir()`` where it can be written.

    Division follows NumPy's error model (x / 0 is inf or NaN, as in the
    reference backend; the training loops catch them), not Python's: a check
    for zero at each division would keep loops from SIMD (Adam's update: 3.5x).

    ``slp_vectorize=True`` compiles the function, and everything it calls, with
    LLVM's SLP vectorizer, which packs the same operation on neighbouring
    numbers into one SIMD instruction without a loop. Numba turns it off for
    every function (``NUMBA_SLP_VECTORIZE``, since 0.57, for miscompilations
    then reported); ``numba_lanes`` is written for it, and its results are
    tested against training each model alone.
    """
    if func is None:
        return lambda func: jit(func, slp_vectorize, **options)
    options.setdefault("error_model", "numpy")
    dispatcher = numba.njit(**options)(func)
    cache_on_disk(dispatcher, _cache_path, _source_stamp)  # njit(cache=True), relocated
    if slp_vectorize:
        with_slp_vectorizer(dispatcher)
    return dispatcher
