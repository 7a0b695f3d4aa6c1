"""JIT options for every Numba kernel in tonuslab, in one place.

All kernels are written as private functions decorated with :func:`njit` from this module and
wrapped by validating public functions. Settings:

``TONUSLAB_DISABLE_JIT=1``
    Run every kernel as plain Python (for debugging and line coverage). Numba's own
    ``NUMBA_DISABLE_JIT=1`` works too.
``NUMBA_CACHE_DIR``
    Where compiled kernels are cached between processes (``cache=True`` on every kernel).

Kernels never use ``fastmath`` reassociation, so results are reproducible and comparable
bit-for-bit with the NumPy references in the tests where the algorithm allows.
"""

from __future__ import annotations

import os

import numba

#: True when kernels run as plain Python (no compilation).
JIT_DISABLED: bool = os.environ.get("TONUSLAB_DISABLE_JIT", "0") not in ("", "0", "false", "False")

#: Options shared by every kernel.
JIT_OPTIONS: dict = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


def njit(*args, parallel: bool = False, **overrides):
    """Decorate a kernel with tonuslab's Numba options.

    Parameters
    ----------
    parallel : bool
        Compile with ``parallel=True`` (use ``numba.prange`` inside).
    **overrides
        Extra Numba options for this kernel only.

    Returns
    -------
    callable
        The compiled kernel, or the Python function itself when the JIT is disabled.
    """

    def wrap(func):
        if JIT_DISABLED:
            return func
        return numba.njit(**{**JIT_OPTIONS, "parallel": parallel, **overrides})(func)

    if args and callable(args[0]):
        return wrap(args[0])
    return wrap


#: ``numba.prange`` when compiled (Numba only recognises the object itself inside a kernel, not a
#: wrapper), ``range`` when the JIT is disabled. Called from Python, ``numba.prange`` is ``range``.
prange = range if JIT_DISABLED else numba.prange
