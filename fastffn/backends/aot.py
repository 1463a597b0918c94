"""The one-sample loop compiled ahead of time, at install: the notebook's job without compiling.

``numba_column.column_steps`` (the notebook's SGD step, records on and off) and
``column_correct``, float32 and float64, are compiled when fastffn is installed
(``aot_build``, by Numba's ``pycc``, for the installing machine's CPU) into the
extension ``_aot_loops``. A fresh process training one sample a step with the
notebook's SGD then calls that code at once: no numba import (0.4 s), no
compiling (3-7 s with an empty cache). The code is the jitted functions',
compiled by the same LLVM for the same CPU, so the numbers are theirs
(tests/test_aot.py).

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
#: What the extension holds: functions of ``numba_column`` for each dtype and their
#: arguments as ``fastffn.training`` passes them (``numba_column.column_steps``'s):
#: ``(kind, dimensions)``, kind "int" (int64) or "real" (the dtype), 0 dimensions for a
#: scalar; None for None (the notebook's step: no optimizer state); "every", an int
#: with records, else None. The extension's code trusts them: ``column_function``
#: checks each call's arrays against them.
ARGUMENTS = {
    "column_steps": (
        *(("int", 1), ("int", 2), ("real", 1), ("real", 1)),  # the model (``Packed``)
        *(("real", 2), ("real", 2)),  # X, Y
        *(("int", 2), ("real", 2), ("real", 0)),  # indices, rates, tiny
        *(("int", 0), None, None),  # rule, slots, hyper
        *(("real", 1), ("int", 0), "every", ("int", 1)),  # losses, first, every, hits
    ),
    "column_correct": (("int", 1), ("int", 2), ("real", 1), ("real", 1), ("real", 2), ("real", 2)),
}


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
    """One line on the loop compiled at install: in use, not built, or stale."""
    if extension() is not None:
        return "the one-sample loop compiled at install: in use"
    if importlib.util.find_spec(EXTENSION) is None:
        return (
            "the one-sample loop compiled at install: not built (no C compiler at install?); "
            "it is jitted at first use"
        )
    return (
        "the one-sample loop compiled at install: stale (other sources, CPU, numba or "
        "llvmlite than at install); it is jitted at first use: reinstall fastffn to rebuild it"
    )


def column_function(name, dtype, records=False, plain=True):
    """``numba_column``'s function ``name`` for arrays of ``dtype``: compiled ahead of time
    where the extension holds it (the notebook's step: ``plain``), else the jitted one."""
    module = extension()
    if module is None or not plain:
        from . import numba_column

        return getattr(numba_column, name)
    compiled, arguments = getattr(module, export_name(name, dtype, records)), ARGUMENTS[name]
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
