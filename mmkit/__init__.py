"""mmkit: a toolkit for running and validating a crypto market-making business.

The package is layered (see docs/architecture in DESIGN): ``core`` is the pure domain,
``data``/``venues``/``artifacts``/``config``/``errors``/``clock``/``audit`` are the edges,
``research``/``ops``/``analytics``/``live`` orchestrate, and ``cli`` is a thin client.
"""

__version__ = "0.1.0"

from mmkit import compiled as _compiled  # noqa: E402 - applies MMKIT_PURE_PYTHON to the compiled paths

_compiled.apply_environment()
