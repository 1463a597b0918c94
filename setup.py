"""fastffn's one compiled extension: the one-sample loop, compiled ahead of time at install.

Everything else is in pyproject.toml. See fastffn/backends/aot.py for what the
extension holds and when it is used; without it (no C compiler here) fastffn
installs and runs all the same, compiling that loop at its first use.
"""

import os
import sys
import traceback

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildAheadOfTime(build_ext):
    """Builds the extension with Numba's ``pycc`` (``aot_build``), not from C sources."""

    def build_extension(self, ext):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # this fastffn
        try:
            from fastffn.backends import aot_build

            built = aot_build.compile_extension(os.path.dirname(self.get_ext_fullpath(ext.name)))
            assert built == self.get_ext_fullpath(ext.name), (built, ext.name)
        except Exception:
            traceback.print_exc()
            print("fastffn: the ahead-of-time loop did not build; it will compile at first use")


setup(
    ext_modules=[Extension("fastffn.backends._aot_loops", sources=[])],
    cmdclass={"build_ext": BuildAheadOfTime},
)
