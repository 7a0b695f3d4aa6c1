"""Shared pytest configuration."""

import os
import pathlib

# A writable, stable Numba cache for local runs (CI sets its own).
os.environ.setdefault(
    "NUMBA_CACHE_DIR", str(pathlib.Path(__file__).resolve().parent.parent / ".numba_cache")
)
