"""JIT options for firmware_iface's Numba kernels: the project's single set, from :mod:`dsp._jit`.

``dsp`` imports nothing of tonuslab, so borrowing its options keeps the dependency direction
one way. ``TONUSLAB_DISABLE_JIT=1`` runs kernels as plain Python; kernels are cached in
``NUMBA_CACHE_DIR``.
"""

from dsp._jit import JIT_DISABLED, JIT_OPTIONS, njit

__all__ = ["JIT_DISABLED", "JIT_OPTIONS", "njit"]
