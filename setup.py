"""Build settings that pyproject.toml cannot hold: the optional C scorer of sentiment.

Everything else about the package is in pyproject.toml. The extension is optional: where it
cannot be compiled (no C compiler), the install goes on without it and sentiment.py scores in
Python, with the same results, more slowly.
"""

import platform
import struct

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# Floats must round as Python's do, one operation at a time: no fused multiply-add (GCC fuses
# by default where the CPU has it, as on aarch64), no fast-math shortcuts from the
# environment's CFLAGS (ours come after them). The source also says so with pragmas, for
# compilers that honour them.
_FLAGS = {
    "unix": ["-O2", "-ffp-contract=off", "-fno-fast-math"],
    "mingw32": ["-O2", "-ffp-contract=off", "-fno-fast-math"],
    "cygwin": ["-O2", "-ffp-contract=off", "-fno-fast-math"],
    "msvc": ["/fp:precise"],
}


class _BuildExt(build_ext):
    def build_extensions(self) -> None:
        for extension in self.extensions:
            extension.extra_compile_args = _FLAGS.get(self.compiler.compiler_type, [])
        super().build_extensions()


def _x87() -> bool:
    """32-bit x86, where C may keep floats in 80-bit registers between operations and round
    differently from Python: the Python scorer is used there."""
    return struct.calcsize("P") == 4 and platform.machine().lower() in (
        "i386", "i486", "i586", "i686", "x86", "amd64", "x86_64"
    )


setup(
    cmdclass={"build_ext": _BuildExt},
    ext_modules=[] if _x87() else [
        Extension(
            "momentos.enrichment._csentiment",
            sources=["momentos/enrichment/_csentiment.c"],
            optional=True,
        )
    ],
)
