"""JIT options for firmware_iface's Numba kernels (same switches as ``dsp._jit``).

``firmware_iface`` may not import ``dsp``, so the few options live here too:
``TONUSLAB_DISABLE_JIT=1`` runs kernels as plain Python; kernels are cached in
``NUMBA_CACHE_DIR``.
"""

from __future__ import annotations

import os

JIT_DISABLED: bool = os.environ.get("TONUSLAB_DISABLE_JIT", "0") not in ("", "0", "false", "False")
JIT_OPTIONS: dict = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


def njit(func):
    """Compile ``func`` with the shared options (or return it unchanged when disabled)."""
    if JIT_DISABLED:
        return func
    import numba

    return numba.njit(**JIT_OPTIONS)(func)
