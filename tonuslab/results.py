"""The results store: analysis summaries kept inside the session file, crash-safe.

``write_results`` stores a summary (from :func:`tonuslab.analysis.analyze_session`) in the
session file under ``/results/<run>`` without touching raw data; ``read_results`` reads the
complete runs back; ``input_sha256`` fingerprints what the analysis read:

``/results``                      attrs ``schema="tonuslab.results"``, ``schema_version=1``
``/results/<run>``                attrs ``schema="tonuslab.analysis"``, ``schema_version``,
                                  ``software_version``, ``input_sha256``, ``parameters`` (JSON),
                                  ``created_utc``, ``analyses`` (JSON list)
``/results/<run>/summary_json``   the whole summary as one JSON string
``/results/<run>/stretches/<col>`` per-stretch table, one 1-D dataset per column
``/results/<run>/stimuli/<col>``  per-stimulus table, one 1-D dataset per column

HDF5 updates in place are not crash-safe (a process killed mid-write can leave damaged
metadata), so a run is written into a copy of the file that is then flushed and atomically
renamed over the original: an interrupted analysis leaves the previous file, valid and unchanged
(a hidden ``.NAME.analysis-*.tmp`` copy may remain; the next write removes it). Writers of one
file take turns through an ``flock`` on the sidecar ``.NAME.analysis.lock``, which the last
writer removes. Readers ignore groups whose names start with ``_``.

This module knows nothing of the analyses themselves (it imports neither
:mod:`tonuslab.analysis` nor :mod:`tonuslab.session`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import pathlib
import time
import uuid

import numpy as np

from acquire.jsonable import json_default
from tonuslab._version import __version__
from tonuslab.errors import SessionFileError, UsageError

SCHEMA = "tonuslab.analysis"
SCHEMA_VERSION = 1
RESULTS_GROUP = "results"
DEFAULT_RUN = "default"

#: Root attributes left out of :func:`input_sha256`: they record the file's life (closed,
#: recovered, rewritten by another tonuslab version), not the recorded data.
HASH_EXCLUDED_ROOT_ATTRS = frozenset({"state", "closed_utc", "writer"})


def _attr_bytes(value) -> bytes:
    """A deterministic byte encoding of one HDF5 attribute value (type-tagged)."""
    if isinstance(value, bytes):
        return b"b:" + value
    if isinstance(value, str):
        return b"s:" + value.encode("utf-8")
    if isinstance(value, np.ndarray):
        head = f"a:{value.dtype.str}{value.shape}:".encode()
        if value.dtype.hasobject or value.dtype.kind in "SU":
            return head + repr([_attr_bytes(v) for v in value.reshape(-1).tolist()]).encode()
        return head + np.ascontiguousarray(value).tobytes()
    if isinstance(value, np.generic):
        return f"n:{value.dtype.str}:".encode() + value.tobytes()
    return f"p:{type(value).__name__}:{value!r}".encode()


def _hash_attrs(digest, name: str, obj, *, exclude=frozenset()) -> None:
    for key in sorted(obj.attrs.keys()):
        if key in exclude:
            continue
        value = _attr_bytes(obj.attrs[key])
        digest.update(f"@{name}@{key}|{len(value)}|".encode() + value)


def input_sha256(path) -> str:
    """SHA-256 of everything a session file holds outside ``/results``.

    Covers every dataset (name, dtype, shape, bytes) and the attributes of every group and
    dataset: ``/metadata`` (muscle, ``stretch_direction_sign``, ``passive_range_deg``...), the
    stream attributes (``rate_hz``, ``t0_s``...) and the ``counts`` attributes (``scale``,
    ``offset``, ``unit``...), so changing any input of an analysis changes the hash. Left out:
    the ``/results`` group (written by the analysis itself) and the root attributes in
    :data:`HASH_EXCLUDED_ROOT_ATTRS` (``state``, ``closed_utc``, ``writer``). Objects and
    attributes are visited in sorted name order and datasets read in blocks, so the hash is
    deterministic and costs one sequential read with little memory.

    Parameters
    ----------
    path : str or pathlib.Path
        Session file.

    Returns
    -------
    str
        Hex digest.
    """
    import h5py

    digest = hashlib.sha256()
    names: list[str] = []
    with h5py.File(path, "r", locking=False) as f:

        def visit(name, obj):
            if name != RESULTS_GROUP and not name.startswith(RESULTS_GROUP + "/"):
                names.append(name)

        f.visititems(visit)
        _hash_attrs(digest, "/", f, exclude=HASH_EXCLUDED_ROOT_ATTRS)
        for name in sorted(names):
            obj = f[name]
            _hash_attrs(digest, name, obj)
            if not isinstance(obj, h5py.Dataset):
                continue
            ds = obj
            digest.update(f"{name}|{ds.dtype.str}|{ds.shape}".encode())
            if ds.shape is None or ds.size == 0:
                continue
            if ds.ndim == 0:
                digest.update(repr(ds[()]).encode())
                continue
            step = max(1, (1 << 22) // max(1, ds.dtype.itemsize * (ds.size // ds.shape[0])))
            for start in range(0, ds.shape[0], step):
                block = ds[start : start + step]
                if block.dtype.hasobject:  # variable-length strings: hash their values
                    digest.update(repr(block.tolist()).encode())
                else:
                    digest.update(np.ascontiguousarray(block).tobytes())
    return digest.hexdigest()


def check_run_name(run: str) -> str:
    """``run`` if it is a valid run name; :class:`UsageError` otherwise."""
    if not run or "/" in run or run.startswith(("_", ".")):
        raise UsageError(f"invalid run name {run!r}: use letters, digits, '-' or '_' (not first)")
    return run


def _temp_copy_name(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(f".{path.name}.analysis-{uuid.uuid4().hex[:8]}.tmp")


def _lock_name(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(f".{path.name}.analysis.lock")


#: How long :func:`write_results` waits for another analysis writing into the same file.
LOCK_TIMEOUT_S = 600.0


@contextlib.contextmanager
def _results_lock(path: pathlib.Path, timeout_s: float):
    """Hold an exclusive ``flock`` on the sidecar ``.NAME.analysis.lock``; remove it after.

    The lock file is created if absent and unlinked by its holder before the lock is released.
    A process that opened the file just before it was unlinked then holds a lock on a deleted
    inode; it notices (the path no longer names the inode it locked), lets go and opens the new
    lock file, so removing the file never lets two writers in at once.
    """
    import fcntl

    lock = _lock_name(path)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise SessionFileError(
                f"cannot write results into {path}: cannot create the lock file {lock.name} "
                f"(the folder is read-only, or the disk is full: {str(exc).splitlines()[0]}); "
                "use --no-write"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise SessionFileError(
                    f"cannot write results into {path}: another analysis has been writing "
                    f"into it for more than {timeout_s:g} s (lock {lock.name}); try again later"
                ) from None
            time.sleep(0.02)
            continue
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # locked a lock file its holder had just removed: take the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)  # releases the lock


def write_results(
    path,
    summary: dict,
    *,
    run: str = DEFAULT_RUN,
    input_hash: str | None = None,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
):
    """Store ``summary`` in the session file as ``/results/<run>`` (replacing an older run).

    Only the ``/results`` group changes. HDF5 updates in place are not crash-safe, so the run is
    written into a copy of the file (``.NAME.analysis-XXXX.tmp`` beside it), flushed to disk and
    renamed over the original (an atomic replace): a crash at any moment leaves either the old
    file or the new one, never a half-written one. Costs one copy of the file per run.

    Writers of the same file are serialised by an exclusive ``flock`` on the sidecar
    ``.NAME.analysis.lock`` (removed afterwards), held from the copy to the rename: two
    analyses of one file at the same time (e.g. two ``--run`` names) both end up in it, each
    copying the file as the other left it. Temporary copies found while holding the lock belong
    to a writer that was killed and are removed.

    Parameters
    ----------
    path : str or pathlib.Path
        Session file.
    summary : dict
        Summary from :func:`analyze_session`.
    run : str
        Run name (letters, digits, ``-``, ``_``; not starting with ``_`` or ``.``).
    input_hash : str, optional
        :func:`input_sha256` of the file (computed if not given).
    lock_timeout_s : float
        How long to wait for another writer of the same file.

    Returns
    -------
    dict
        The stored summary (with ``input_sha256``, ``run``, ``created_utc``).

    Raises
    ------
    UsageError
        Invalid run name.
    SessionFileError
        The file or its folder is not writable, the disk is full, or another writer held the
        lock for more than ``lock_timeout_s``.
    """
    import shutil

    import h5py

    path = pathlib.Path(path)
    run = check_run_name(run)
    input_hash = input_hash or input_sha256(path)
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    with _results_lock(path, lock_timeout_s):
        for stale in path.parent.glob(f".{path.name}.analysis-*.tmp"):
            stale.unlink(missing_ok=True)  # every live writer holds the lock: a killed one's
        tmp = _temp_copy_name(path)
        try:
            shutil.copy2(path, tmp)
            f = h5py.File(tmp, "r+")
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise SessionFileError(
                f"cannot write results into {path}: the file or its folder is read-only, or the "
                f"disk is full ({str(exc).splitlines()[0]}); use --no-write"
            ) from exc
        try:
            with f:
                stored = _write_run(f, summary, run, input_hash, created)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return stored


def _write_run(f, summary: dict, run: str, input_hash: str, created: str) -> dict:
    root = f.require_group(RESULTS_GROUP)
    root.attrs.setdefault("schema", "tonuslab.results")
    root.attrs.setdefault("schema_version", 1)
    if run in root:
        del root[run]
    g = root.create_group(run)
    g.attrs["schema"] = SCHEMA
    g.attrs["schema_version"] = SCHEMA_VERSION
    g.attrs["software_version"] = __version__
    g.attrs["input_sha256"] = input_hash
    g.attrs["parameters"] = json.dumps(summary.get("parameters", {}), default=json_default)
    g.attrs["analyses"] = json.dumps(summary.get("analyses", []))
    g.attrs["created_utc"] = created
    stored = dict(summary, input_sha256=input_hash, run=run, created_utc=created)
    g.create_dataset("summary_json", data=json.dumps(stored, default=json_default))
    for table in ("stretches", "stimuli"):
        _write_table(g.create_group(table), summary.get(table) or [])
    return stored


def _write_table(group, rows: list[dict]) -> None:
    cols: list[str] = []
    for r in rows:
        cols.extend(c for c in r if c not in cols)
    group.attrs["n_rows"] = len(rows)
    for c in cols:
        values = [r.get(c) for r in rows]
        if all(isinstance(v, bool | int | float) or v is None for v in values):
            data = np.array([np.nan if v is None else float(v) for v in values])
        else:
            import h5py

            data = np.array(
                [json.dumps(v, default=json_default, ensure_ascii=False) for v in values],
                dtype=h5py.string_dtype("utf-8"),
            )
            group.attrs[f"{c}.encoding"] = "json"
        group.create_dataset(c, data=data)


def read_results(path_or_file) -> dict:
    """Stored analysis runs of a session file: ``{run_name: summary}`` (complete runs only).

    ``path_or_file`` is a path or an open :class:`h5py.File`.
    """
    import h5py

    out = {}
    if isinstance(path_or_file, h5py.File):
        ctx = contextlib.nullcontext(path_or_file)
    else:
        ctx = h5py.File(path_or_file, "r", locking=False)
    with ctx as f:
        root = f.get(RESULTS_GROUP)
        if root is None:
            return out
        for name, g in root.items():
            if name.startswith("_") or not isinstance(g, h5py.Group):
                continue
            if g.attrs.get("schema") != SCHEMA or "summary_json" not in g:
                continue
            raw = g["summary_json"][()]
            try:
                out[name] = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            except (ValueError, AttributeError, TypeError):
                raise SessionFileError(
                    f"the stored analysis run '{name}' is damaged (its summary_json is not "
                    "JSON): analyse the file again with --replace, or --run another name"
                ) from None
    return out
