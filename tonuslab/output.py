"""Writing an output file so that a failure leaves nothing behind: :func:`atomic_output`.

Reports, NWB exports and cohort tables are written into a hidden temporary file beside the
target, flushed to disk and renamed over it. A full disk, a read-only folder or an output path
under a file then raises :class:`OutputError` with one line, and neither a partial file nor the
temporary one remains; an existing file of that name is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import uuid

from tonuslab.errors import TonuslabError


class OutputError(TonuslabError):
    """An output file could not be written (disk full, read-only folder, bad path); CLI exit 2.

    Nothing was left at the output path.
    """


_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENAMETOOLONG: "the name is too long",
}


def describe_os_error(exc: OSError) -> str:
    """A short reason for an :class:`OSError` while writing (``"the disk is full"``...)."""
    reason = _REASONS.get(exc.errno)
    if reason is None:
        reason = (exc.strerror or str(exc).splitlines()[0] or type(exc).__name__).lower()
    return reason


def _is_disk_full(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left" in str(exc) or "disk is full" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def atomic_output(path, *, overwrite: bool = True):
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    Parameters
    ----------
    path : str or pathlib.Path
        The output file.
    overwrite : bool
        When False an existing ``path`` is refused (:class:`OutputError`) before anything is
        written.

    Raises
    ------
    OutputError
        The folder cannot be created, the disk is full, the folder is read-only... (one line,
        the output path named); the temporary file is removed and ``path`` is untouched.
    """
    path = pathlib.Path(path)
    if not overwrite and path.exists():
        raise OutputError(f"{path} exists: choose another name or pass --overwrite")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise OutputError(
            f"cannot write {path}: a part of the path is a file, not a folder ({blocking})"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {describe_os_error(exc)}") from None
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {path}: {describe_os_error(exc)}") from None
        if _is_disk_full(exc):  # libraries (h5py, pynwb) wrap ENOSPC in their own errors
            raise OutputError(f"cannot write {path}: the disk is full") from None
        raise


__all__ = ["OutputError", "atomic_output", "describe_os_error"]
