"""Where Numba caches fastffn's compiled kernels: a per-user directory, never the package.

Numba's own default writes ``__pycache__`` files next to the source, which for an
installed fastffn is inside ``site-packages``: ``pip uninstall`` leaves them
behind, and a leftover ``fastffn/`` folder then shadows a later install. Here the
cache lives in ``NUMBA_CACHE_DIR`` when that is set, else in the user's cache
directory (``$XDG_CACHE_HOME/fastffn``, ``~/.cache/fastffn``; the platform's
equivalent on macOS and Windows). Where it cannot be written, kernels compile
in memory for each process instead, without error.
"""

import os
import sys

import numba
from numba.core import caching
from numba.core.compiler_lock import global_compiler_lock

from . import sources


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


class _Locator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """Numba's per-source-file cache, rooted at ``cache_dir()``."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = os.path.join(cache_dir(), self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self):
        return self._cache_path

    def get_source_stamp(self):
        """The contents of every backend module (and of the function's own file,
        for a module ``numba_sweep`` generated), not its file's alone.

        Numba's own stamp is the function's file: a kernel compiled into a loop
        of another file would stay cached after an edit. Here an edit to any
        backend module recompiles them all, as does one to ``optimizers.py``,
        whose rule codes the loops read.
        """
        paths = sources()
        if os.path.dirname(self._py_file) != os.path.dirname(__file__):  # numba_sweep's
            paths.append(self._py_file)
        return tuple(caching._hash_source_file(p, *_stat(p)) for p in paths)


def _stat(path):
    st = os.stat(path)
    return st.st_mtime, st.st_size


class _Impl(caching.CompileResultCacheImpl):
    _locator_classes = (_Locator,)  # and no other: never the in-tree __pycache__


class _FunctionCache(caching.FunctionCache):
    _impl_class = _Impl


def jit(func=None, slp_vectorize=False, **options):
    """``numba.njit(**options)``, cached on disk in ``cache_dir()`` where it can be written.

    Division follows NumPy's error model (x / 0 is inf or NaN, as in the
    reference backend; the training loops catch them), not Python's: a check
    for zero at each division would keep loops from SIMD (Adam's update: 3.5x).

    ``slp_vectorize=True`` compiles the function, and everything it calls, with
    LLVM's SLP vectorizer, which packs the same operation on neighbouring
    numbers into one SIMD instruction without a loop. Numba turns it off for
    every function (``NUMBA_SLP_VECTORIZE``, since 0.57, for miscompilations
    then reported); ``numba_sweep`` is written for it, and its results are
    tested against training each model alone.
    """
    if func is None:
        return lambda func: jit(func, slp_vectorize, **options)
    options.setdefault("error_model", "numpy")
    dispatcher = numba.njit(**options)(func)
    try:
        dispatcher._cache = _FunctionCache(func)  # what njit(cache=True) does, relocated
    except RuntimeError:  # no writable cache directory: compile in memory
        pass
    if slp_vectorize:
        dispatcher.compile = _with_slp_vectorizer(dispatcher.compile)
    return dispatcher


def _with_slp_vectorizer(compile):
    """``compile`` with Numba's SLP setting on for its duration.

    Numba reads the setting whenever it optimises a module; holding its compiler
    lock keeps a compilation in another thread from seeing it.
    """

    def compile_with_slp(sig):
        with global_compiler_lock:
            before = numba.config.SLP_VECTORIZE
            numba.config.SLP_VECTORIZE = 1
            try:
                return compile(sig)
            finally:
                numba.config.SLP_VECTORIZE = before

    return compile_with_slp
