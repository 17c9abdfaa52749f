"""Build hook for the one compiled module (metadata lives in pyproject.toml).

``mmkit.data._jsonlscan`` is the JSONL reader's fast path.  It is ``optional``: without a
C compiler the install still succeeds and the reader uses its pure-Python path (same
events, slower; ``mmkit.data.jsonl.NATIVE`` says which one is active).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("mmkit.data._jsonlscan", ["mmkit/data/_jsonlscan.c"], optional=True,
                             extra_compile_args=["-O2", "-std=c99"])])
