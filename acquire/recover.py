"""Restore a session after the recorder died (``tonuslab recover FILE.h5``).

With the wire capture beside the file (the default), the session is rebuilt from it through the
normal replay path: every sample the capture holds (forced to disk at least once a second) comes
back, bit-identical to what the live recorder decoded. Without a capture, what the damaged file
still holds is copied into a clean file. Either way the old file is kept as ``FILE.damaged.h5``
and the new one has ``state = "recovered"``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
from dataclasses import dataclass

import h5py

from acquire.capture import capture_path_for
from acquire.errors import CaptureError, SessionFileError, TruncatedSessionError
from acquire.session_file import SessionWriter, open_session
from acquire.session_file._h5 import _read_attrs, _row_dict


@dataclass
class RecoveryReport:
    """What :func:`recover_session` did."""

    path: pathlib.Path
    source: str  # "capture", "file" or "none"
    emg_samples: int
    previous_emg_samples: int | None
    backup: pathlib.Path | None
    message: str


def _previous_samples(path: pathlib.Path) -> tuple[int | None, str | None]:
    try:
        with open_session(path) as s:
            return s.emg.n_samples, s.state
    except (SessionFileError, OSError, KeyError):
        return None, None


def recover_session(path, *, capture=None, force: bool = False) -> RecoveryReport:
    """Rebuild a session file from its capture (or salvage what it holds).

    Parameters
    ----------
    path : path-like
        The session file (it may be missing, damaged or simply not finalised).
    capture : path-like, optional
        The wire capture (default: ``FILE.capture`` beside the session).
    force : bool
        Rebuild even when the file is complete.

    Returns
    -------
    RecoveryReport

    Raises
    ------
    FileNotFoundError
        Neither the file nor a capture exists.
    TruncatedSessionError
        The file cannot be read and there is no capture to rebuild it from.
    """
    from acquire.recorder import replay_capture

    path = pathlib.Path(path)
    capture = pathlib.Path(capture) if capture is not None else capture_path_for(path)
    if not path.exists() and not capture.exists():
        raise FileNotFoundError(errno.ENOENT, "No such file", str(path))
    before, state = _previous_samples(path) if path.exists() else (None, None)
    if state in ("complete", "recovered") and not force:
        return RecoveryReport(
            path, "none", before or 0, before, None,
            f"{path} is {state}: nothing to recover (use --force to rebuild it anyway)",
        )  # fmt: skip
    tmp = path.with_name(path.stem + ".recovering.h5")
    tmp.unlink(missing_ok=True)
    source = "capture"
    try:
        if capture.exists():
            try:
                replay_capture(capture, tmp, state="recovered", overwrite=True)
            except CaptureError:
                if not path.exists():
                    raise
                source = "file"
        else:
            source = "file"
        if source == "capture" and before is not None:
            with open_session(tmp) as s:
                rebuilt = s.emg.n_samples
                set_aside = s.attrs.get("quarantined_frames") or 0
            # the capture was cut shorter than the file (e.g. disk full); unless the rebuilt
            # file set implausible frames aside, which an older recorder wrote as (huge) gaps
            if rebuilt < before and not set_aside:
                tmp.unlink()
                source = "file"
        if source == "file":
            if before is None:
                raise TruncatedSessionError(
                    f"{path} cannot be read and there is no capture ({capture.name}) to rebuild "
                    "it from: the data is lost"
                )
            _salvage(path, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with open_session(tmp) as s:
        after = s.emg.n_samples
        rate = s.emg_rate_hz
        quarantined = s.attrs.get("quarantine") or {}
    backup = None
    if path.exists():
        backup = path.with_name(path.stem + ".damaged.h5")
        os.replace(path, backup)
    os.replace(tmp, path)
    was = "unreadable" if before is None else f"{before / rate:.1f} s"
    msg = (
        f"recovered {path} from the {'wire capture' if source == 'capture' else 'file itself'}: "
        f"{after / rate:.1f} s of EMG (the file had {was})"
        + (f"; the old file is kept as {backup.name}" if backup else "")
    )
    if isinstance(quarantined, dict) and sum(quarantined.values()):
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(quarantined.items()))
        msg += f"; {sum(quarantined.values())} implausible frame(s) set aside ({reasons})"
    return RecoveryReport(path, source, after, before, backup, msg)


def _salvage(src: pathlib.Path, dst: pathlib.Path) -> None:
    """Copy every readable part of a damaged session into a clean file."""
    with h5py.File(src, "r", locking=False) as f:
        channels = [_row_dict(r) for r in f["channels"][()]]
        streams = f["streams"]
        rates = {name: float(streams[name].attrs["rate_hz"]) for name in streams}
        w = SessionWriter(
            dst,
            channels=channels,
            emg_rate_hz=rates["emg"],
            angle_rate_hz=rates.get("angle"),
            metadata=_read_attrs(f["metadata"]),
            device=_read_attrs(f["device"]),
            overwrite=True,
            min_free_bytes=0,
            reserve_bytes=0,
        )
        try:
            for name in streams:
                g = streams[name]
                w._f["streams"][name].attrs.update(dict(g.attrs))
                ds = g["counts"]
                step = 1 << 16
                for start in range(0, ds.shape[0], step):
                    try:
                        block = ds[start : start + step]
                    except OSError:
                        break  # the rest is damaged
                    w.append(name, block)
            for key in ("events", "gaps"):
                with contextlib.suppress(OSError, KeyError):
                    rows = f[key][()]
                    if rows.shape[0]:
                        w._f[key].resize((rows.shape[0],))
                        w._f[key][:] = rows
            with contextlib.suppress(OSError, KeyError):
                clock = f["clock"]
                w.set_clock(
                    _read_attrs(clock), anchors=clock["anchors"][()], pings=clock["pings"][()]
                )
            for key, value in f.attrs.items():
                if key not in ("state", "created_utc", "closed_utc"):
                    w._f.attrs[key] = value
            w.set_attrs(recovered_from="file")
        finally:
            w.close("recovered")
