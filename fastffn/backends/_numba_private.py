"""Every use of Numba's private parts, in this one module, each with a public fallback.

- ``cache_locator``: Numba's disk cache rooted in fastffn's own directory, never
  in the installed package (``numba.core.caching``). Fallback: no disk cache,
  kernels compile in memory in each process.
- ``with_slp_vectorizer``: LLVM's SLP vectorizer on for one compilation
  (``numba.config.SLP_VECTORIZE`` under ``numba.core.compiler_lock``), which
  the sweeps' lanes are written for. Fallback: compiled without it (same numbers).
- ``borrowed``: an array without its reference count (``numba.core.cgutils``).
  Fallback: the array itself.
- ``gemm_update``: ``W += alpha * A @ G.T`` in one BLAS call through Numba's
  ``numba_xxgemm``. Fallback: status -1, and the caller makes the product itself.
- ``compile_module``: Numba's ahead-of-time compiler (``numba.pycc.CC``, pending
  deprecation since 0.57 with no replacement) driven here, its exports releasing the
  GIL (``threaded_exports``). Fallback: none here; the install's extension is optional
  and the loops are jitted at first use without it.
- ``threaded_exports``: ``pycc``'s exported functions compiled to release the GIL
  (its ``Flags``) and with the SLP vectorizer, as the sweeps' ``nogil`` loop is
  jitted. Fallback: exported as ``pycc`` exports them, and the sweeps' loop is
  jitted at first use instead.

The private parts are used only on the Numba versions they were tested on
(``TESTED``, which CI installs), and not where the environment variable
``FASTFFN_NUMBA_PRIVATE`` is ``0``; elsewhere every fallback holds.
tests/test_numba_private.py fails loudly where a tested version lacks one.
"""

import contextlib
import functools
import os
import warnings

import numba
import numpy as np
from numba import types

#: The Numba versions (major, minor) whose private parts this module was written for.
TESTED = ((0, 68),)
ACTIVE = (
    tuple(int(v) for v in numba.__version__.split(".")[:2]) in TESTED
    and os.environ.get("FASTFFN_NUMBA_PRIVATE") != "0"
)

try:
    if not ACTIVE:
        raise ImportError(f"numba {numba.__version__} is not among {TESTED}, or turned off")
    from llvmlite import ir
    from numba.core import caching, cgutils
    from numba.core.compiler_lock import global_compiler_lock
    from numba.extending import intrinsic
except (ImportError, AttributeError):
    ACTIVE = False


def cache_on_disk(dispatcher, cache_path, source_stamp):
    """Gives a jitted function the disk cache ``njit(cache=True)`` gives, with its files in
    ``cache_path(subpath)`` and stamped by ``source_stamp(py_file)``: nothing where the
    private parts are off, or where the directory cannot be written."""
    if ACTIVE:
        try:
            dispatcher._cache = _function_cache(cache_path, source_stamp)(dispatcher.py_func)
        except RuntimeError:  # no writable cache directory: compile in memory
            pass


@functools.cache
def _function_cache(cache_path, source_stamp):
    """A ``numba.core.caching.FunctionCache`` class for ``cache_on_disk``."""

    class Locator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = cache_path(self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self):
            return self._cache_path

        def get_source_stamp(self):
            return source_stamp(self._py_file)

    class Impl(caching.CompileResultCacheImpl):
        _locator_classes = (Locator,)  # and no other: never the in-tree __pycache__

    class FunctionCache(caching.FunctionCache):
        _impl_class = Impl

    return FunctionCache


def with_slp_vectorizer(dispatcher):
    """Makes ``dispatcher`` compile with Numba's SLP setting on (holding the compiler lock,
    so that a compilation in another thread does not see it); nothing where the private
    parts are off."""
    if ACTIVE:
        dispatcher.compile = _compile_with_slp(dispatcher.compile)


def _compile_with_slp(compile):

    def compile_with_slp(sig):
        with global_compiler_lock:
            before = numba.config.SLP_VECTORIZE
            numba.config.SLP_VECTORIZE = 1
            try:
                return compile(sig)
            finally:
                numba.config.SLP_VECTORIZE = before

    return compile_with_slp


def compile_module(name, output_dir, exports):
    """Compiles ``exports`` (``{export name: (function, signature)}``) with ``numba.pycc``
    into the extension module ``name`` in ``output_dir``, for this machine's CPU, with its
    functions releasing the GIL where ``threaded_exports`` can make them; its export
    ``releases_gil()`` says whether they do. Returns the extension's path.

    Raises:
        ImportError: This Numba has no ``pycc`` (its deprecation notice, which names no
            replacement, is not shown).

    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The 'pycc' module is pending deprecation")
        from numba.pycc import CC
    cc = CC(name)
    cc.output_dir, cc.target_cpu, cc.verbose = output_dir, "host", False
    for export, (function, signature) in exports.items():
        cc.export(export, signature)(function)
    with threaded_exports() as threaded:
        cc.export("releases_gil", types.int64())(lambda: int(threaded))
        cc.compile()
    return os.path.join(output_dir, cc.output_file)


@contextlib.contextmanager
def threaded_exports():
    """Inside the block, functions ``numba.pycc`` compiles release the GIL and use LLVM's SLP
    vectorizer; yields whether they do (False where the private parts are off)."""
    try:
        from numba.pycc import compiler

        original = compiler.Flags
        active = ACTIVE and "release_gil" in original.options
    except (ImportError, AttributeError):
        active = False
    if not active:
        yield False
        return

    class Flags(original):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.release_gil = True

    before = numba.config.SLP_VECTORIZE
    compiler.Flags, numba.config.SLP_VECTORIZE = Flags, 1
    try:
        yield True
    finally:
        compiler.Flags, numba.config.SLP_VECTORIZE = original, before


if ACTIVE:

    @intrinsic
    def borrowed(typingctx, array):
        """The array, without its reference to its memory (meminfo and parent null).

        Every use of an array (a list item, an argument) counts a reference with an
        atomic add, which waits for the stores before it to reach the cache: in a
        step of a 16-10-10-4 network on batches of 32, 40% of the time. A borrowed
        array counts nothing; its owner must outlive it.
        """

        def codegen(context, builder, signature, args):
            source = context.make_array(array)(context, builder, args[0])
            view = context.make_array(array)(context, builder)
            for field in ("nitems", "itemsize", "data", "shape", "strides"):
                setattr(view, field, getattr(source, field))
            view.meminfo = cgutils.get_null_value(view.meminfo.type)
            view.parent = cgutils.get_null_value(view.parent.type)
            return view._getvalue()

        return array(array), codegen

    @intrinsic
    def gemm_update(typingctx, W, A, G, alpha):
        """``W += alpha * A @ G.T`` in one BLAS call (gemm with beta 1), for C-contiguous W
        (m by n), A (m by b) and G (n by b) of one dtype and alpha of it; returns BLAS's
        status, 0 where it ran. The notebook's step takes its update so, with no array
        of gradients written and read back (``sgd_steps``)."""

        def codegen(context, builder, signature, args):
            arrays = zip((W, A, G), args[:3], strict=True)
            w, a, g = (context.make_array(t)(context, builder, v) for t, v in arrays)
            m, n = cgutils.unpack_tuple(builder, w.shape)
            b = cgutils.unpack_tuple(builder, a.shape)[1]
            char, size, pointer = (
                ir.IntType(8),
                context.get_value_type(types.intp),
                cgutils.voidptr_t,
            )
            # kind, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc
            arguments = [char] * 3 + [size] * 3 + [pointer, pointer, size, pointer, size]
            arguments += [pointer, pointer, size]
            # Numba's own entry to SciPy's BLAS, which its np.dot calls
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(32), arguments), "numba_xxgemm"
            )
            scalar = context.get_value_type(W.dtype)
            alpha_at = cgutils.alloca_once_value(builder, args[3])
            beta_at = cgutils.alloca_once_value(builder, ir.Constant(scalar, 1.0))
            kind = ir.Constant(char, ord("d" if W.dtype == types.float64 else "s"))
            # Fortran's column order sees W as its transpose: W.T += alpha * G @ A.T
            transposed, as_is = ir.Constant(char, ord("t")), ir.Constant(char, ord("n"))
            address = [
                builder.bitcast(x, pointer) for x in (alpha_at, g.data, a.data, beta_at, w.data)
            ]
            return builder.call(fn, (kind, transposed, as_is, n, m, b, address[0], address[1], b,
                                     address[2], b, address[3], address[4], n))  # fmt: skip

        return types.int32(W, A, G, alpha), codegen

else:

    @numba.njit
    def borrowed(array):
        return array

    @numba.njit
    def gemm_update(W, A, G, alpha):
        return np.int32(-1)
