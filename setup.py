"""Build hook for the compiled modules (metadata lives in pyproject.toml).

``mmkit.data._jsonlscan`` is the JSONL reader's fast path, ``mmkit.core._levels`` the inner
loop of ``L2Book.apply_levels``, ``mmkit.data._cacheiter`` rebuilds cache rows as events,
``mmkit.core._fastfeed`` runs ``Engine.feed`` over cache rows (``Engine.feed_rows``) on the
native books of ``mmkit.core._nbook`` (``NativeL2Book``).
All are ``optional``: without a C compiler the install still succeeds and mmkit uses the
pure-Python paths (same results, slower; see ``mmkit.compiled``).
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-std=c99", "-ffp-contract=off"]  # no fused multiply-add: doubles as Python computes them
COMMON = ["mmkit/_ccommon.h"]  # shared helpers: a change rebuilds the modules that include it
NBOOK = ["mmkit/core/_nbook_impl.h"]  # the native book's layout and level update (_nbook and _fastfeed)

setup(ext_modules=[
    Extension("mmkit.data._jsonlscan", ["mmkit/data/_jsonlscan.c"], depends=COMMON, optional=True,
              extra_compile_args=FLAGS),
    Extension("mmkit.core._levels", ["mmkit/core/_levels.c"], optional=True, extra_compile_args=FLAGS),
    Extension("mmkit.core._nbook", ["mmkit/core/_nbook.c"], depends=NBOOK, optional=True, extra_compile_args=FLAGS),
    Extension("mmkit.core._fastfeed", ["mmkit/core/_fastfeed.c"], depends=NBOOK, optional=True,
              extra_compile_args=FLAGS),
    Extension("mmkit.data._cacheiter", ["mmkit/data/_cacheiter.c"], depends=COMMON, optional=True,
              extra_compile_args=FLAGS),
])
