"""JIT options for firmware_iface's Numba kernels (the frame decoder of :mod:`.fastdecode`).

``firmware_iface`` is a bottom layer: a firmware team can use it without the DSP package, so it
keeps its own copy of the project's Numba switches rather than importing :mod:`dsp._jit`.
The two sets are the same, and ``tests/test_layers.py`` holds them equal:

``TONUSLAB_DISABLE_JIT=1`` (or Numba's ``NUMBA_DISABLE_JIT=1``)
    Run every kernel as plain Python.
``NUMBA_CACHE_DIR``
    Where compiled kernels are cached between processes (``cache=True``).
"""

from __future__ import annotations

import os

import numba

_OFF = ("", "0", "false", "False")
#: True when kernels run as plain Python (``TONUSLAB_DISABLE_JIT`` or ``NUMBA_DISABLE_JIT``).
JIT_DISABLED: bool = os.environ.get("TONUSLAB_DISABLE_JIT", "0") not in _OFF or bool(
    numba.config.DISABLE_JIT
)

#: Options shared by every kernel (the same as ``dsp._jit.JIT_OPTIONS``).
JIT_OPTIONS: dict = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


def njit(*args, **overrides):
    """Decorate a kernel with the project's Numba options (plain Python when disabled).

    Parameters
    ----------
    **overrides
        Extra Numba options for this kernel only.
    """

    def wrap(func):
        if JIT_DISABLED:
            return func
        return numba.njit(**{**JIT_OPTIONS, **overrides})(func)

    if args and callable(args[0]):
        return wrap(args[0])
    return wrap


__all__ = ["JIT_DISABLED", "JIT_OPTIONS", "njit"]
