"""HDF5 helpers of the session file: attributes as dicts, cache bounds, disk-full checks."""

from __future__ import annotations

import datetime as _dt
import errno
import json
from collections.abc import Mapping

import h5py
import numpy as np

from acquire.jsonable import json_default
from acquire.session_file.schema import _STR


def _now_utc() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return True
    text = str(exc)
    return (
        "No space left" in text
        or "errno = 28" in text
        or "File too large" in text
        or "errno = 27" in text
    )


# ----------------------------------------------------------------------------------- helpers
#: h5py handles of files HDF5 failed to close after a full disk (see ``_abort_disk_full``).
_UNCLOSABLE_AFTER_DISK_FULL: list = []


def hdf5_unsafe_to_finalize() -> bool:
    """True once HDF5 failed to close a file after a full disk in this process.

    HDF5's exit handler may then crash (segmentation fault) while closing that file; a program
    that wants a clean exit code leaves with ``os._exit`` (the ``tonuslab`` command does).
    """
    return bool(_UNCLOSABLE_AFTER_DISK_FULL)


#: Upper bound of HDF5's metadata cache for a file being recorded. The cache counts entries at
#: their size on disk, but a chunk-index B-tree node (v1 B-tree, ``libver="earliest"``) takes
#: about seven times that in memory (measured: about 18 KiB per node under heaptrack), so
#: HDF5's default (adaptive up to 32 MiB) let a recording grow by several MiB an hour as new
#: index nodes filled the cache. Appends only ever touch the newest index nodes, so a small
#: cache costs nothing; 256 KiB holds about a hundred nodes (under 2 MiB of memory).
METADATA_CACHE_MAX_BYTES = 256 << 10

#: Chunk cache of each recorded dataset: a few slots (the writer only touches the newest chunk,
#: and evicts fully written chunks first, ``rdcc_w0=1``). HDF5's default (521 slots, 1 MiB)
#: kept hundreds of small compressed angle chunks and their filter buffers alive: about
#: 15 MiB more resident memory after an hour of flushes, for no benefit to an append-only
#: writer. Sized for the newest chunk plus the one before it.
CHUNK_CACHE_SLOTS = 7


def _bound_metadata_cache(f: h5py.File) -> None:
    config = f.id.get_mdc_config()
    config.max_size = METADATA_CACHE_MAX_BYTES
    config.min_size = min(config.min_size, METADATA_CACHE_MAX_BYTES // 4)
    config.initial_size = METADATA_CACHE_MAX_BYTES // 2
    config.set_initial_size = True
    f.id.set_mdc_config(config)


def _tonuslab_version() -> str:
    try:
        from importlib.metadata import version

        return version("tonuslab")
    except Exception:  # pragma: no cover
        return "unknown"


def _write_attrs(obj, mapping: Mapping) -> None:
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            obj.attrs[key] = json.dumps(value, sort_keys=True, default=json_default)
            obj.attrs[f"{key}__json"] = True
        elif isinstance(value, str):
            obj.attrs[key] = value
        elif isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            obj.attrs[key] = np.array(value, dtype=_STR)
        elif value is None:
            continue
        else:
            obj.attrs[key] = value


def _read_attrs(obj) -> dict:
    out = {}
    keys = set(obj.attrs.keys())
    for key in keys:
        if key.endswith("__json"):
            continue
        value = obj.attrs[key]
        if f"{key}__json" in keys:
            value = json.loads(_s(value))
        else:
            value = _py(value)
        out[key] = value
    return out


def _py(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OSU":
            return [_s(v) for v in value]
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _s(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _row_dict(row) -> dict:
    return {k: _py(row[k]) for k in row.dtype.names}


def _first_line(exc) -> str:
    return str(exc).splitlines()[0] if exc else "unknown error"
