"""Build settings that pyproject.toml cannot hold: the optional C scorer of sentiment.

Everything else about the package is in pyproject.toml. The extension is optional: where it
cannot be compiled (no C compiler), the install goes on without it and sentiment.py scores in
Python, with the same results, more slowly.
"""

import sys

from setuptools import Extension, setup

# Floats must round as Python's do, one operation at a time: no fused multiply-add.
_ARGS = [] if sys.platform == "win32" else ["-O2", "-ffp-contract=off"]

setup(
    ext_modules=[
        Extension(
            "momentos.enrichment._csentiment",
            sources=["momentos/enrichment/_csentiment.c"],
            extra_compile_args=_ARGS,
            optional=True,
        )
    ]
)
