"""JIT options for every Numba kernel in tonuslab, in one place.

All kernels are written as private functions decorated with :func:`njit` from this module and
wrapped by validating public functions. Settings:

``TONUSLAB_DISABLE_JIT=1``
    Run every kernel as plain Python (for debugging and line coverage). Numba's own
    ``NUMBA_DISABLE_JIT=1`` has the same effect: :data:`JIT_DISABLED` follows either switch,
    so the SIMD intrinsics of :mod:`dsp._simd` are replaced by their NumPy versions and no
    cache is touched.
``NUMBA_CACHE_DIR``
    Where compiled kernels are cached between processes (``cache=True`` on every kernel).

Stale caches: Numba checks a cached kernel only against the file that defines it, not against
the kernels it inlines from other files, so editing ``_filter_kernels.py`` would leave
``chain.py``'s cached kernel running the old code. On import, the cache entries of the top-level
``dsp`` modules are dropped when any of their source files changed (size or mtime), so every
kernel is rebuilt together. Installed releases never trigger this.

Kernels never use ``fastmath`` reassociation, so results are reproducible and comparable
bit-for-bit with the NumPy references in the tests where the algorithm allows.
"""

from __future__ import annotations

import hashlib
import os
import pathlib

import numba

#: True when kernels run as plain Python (no compilation): ``TONUSLAB_DISABLE_JIT`` is set, or
#: Numba's own switch (``NUMBA_DISABLE_JIT=1``, read by Numba into ``numba.config.DISABLE_JIT``).
_OFF = ("", "0", "false", "False")
JIT_DISABLED: bool = os.environ.get("TONUSLAB_DISABLE_JIT", "0") not in _OFF or bool(
    numba.config.DISABLE_JIT
)

#: Options shared by every kernel.
JIT_OPTIONS: dict = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


_DSP_DIR = pathlib.Path(__file__).resolve().parent
_STAMP = "tonuslab-dsp-sources.txt"
_checked_paths: set = set()


def _sources_fingerprint() -> str:
    h = hashlib.sha1()
    for p in sorted(_DSP_DIR.glob("*.py")):
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _drop_stale_cache(dispatcher) -> None:
    """Delete cached top-level dsp kernels when any dsp source file changed (see above)."""
    try:
        path = dispatcher._cache._cache_path
        defining = pathlib.Path(dispatcher.py_func.__code__.co_filename).resolve().parent
    except AttributeError:  # pragma: no cover - Numba internals changed: skip the safeguard
        return
    if defining != _DSP_DIR or path in _checked_paths:
        return
    _checked_paths.add(path)
    fingerprint = _sources_fingerprint()
    stamp = os.path.join(path, _STAMP)
    try:
        with open(stamp) as f:
            if f.read().strip() == fingerprint:
                return
    except OSError:
        pass
    try:
        modules = {p.stem for p in _DSP_DIR.glob("*.py")}
        if os.path.isdir(path):
            for name in os.listdir(path):
                if name.endswith((".nbi", ".nbc")) and name.split(".", 1)[0] in modules:
                    os.remove(os.path.join(path, name))
        os.makedirs(path, exist_ok=True)
        with open(stamp, "w") as f:
            f.write(fingerprint)
    except OSError:  # read-only or concurrently cleaned cache: Numba copes
        pass


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
        dispatcher = numba.njit(**{**JIT_OPTIONS, "parallel": parallel, **overrides})(func)
        if getattr(dispatcher, "_cache", None) is not None and getattr(
            dispatcher, "_can_compile", True
        ):
            _drop_stale_cache(dispatcher)
        return dispatcher

    if args and callable(args[0]):
        return wrap(args[0])
    return wrap


#: ``numba.prange`` when compiled (Numba only recognises the object itself inside a kernel, not a
#: wrapper), ``range`` when the JIT is disabled. Called from Python, ``numba.prange`` is ``range``.
prange = range if JIT_DISABLED else numba.prange
