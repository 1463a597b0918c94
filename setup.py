"""fastffn's one compiled extension: the training loops, compiled ahead of time at install.

Everything else is in pyproject.toml. See fastffn/backends/aot.py for what the
extension holds and when it is used. It is optional: where it cannot be built
(no C compiler) fastffn installs and runs all the same, jitting the loops at
their first use.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError


class BuildAheadOfTime(build_ext):
    """Builds the extension with Numba's ``pycc`` (``aot_build``), not from C sources."""

    def build_extension(self, ext):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # this fastffn
        path = self.get_ext_fullpath(ext.name)
        try:
            from fastffn.backends import aot_build

            aot_build.compile_extension(os.path.dirname(path))
        except Exception as error:  # an optional extension's build fails with CompileError
            raise CompileError(f"{error!r}; the loops will be jitted at first use") from error


setup(
    ext_modules=[Extension("fastffn.backends._aot_loops", sources=[], optional=True)],
    cmdclass={"build_ext": BuildAheadOfTime},
)
