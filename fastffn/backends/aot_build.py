"""Compiles ``aot``'s extension; setup.py's ``build_ext`` calls ``compile_extension`` at install.

Each export is a one-line function calling the jitted one (``pycc`` takes no
``*args``), so that the jitted function compiles into it with its own options
(fastmath, error model), as it does into a loop that calls it; ``pycc``
compiles the outer function with its defaults. Takes 40-80 s.
"""

from numba import types

from . import aot
from ._numba_private import compile_module
from .numba_column import column_steps
from .numba_lanes import group_steps
from .numba_loop import correct as batch_correct
from .numba_loop import sgd_steps


def steps(ops, shapes, coefs, params, XT, YT, indices, rates, tiny, rule, slots, hyper, losses,
          first, every, hits):  # fmt: skip
    return column_steps(ops, shapes, coefs, params, XT, YT, indices, rates, tiny, rule, slots,
                        hyper, losses, first, every, hits)  # fmt: skip


def counted(ops, shapes, coefs, params, X, Y, block):
    return batch_correct(ops, shapes, coefs, params, X, Y, block)


def batch_steps(ops, shapes, coefs, params, X, Y, indices, rates, tiny, rule, slots, hyper,
                losses, first, every, hits, Xs, Ys):  # fmt: skip
    return sgd_steps(ops, shapes, coefs, params, X, Y, indices, rates, tiny, rule, slots, hyper,
                     losses, first, every, hits, Xs, Ys)  # fmt: skip


def lanes_steps(ops, shapes, coefs, params, XT, YT, indices, lrates, tiny, first, every,
                rec_losses, rec_hits, stopped):  # fmt: skip
    group_steps(ops, shapes, coefs, params, XT, YT, indices, lrates, tiny, first, every,
                rec_losses, rec_hits, stopped)  # fmt: skip
    return 0


def signatures(dtype):
    """``{export name: (function, signature)}`` for arrays of ``dtype`` (``aot.ARGUMENTS``)."""
    kinds = {"int": types.int64, "real": getattr(types, dtype)}

    def numba_type(argument, every):
        if argument is None:
            return types.none
        if argument == "every":
            return every
        kind, dimensions = argument
        return types.Array(kinds[kind], dimensions, "C") if dimensions else kinds[kind]

    exports = {"column_steps": steps, "correct": counted, "sgd_steps": batch_steps,
               "sgd_steps_rule": batch_steps, "group_steps": lanes_steps}  # fmt: skip
    return {
        aot.export_name(name, dtype, records): (
            exports[name],
            types.int64(*(numba_type(a, every) for a in aot.ARGUMENTS[name])),
        )
        for name in exports
        for records, every in ((False, types.none), (True, types.int64))
        if records is False or "every" in aot.ARGUMENTS[name]
    }


def compile_extension(output_dir):
    """Writes the extension ``aot.EXTENSION`` into ``output_dir``, for this machine's CPU."""
    exports = {name: pair for dtype in aot.DTYPES for name, pair in signatures(dtype).items()}
    built_for = aot.stamp()
    exports["stamp"] = (lambda: built_for, types.int64())
    return compile_module(aot.EXTENSION.rpartition(".")[2], output_dir, exports)
