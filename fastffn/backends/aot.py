"""The training loops compiled ahead of time, at install: first calls without compiling.

``numba_column.column_steps`` (one sample a step, the notebook's SGD, records on
and off), ``numba_loop.sgd_steps`` (a batch a step: the notebook's SGD or an
optimizer's rule, records on and off), its accuracy counter ``correct`` and the
sweeps' ``numba_lanes.group_steps``, float32 and float64, are
compiled when fastffn is installed (``aot_build``, by Numba's ``pycc``, for the
installing machine's CPU) into the extension ``_aot_loops``. A fresh process
training then calls that code at once: no numba import (0.4 s), no compiling
(3-19 s with an empty cache). The code is the jitted functions', compiled by the
same LLVM for the same CPU, so the numbers are theirs (tests/test_aot.py).

The extension is used only where it was compiled from these very sources for
this CPU: ``stamp()`` hashes both, and a mismatch (an edited source in an
editable install, a build moved to another machine) or no extension at all
(no C compiler at install) falls back to the jitted functions.
"""

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util

import numpy as np

from . import sources

EXTENSION = "fastffn.backends._aot_loops"
DTYPES = ("float32", "float64")
#: Where each function's jitted version lives (the fallback), by the extension's name.
JITTED = {"column_steps": "numba_column", "sgd_steps": "numba_loop", "correct": "numba_loop",
          "group_steps": "numba_lanes"}  # fmt: skip
_MODEL = (("int", 1), ("int", 2), ("real", 1), ("real", 1))  # ``Packed``
#: What the extension holds: functions of ``numba_column`` for each dtype and their
#: arguments as ``fastffn.training`` passes them (``numba_column.column_steps``'s):
#: ``(kind, dimensions)``, kind "int" (int64) or "real" (the dtype), 0 dimensions for a
#: scalar; None for None (the notebook's step: no optimizer state); "every", an int
#: with records, else None. The extension's code trusts them: ``function``
#: checks each call's arrays against them.
ARGUMENTS = {
    "column_steps": (
        *_MODEL,
        *(("real", 2), ("real", 2)),  # X, Y
        *(("int", 2), ("real", 2), ("real", 0)),  # indices, rates, tiny
        *(("int", 0), None, None),  # rule, slots, hyper
        *(("real", 1), ("int", 0), "every", ("int", 1)),  # losses, first, every, hits
    ),
    "correct": (*_MODEL, ("real", 2), ("real", 2), ("int", 0)),  # X, Y, block
    "sgd_steps": (
        *_MODEL,
        *(("real", 2), ("real", 2)),  # X, Y
        *(("int", 2), ("real", 2), ("real", 0)),  # indices, rates, tiny
        *(("int", 0), None, None),  # rule, slots, hyper: the notebook's step
        *(("real", 1), ("int", 0), "every", ("int", 1)),  # losses, first, every, hits
        *(("real", 3), ("real", 3)),  # Xs, Ys
    ),
}
_GROUP = (("int", 1), ("int", 2), ("real", 1), ("real", 2))  # ``Packed``, params P by LANES
ARGUMENTS["group_steps"] = (
    *_GROUP,
    *(("real", 2), ("real", 2)),  # XT, YT
    *(("int", 3), ("real", 1), ("real", 0)),  # indices, lrates, tiny
    *(("int", 0), ("int", 0)),  # first, every (0: no records)
    *(("real", 2), ("int", 2), ("int", 1)),  # rec_losses, rec_hits, stopped
)
#: An optimizer's rule (``plain=False``): its state (2 by P) and hyperparameters.
ARGUMENTS["sgd_steps_rule"] = tuple(
    {10: ("real", 2), 11: ("real", 1)}.get(k, a) for k, a in enumerate(ARGUMENTS["sgd_steps"])
)


def export_name(function, dtype, records=False):
    """The extension's name for ``function`` compiled for ``dtype`` (and for records, where
    ``records``: an int ``every``, not None)."""
    return f"{function}_{np.dtype(dtype).name}" + ("_records" if records else "")


def stamp():
    """An int64 that changes with the contents of the compiled code's sources, the CPU and
    the numba and llvmlite versions."""
    import llvmlite.binding as llvm  # 45 ms, against numba's 0.4 s

    digest = hashlib.sha256()
    for path in sources():
        with open(path, "rb") as f:
            digest.update(f.read())
    for package in ("numba", "llvmlite"):
        digest.update(importlib.metadata.version(package).encode())
    digest.update(llvm.get_host_cpu_name().encode())
    digest.update(llvm.get_host_cpu_features().flatten().encode())
    return int.from_bytes(digest.digest()[:8], "little", signed=True)


@functools.cache
def extension():
    """The extension, or None where there is none or it is stale (see ``status``)."""
    try:
        module = importlib.import_module(EXTENSION)
    except ImportError:
        return None
    return module if module.stamp() == stamp() else None


def status():
    """One line on the loops compiled at install: in use, not built, or stale."""
    if extension() is not None:
        return "the loops compiled at install: in use"
    if importlib.util.find_spec(EXTENSION) is None:
        return (
            "the loops compiled at install: not built (no C compiler at install?); "
            "they are jitted at first use"
        )
    return (
        "the loops compiled at install: stale (other sources, CPU, numba or llvmlite than "
        "at install); they are jitted at first use: reinstall fastffn to rebuild them"
    )


def function(name, dtype, records=False, plain=True, threaded=False):
    """The loop ``name`` (a key of ``JITTED``) for arrays of ``dtype``, with records or not,
    for the notebook's step (``plain``) or an optimizer's: compiled ahead of time where
    the extension holds it, else the jitted one. ``threaded``: several threads run it at
    once, so the extension's is taken only where its functions release the GIL."""
    exported = name if plain else f"{name}_rule"
    module = extension()
    if module is not None and threaded and not module.releases_gil():
        module = None
    if module is None or exported not in ARGUMENTS:
        return getattr(importlib.import_module(f"fastffn.backends.{JITTED[name]}"), name)
    compiled = getattr(module, export_name(exported, dtype, records))
    arguments = ARGUMENTS[exported]
    types = {"int": np.dtype(np.int64), "real": np.dtype(dtype)}

    def checked(*values):
        for k, (value, argument) in enumerate(zip(values, arguments, strict=True)):
            if argument is None:
                ok = value is None
            elif isinstance(argument, tuple) and argument[1]:
                kind, dimensions = argument
                ok = (
                    isinstance(value, np.ndarray)
                    and (value.dtype, value.ndim) == (types[kind], dimensions)
                    and value.flags.c_contiguous
                )
            else:
                continue  # a scalar: converted, as by a jitted function
            if not ok:
                raise TypeError(f"{name}'s argument {k} must be {argument}, got {value!r:.60}")
        return compiled(*values)

    return checked
