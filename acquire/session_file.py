"""The tonuslab session file (HDF5): schema, writer and lazy reader.

The schema is documented for people who never installed tonuslab in ``docs/session-format.md``;
this module is its reference implementation. Three entry points:

- :class:`SessionWriter` appends sample blocks, events, gaps and the clock mapping while a
  recording runs, and flushes the file at least once a second (a flushed file survives
  ``kill -9``; see ``docs/session-format.md`` for the crash-safety model).
- :func:`write_session` writes a whole session from arrays in one call (importers, tests, replay).
- :func:`open_session` opens a file lazily and hands out physical units with time vectors,
  events, gaps, metadata and stored results; it raises
  :class:`~acquire.errors.NotASessionFileError`, :class:`~acquire.errors.TruncatedSessionError`
  or :class:`~acquire.errors.NewerSchemaError` for files it cannot read.

Conventions (``docs/architecture.md``): time on axis 0; raw counts stay integers on disk with
``scale``, ``offset`` and ``unit`` per channel, ``physical = (counts - offset) * scale``; arrays
are indexed by the device's sample number, samples never received hold the dataset's
``fill_value``, are listed in ``/gaps`` and are NaN in physical arrays.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import math
import os
import pathlib
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence

import h5py
import numpy as np

from acquire.errors import (
    DiskFullError,
    MetadataError,
    NewerSchemaError,
    NotASessionFileError,
    OlderSchemaError,
    PersonalDataError,
    SessionFileError,
    TruncatedSessionError,
)
from acquire.jsonable import json_default

__all__ = [
    "FILL_VALUE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "STREAMS",
    "Session",
    "SessionWriter",
    "Stream",
    "open_session",
    "validate_metadata",
    "write_session",
]

#: Value of the root attribute ``tonuslab_format`` that marks a session file.
FORMAT_NAME = "tonuslab-session"
#: Schema version written by this module ("MAJOR.MINOR"); readers refuse a newer MAJOR.
FORMAT_VERSION = "1.0"
_MAJOR = 1
#: Fill value of every counts dataset: a sample never received (no ADC produces it).
FILL_VALUE = np.iinfo(np.int32).min
#: Sample streams a session may hold, in channel-table order.
STREAMS = ("emg", "angle")
#: Session states stored in the root attribute ``state``.
STATES = ("recording", "complete", "recovered", "stopped_disk_full", "stopped_link_lost")

_STR = h5py.string_dtype("utf-8")
CHANNEL_DTYPE = np.dtype(
    [
        ("name", _STR),
        ("stream", _STR),
        ("column", np.int32),
        ("kind", _STR),
        ("unit", _STR),
        ("scale", np.float64),
        ("offset", np.float64),
        ("highpass_hz", np.float64),
        ("lowpass_hz", np.float64),
    ]
)
EVENT_DTYPE = np.dtype(
    [
        ("kind", _STR),
        ("time_s", np.float64),
        ("emg_sample_index", np.int64),
        ("device_time_us", np.int64),
        ("host_time_s", np.float64),
        ("intensity_ma", np.float64),
        ("width_us", np.float64),
        ("pulse_index", np.int32),
        ("label", _STR),
        ("params", _STR),
    ]
)
GAP_DTYPE = np.dtype(
    [
        ("stream", _STR),
        ("start_index", np.int64),
        ("n_samples", np.int64),
        ("reason", _STR),
        ("host_time_s", np.float64),
    ]
)
ANCHOR_DTYPE = np.dtype([("device_time_us", np.int64), ("host_time_s", np.float64)])
PING_DTYPE = np.dtype(
    [("device_time_us", np.int64), ("host_send_s", np.float64), ("host_recv_s", np.float64)]
)
EVENT_KINDS = ("stimulus", "marker", "prompt", "note", "status", "link")

# ---------------------------------------------------------------------------------- metadata
METADATA_FIELDS = {
    "subject_id": "pseudonymous subject code, e.g. 'S014' (letters, digits, '.', '_', '-')",
    "muscle": "tested muscle, e.g. 'biceps_brachii', 'soleus'",
    "side": "'left', 'right' or 'bilateral'",
    "joint": "joint moved, e.g. 'elbow', 'ankle', 'wrist'",
    "stretch_direction_sign": "+1 or -1: angle_deg = sign * goniometer_deg",
    "passive_range_deg": "[min, max] passive range of motion in degrees, if known",
    "protocol": "'stretch', 'hreflex', 'free' (or another protocol name)",
    "operator": "operator code or initials",
    "notes": "free text (never identifying information)",
    "session_label": "free label, e.g. 'baseline', 'post-baclofen 4h'",
    "extra": "mapping of further lab-specific fields (same personal-data rules)",
}
_PERSONAL = re.compile(
    r"(^|_)(name|first_?name|last_?name|surname|given_?name|full_?name|patient|birth|dob|"
    r"birthdate|date_of_birth|address|street|phone|email|e_mail|ssn|social_security|insurance|"
    r"mrn|medical_record|record_number|passport|national_id)($|_)",
    re.IGNORECASE,
)
_SUBJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_metadata(metadata: Mapping | None) -> dict:
    """Check session metadata and return a normalised copy.

    Parameters
    ----------
    metadata : mapping or None
        Keys from :data:`METADATA_FIELDS`. ``stretch_direction_sign`` defaults to +1.

    Returns
    -------
    dict
        Normalised metadata (``passive_range_deg`` as a list of two floats or absent).

    Raises
    ------
    PersonalDataError
        A key names identifying personal data (name, birth date, address, ...), or the
        subject id is not a pseudonymous code.
    MetadataError
        An unknown key or a value of the wrong type or range.
    """
    out: dict = {"stretch_direction_sign": 1}
    for key, value in dict(metadata or {}).items():
        key = str(key)
        if _PERSONAL.search(key):
            raise PersonalDataError(
                f"metadata field '{key}' would store identifying personal data; "
                "use a pseudonymous subject_id instead"
            )
        if key not in METADATA_FIELDS:
            raise MetadataError(
                f"unknown metadata field '{key}'; allowed: {', '.join(METADATA_FIELDS)} "
                "(put lab-specific fields under 'extra')"
            )
        if value is None:
            continue
        if key == "subject_id":
            value = str(value)
            if not _SUBJECT_ID.match(value):
                raise PersonalDataError(
                    f"subject_id {value!r} is not a pseudonymous code: use letters, digits, "
                    "'.', '_' or '-' only (no spaces, no names), e.g. 'S014'"
                )
        elif key == "stretch_direction_sign":
            try:
                value = int(value)
            except (TypeError, ValueError):
                value = 0
            if value not in (1, -1):
                raise MetadataError("stretch_direction_sign must be +1 or -1")
        elif key == "passive_range_deg":
            try:
                lo, hi = (float(v) for v in value)
            except (TypeError, ValueError) as exc:
                raise MetadataError("passive_range_deg must be two numbers [min, max]") from exc
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise MetadataError("passive_range_deg must be finite with min < max")
            value = [lo, hi]
        elif key == "side":
            value = str(value).lower()
            if value not in ("left", "right", "bilateral"):
                raise MetadataError("side must be 'left', 'right' or 'bilateral'")
        elif key == "extra":
            if not isinstance(value, Mapping):
                raise MetadataError("extra must be a mapping of field names to values")
            for k, v in value.items():
                if _PERSONAL.search(str(k)):
                    raise PersonalDataError(
                        f"metadata field 'extra.{k}' would store identifying personal data"
                    )
                if not isinstance(v, str | int | float | bool):
                    raise MetadataError(f"extra.{k} must be a string or a number")
            value = {str(k): v for k, v in value.items()}
        else:
            value = str(value)
        out[key] = value
    return out


# ---------------------------------------------------------------------------------- channels
def _validate_channels(channels: Sequence[Mapping]) -> dict[str, list[dict]]:
    by_stream: dict[str, list[dict]] = {s: [] for s in STREAMS}
    for ch in channels:
        try:
            kind = str(ch["kind"])
            entry = {
                "name": str(ch["name"]),
                "kind": kind,
                "unit": str(ch["unit"]),
                "scale": float(ch["scale"]),
                "offset": float(ch.get("offset", 0.0) or 0.0),
                "highpass_hz": _float_or_nan(ch.get("highpass_hz")),
                "lowpass_hz": _float_or_nan(ch.get("lowpass_hz")),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise SessionFileError(
                f"channel description {dict(ch)!r} needs name, kind, unit, scale (and offset)"
            ) from exc
        stream = str(ch.get("stream", kind))
        if stream not in by_stream:
            raise SessionFileError(f"channel {entry['name']!r}: stream must be one of {STREAMS}")
        if not (math.isfinite(entry["scale"]) and entry["scale"] != 0):
            raise SessionFileError(f"channel {entry['name']!r}: scale must be finite and non-zero")
        by_stream[stream].append(entry)
    if not by_stream["emg"]:
        raise SessionFileError("a session needs at least one EMG channel")
    return by_stream


def _float_or_nan(v) -> float:
    return float("nan") if v is None else float(v)


def _now_utc() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _chunk_rows(rate_hz: float, chunk_s: float) -> int:
    target = max(64, int(rate_hz * chunk_s))
    return 1 << round(math.log2(target))


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


# ------------------------------------------------------------------------------------ writer
class SessionWriter:
    """Write a session file while recording: append-only, flushed at least once a second.

    Parameters
    ----------
    path : str or path-like
        File to create (``.h5``). An existing file is refused unless ``overwrite``.
    channels : sequence of dict
        One dict per channel, EMG first then angle, as returned by a signal source's
        ``configure``: ``name``, ``kind`` (``"emg"``/``"angle"``), ``unit``, ``scale``,
        ``offset``, optional ``highpass_hz``/``lowpass_hz`` (and ``stream``, default ``kind``).
    emg_rate_hz, angle_rate_hz : float
        Nominal sampling rates (device clock). ``angle_rate_hz`` is needed if there are angle
        channels.
    metadata : dict, optional
        Session metadata, checked by :func:`validate_metadata` (personal data is refused).
    device : dict, optional
        Device identity: ``model``, ``device_id``, ``firmware_version``, ``protocol_version``
        and any other JSON-compatible fields.
    overwrite : bool
        Replace an existing file.
    flush_interval_s : float
        Longest time between two flushes (at most 1 s is the contract).
    chunk_s : float
        Approximate duration of one HDF5 chunk (rows rounded to a power of two).
    min_free_bytes : int
        Stop with :class:`~acquire.errors.DiskFullError` (after closing the file cleanly) when
        the free space of the file's filesystem drops below this before a flush.

    Notes
    -----
    Samples are addressed by *row* = device sample number minus the stream's first device
    sample. :meth:`append` with a ``start_index`` beyond the current end leaves a gap (fill
    values on disk, a row in ``/gaps``). The file is a plain (non-SWMR) HDF5 file; readers in
    other processes open it with ``locking=False`` (:func:`open_session` does this).
    """

    def __init__(
        self,
        path,
        *,
        channels: Sequence[Mapping],
        emg_rate_hz: float,
        angle_rate_hz: float | None = None,
        metadata: Mapping | None = None,
        device: Mapping | None = None,
        overwrite: bool = False,
        flush_interval_s: float = 0.5,
        chunk_s: float = 1.0,
        min_free_bytes: int = 8 << 20,
        reserve_bytes: int = 2 << 20,
    ) -> None:
        self.path = pathlib.Path(path)
        self._reserve_path: pathlib.Path | None = None
        #: Called at the start of every flush (the recorder flushes its capture there first).
        self.before_flush = None
        #: Called when the disk is full, just before the reserve is released for HDF5's last
        #: writes (the recorder stops its journal there, so the journal cannot take the room).
        self.on_disk_full = None
        self._meta = validate_metadata(metadata)
        self._channels = _validate_channels(channels)
        rates = {"emg": float(emg_rate_hz), "angle": _float_or_nan(angle_rate_hz)}
        if not (rates["emg"] > 0):
            raise SessionFileError("emg_rate_hz must be positive")
        if self._channels["angle"] and not (rates["angle"] > 0):
            raise SessionFileError("angle channels need a positive angle_rate_hz")
        if flush_interval_s > 1.0 or flush_interval_s <= 0:
            raise SessionFileError("flush_interval_s must be in (0, 1]")
        if self.path.exists() and not overwrite:
            raise SessionFileError(f"{self.path} exists; choose another name or overwrite it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._flush_interval_s = float(flush_interval_s)
        self._min_free_bytes = int(min_free_bytes)
        self._rates = rates
        self._closed = False
        self._buffers: dict[str, list[np.ndarray]] = {}
        self._buffered: dict[str, int] = {}
        self._written: dict[str, int] = {}
        self._n_channels: dict[str, int] = {}
        self._events: list[tuple] = []
        self._gaps: list[tuple] = []
        self._n_gap_samples: dict[str, int] = {}
        self._last_flush = time.monotonic()
        #: Number of flushes so far (a long recording at real time does two a second).
        self.n_flushes = 0
        self._check_free_space()
        try:
            self._make_reserve(int(reserve_bytes))
            self._create(device or {}, chunk_s)
        except (OSError, RuntimeError) as exc:
            self._release_reserve()
            if _is_disk_full(exc):
                raise DiskFullError(f"disk full: cannot create {self.path}") from exc
            raise

    def _make_reserve(self, n_bytes: int) -> None:
        """Ballast beside the file, freed on a disk-full error so HDF5 can close cleanly."""
        if n_bytes <= 0:
            return
        self._reserve_path = self.path.with_name(f".{self.path.name}.reserve")
        with open(self._reserve_path, "wb") as fh:
            block = bytes(1 << 16)
            for _ in range(0, n_bytes, len(block)):
                fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())

    def make_room_for_closing(self) -> None:
        """The disk is full: stop other writers (``on_disk_full``), then release the reserve."""
        if self.on_disk_full is not None:
            try:
                self.on_disk_full()
            except Exception:  # the room matters more than the hook
                pass
        self._release_reserve()

    def _release_reserve(self) -> None:
        if self._reserve_path is not None:
            self._reserve_path.unlink(missing_ok=True)
            self._reserve_path = None

    # -- creation -----------------------------------------------------------------------
    def _create(self, device: Mapping, chunk_s: float) -> None:
        self._ds: dict[str, h5py.Dataset] = {}
        f = self._f = h5py.File(self.path, "w", libver="earliest")
        _bound_metadata_cache(f)
        f.attrs["tonuslab_format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["created_utc"] = _now_utc()
        f.attrs["writer"] = f"tonuslab {_tonuslab_version()} (acquire.session_file)"
        f.attrs["state"] = "recording"
        f.attrs["device_time_origin_us"] = np.int64(0)
        meta = f.create_group("metadata")
        _write_attrs(meta, self._meta)
        dev = f.create_group("device")
        _write_attrs(dev, {str(k): v for k, v in dict(device).items() if v is not None})
        rows = []
        streams = f.create_group("streams")
        for stream in STREAMS:
            chans = self._channels[stream]
            if not chans:
                continue
            for col, ch in enumerate(chans):
                rows.append(
                    (
                        ch["name"],
                        stream,
                        col,
                        ch["kind"],
                        ch["unit"],
                        ch["scale"],
                        ch["offset"],
                        ch["highpass_hz"],
                        ch["lowpass_hz"],
                    )
                )
            g = streams.create_group(stream)
            g.attrs["rate_hz"] = self._rates[stream]
            g.attrs["t0_s"] = 0.0
            g.attrs["first_device_sample"] = np.int64(0)
            g.attrs["device_time_us_row0"] = np.int64(0)
            n_ch = len(chans)
            chunk_rows = _chunk_rows(self._rates[stream], chunk_s)
            ds = g.create_dataset(
                "counts",
                shape=(0, n_ch),
                maxshape=(None, n_ch),
                dtype=np.int32,
                chunks=(chunk_rows, n_ch),
                rdcc_nbytes=max(1 << 20, 2 * chunk_rows * n_ch * 4),
                rdcc_nslots=CHUNK_CACHE_SLOTS,
                rdcc_w0=1.0,
                compression="gzip",
                compression_opts=1,
                shuffle=True,
                fillvalue=FILL_VALUE,
            )
            ds.attrs["scale"] = np.array([c["scale"] for c in chans], dtype=np.float64)
            ds.attrs["offset"] = np.array([c["offset"] for c in chans], dtype=np.float64)
            ds.attrs["unit"] = np.array([c["unit"] for c in chans], dtype=_STR)
            ds.attrs["channel_names"] = np.array([c["name"] for c in chans], dtype=_STR)
            ds.attrs["fill_value"] = np.int32(FILL_VALUE)
            self._ds[stream] = ds  # kept open: no handle is released mid-error (ENOSPC)
            self._buffers[stream] = []
            self._buffered[stream] = 0
            self._written[stream] = 0
            self._n_channels[stream] = n_ch  # h5py's Dataset.shape costs 60 us a call
            self._n_gap_samples[stream] = 0
        f.create_dataset("channels", data=np.array(rows, dtype=CHANNEL_DTYPE))
        for name, dtype in (("events", EVENT_DTYPE), ("gaps", GAP_DTYPE)):
            self._ds[name] = f.create_dataset(
                name,
                shape=(0,),
                maxshape=(None,),
                dtype=dtype,
                chunks=(256,),
                compression="gzip",
                rdcc_nslots=CHUNK_CACHE_SLOTS,
                rdcc_w0=1.0,
            )
        clock = self._clock = f.create_group("clock")
        clock.attrs["model"] = "host_time_s = offset_s + (1 + drift_ppm * 1e-6) * session_time_s"
        clock.attrs["method"] = "none"
        for name, dtype in (("anchors", ANCHOR_DTYPE), ("pings", PING_DTYPE)):
            self._ds[f"clock/{name}"] = clock.create_dataset(
                name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(256,), compression="gzip"
            )
        res = f.create_group("results")
        res.attrs["description"] = (
            "reserved for analysis results; one subgroup per analysis run (written by tonuslab)"
        )
        f.flush()

    # -- public API -----------------------------------------------------------------------
    @property
    def streams(self) -> tuple[str, ...]:
        """Names of the sample streams in this file."""
        return tuple(self._buffers)

    def n_samples(self, stream: str) -> int:
        """Rows received so far in ``stream`` (including gap rows)."""
        self._check_stream(stream)
        return self._written[stream] + self._buffered[stream]

    def set_stream_origin(
        self,
        stream: str,
        *,
        first_device_sample: int,
        device_time_us_row0: int,
        t0_s: float | None = None,
    ) -> None:
        """Record which device sample is row 0 of ``stream`` and its device time.

        ``t0_s`` (session time of row 0) defaults to the difference between this device time
        and the session's device-time origin (the EMG stream's row 0).
        """
        self._check_stream(stream)
        g = self._f["streams"][stream]
        g.attrs["first_device_sample"] = np.int64(first_device_sample)
        g.attrs["device_time_us_row0"] = np.int64(device_time_us_row0)
        if stream == "emg":
            self._f.attrs["device_time_origin_us"] = np.int64(device_time_us_row0)
        if t0_s is None:
            t0_s = (int(device_time_us_row0) - int(self._f.attrs["device_time_origin_us"])) / 1e6
        g.attrs["t0_s"] = float(t0_s)

    def append(
        self,
        stream: str,
        counts,
        start_index: int | None = None,
        *,
        gap_reason: str = "missing",
        host_time_s: float = float("nan"),
    ) -> None:
        """Append a block of raw counts.

        Parameters
        ----------
        stream : {"emg", "angle"}
        counts : array_like of int, shape (n, n_channels) (or (n,) for one channel)
        start_index : int, optional
            Row of the block's first sample (device sample number minus the first one).
            Beyond the current end: the missing rows become a gap record. Before it: refused.
        gap_reason : str
            Reason stored with an implied gap (e.g. ``"sequence"``, ``"link_lost"``).
        host_time_s : float
            Host time the gap was noticed (stored with an implied gap).
        """
        self._check_open()
        self._check_stream(stream)
        block = np.asarray(counts)
        if block.ndim == 1:
            block = block[:, None]
        n_ch = self._n_channels[stream]
        if block.ndim != 2 or block.shape[1] != n_ch:
            raise SessionFileError(f"{stream} block has shape {block.shape}; expected (n, {n_ch})")
        if block.dtype.kind not in "iu":
            raise SessionFileError(f"{stream} counts must be integers, got {block.dtype}")
        end = self.n_samples(stream)
        if start_index is not None and start_index != end:
            if start_index < end:
                raise SessionFileError(
                    f"{stream} block starts at row {start_index} but {end} rows are already "
                    "written (duplicate or reordered block)"
                )
            self.add_gap(stream, end, start_index - end, gap_reason, host_time_s)
        if block.shape[0]:
            self._buffers[stream].append(block.astype(np.int32, copy=False))
            self._buffered[stream] += block.shape[0]
        self.maybe_flush()

    def add_gap(
        self,
        stream: str,
        start_index: int,
        n_samples: int,
        reason: str = "missing",
        host_time_s: float = float("nan"),
    ) -> None:
        """Record ``n_samples`` missing rows of ``stream`` starting at ``start_index``.

        If the gap lies at the current end of the stream, the rows are reserved (fill values)
        so the next block starts after them.
        """
        self._check_open()
        self._check_stream(stream)
        if n_samples <= 0:
            return
        end = self.n_samples(stream)
        if start_index == end:
            fill = np.full(
                (int(n_samples), self._n_channels[stream]),
                FILL_VALUE,
                dtype=np.int32,
            )
            self._buffers[stream].append(fill)
            self._buffered[stream] += int(n_samples)
        elif start_index + n_samples > end:
            raise SessionFileError(f"gap in {stream} reaches beyond the received samples")
        self._n_gap_samples[stream] += int(n_samples)
        self._gaps.append((stream, int(start_index), int(n_samples), str(reason), host_time_s))

    def add_event(
        self,
        kind: str,
        *,
        time_s: float = float("nan"),
        emg_sample_index: int = -1,
        device_time_us: int = -1,
        host_time_s: float = float("nan"),
        intensity_ma: float = float("nan"),
        width_us: float = float("nan"),
        pulse_index: int = -1,
        label: str = "",
        params: Mapping | None = None,
    ) -> None:
        """Add one event row (stimulus, marker, prompt, note, status, link).

        For a stimulus give ``emg_sample_index`` (row of the EMG stream at the pulse),
        ``intensity_ma``, ``width_us`` and ``pulse_index`` (0 single/first of a pair, 1 second).
        ``time_s`` (session time) defaults to ``emg_t0_s + emg_sample_index / emg_rate_hz``.
        """
        self._check_open()
        if kind not in EVENT_KINDS:
            raise SessionFileError(f"event kind must be one of {EVENT_KINDS}, got {kind!r}")
        if not math.isfinite(time_s) and emg_sample_index >= 0:
            g = self._f["streams"]["emg"]
            time_s = float(g.attrs["t0_s"]) + emg_sample_index / self._rates["emg"]
        self._events.append(
            (
                kind,
                float(time_s),
                int(emg_sample_index),
                int(device_time_us),
                float(host_time_s),
                float(intensity_ma),
                float(width_us) if width_us is not None else float("nan"),
                int(pulse_index),
                str(label),
                json.dumps(dict(params or {}), sort_keys=True, default=json_default),
            )
        )
        self.maybe_flush()

    def set_clock(
        self,
        mapping: Mapping,
        anchors=None,
        pings=None,
    ) -> None:
        """Store the device-to-host clock mapping.

        Parameters
        ----------
        mapping : dict
            ``offset_s``, ``drift_ppm`` (host_time_s = offset_s + (1 + drift_ppm*1e-6) *
            session_time_s), ``residual_sd_s``, ``residual_max_s``, ``one_way_latency_s``,
            ``round_trip_s``, ``n_anchors``, ``method``, ``host_clock``,
            ``host_unix_minus_host_s`` and any other scalar fields.
        anchors : array_like of ANCHOR_DTYPE, optional
            The (device time, arrival host time) points the fit used.
        pings : array_like of PING_DTYPE, optional
            Round trips (device time in the reply, host send and receive times).
        """
        self._check_open()
        try:
            _write_attrs(self._clock, dict(mapping))
            for name, data, dtype in (
                ("anchors", anchors, ANCHOR_DTYPE),
                ("pings", pings, PING_DTYPE),
            ):
                if data is None:
                    continue
                arr = np.asarray(data)
                if arr.dtype != dtype:
                    arr = np.array([tuple(r) for r in arr], dtype=dtype)
                ds = self._ds[f"clock/{name}"]
                ds.resize((arr.shape[0],))
                if arr.shape[0]:
                    ds[:] = arr
        except (OSError, RuntimeError) as exc:
            if _is_disk_full(exc):
                self._abort_disk_full(exc)
            raise

    def set_attrs(self, **attrs) -> None:
        """Set extra root attributes (e.g. ``capture_file``, ``source_url``)."""
        self._check_open()
        _write_attrs(self._f, attrs)

    def maybe_flush(self) -> bool:
        """Flush if the flush interval has elapsed; returns True if it flushed."""
        if time.monotonic() - self._last_flush >= self._flush_interval_s:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        """Write buffered samples, events and gaps and flush the HDF5 file to the OS."""
        self._check_open()
        self._check_free_space()
        if self.before_flush is not None:
            try:
                self.before_flush()  # e.g. the recorder's journal: always ahead of this file
            except DiskFullError as exc:  # the journal hit the full disk first
                self._abort_disk_full(exc)
        try:
            self._write_pending()
            self._f.flush()
        except (OSError, RuntimeError) as exc:
            if _is_disk_full(exc):
                self._abort_disk_full(exc)
            raise
        self._last_flush = time.monotonic()
        self.n_flushes += 1

    def close(self, state: str = "complete") -> None:
        """Write everything, set the final ``state`` and close the file (idempotent)."""
        if self._closed:
            return
        if state not in STATES:
            raise SessionFileError(f"state must be one of {STATES}")
        if state == "stopped_disk_full":
            self.make_room_for_closing()  # room for HDF5 to write its last metadata
        try:
            self._write_pending()
            self._f.attrs["state"] = state
            self._f.attrs["closed_utc"] = _now_utc()
            for stream in self._buffers:
                self._f["streams"][stream].attrs["n_gap_samples"] = np.int64(
                    self._n_gap_samples[stream]
                )
            self._f.flush()
        except (OSError, RuntimeError) as exc:
            if _is_disk_full(exc):
                self._abort_disk_full(exc)
            raise
        finally:
            self._closed = True
            try:
                self._f.close()
            except Exception:  # pragma: no cover - close after a failed write
                pass
            self._release_reserve()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._closed:
            self.close("complete" if exc_type is None else "recording")

    # -- internals ------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise SessionFileError(f"{self.path} is closed")

    def _check_stream(self, stream: str) -> None:
        if stream not in self._buffers:
            raise SessionFileError(f"this session has no {stream!r} stream")

    def _check_free_space(self) -> None:
        if self._min_free_bytes <= 0:
            return
        try:
            free = shutil.disk_usage(self.path.parent if self.path.parent.exists() else ".").free
        except OSError:
            return
        if free < self._min_free_bytes:
            exc = OSError(errno.ENOSPC, "free space below the recorder's reserve")
            if hasattr(self, "_f") and not self._closed:
                self._abort_disk_full(exc)
            raise DiskFullError(
                f"disk almost full ({free >> 20} MiB free): cannot record to {self.path}"
            ) from exc

    def _abort_disk_full(self, exc: BaseException):
        """Close what can be closed and raise DiskFullError; flushed data stays readable.

        The reserve (free-space limit and ballast file) exists so that the samples buffered since
        the last flush can still be written: they are, before the file is closed.
        """
        self._closed = True
        self.make_room_for_closing()  # HDF5 now has room for the buffered samples and metadata
        try:
            self._write_pending()
        except Exception:  # a real ENOSPC with no room left: keep what was flushed before
            pass
        n = {s: self._written.get(s, 0) for s in self._buffers}
        for action in (
            self._f.flush,
            lambda: self._f.attrs.__setitem__("state", "stopped_disk_full"),
            self._f.flush,
            self._f.close,
        ):
            try:
                action()
            except Exception:
                pass
        if getattr(self._f, "id", None) is not None and self._f.id.valid:
            # HDF5 could not close the file (its last writes met ENOSPC). Releasing these
            # handles later would make HDF5 crash (segmentation fault) in its error path, so
            # they are kept for the life of the process; the flushed data on disk is unaffected.
            _UNCLOSABLE_AFTER_DISK_FULL.append((self._f, dict(self._ds), self._clock))
        rate = self._rates["emg"]
        raise DiskFullError(
            f"disk full while writing {self.path}: recording stopped; "
            f"{n.get('emg', 0) / rate:.1f} s of EMG on disk are intact "
            "(free space, then 'tonuslab recover' to add the rest from the capture)"
        ) from exc

    def _write_pending(self) -> None:
        for stream, blocks in self._buffers.items():
            if not blocks:
                continue
            data = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=0)
            ds = self._ds[stream]
            start = self._written[stream]
            ds.resize((start + data.shape[0], ds.shape[1]))
            ds[start:] = data
            self._written[stream] = start + data.shape[0]
            self._buffers[stream] = []
            self._buffered[stream] = 0
        for name, rows, dtype in (
            ("events", self._events, EVENT_DTYPE),
            ("gaps", self._gaps, GAP_DTYPE),
        ):
            if not rows:
                continue
            ds = self._ds[name]
            start = ds.shape[0]
            ds.resize((start + len(rows),))
            ds[start:] = np.array(rows, dtype=dtype)
            rows.clear()


# --------------------------------------------------------------------------- one-call writer
def write_session(
    path,
    *,
    emg_counts,
    emg_rate_hz: float,
    channels: Sequence[Mapping],
    angle_counts=None,
    angle_rate_hz: float | None = None,
    metadata: Mapping | None = None,
    device: Mapping | None = None,
    events: Iterable[Mapping] = (),
    gaps: Iterable[Mapping] = (),
    clock: Mapping | None = None,
    emg_t0_s: float = 0.0,
    angle_t0_s: float = 0.0,
    state: str = "complete",
    attrs: Mapping | None = None,
    overwrite: bool = False,
) -> pathlib.Path:
    """Write a whole session from arrays in one call.

    Parameters
    ----------
    path : path-like
        Output ``.h5`` file.
    emg_counts : array_like of int, shape (n, n_emg)
        Raw EMG counts, row = device sample number.
    emg_rate_hz : float
    channels : sequence of dict
        Channel descriptions, EMG first then angle (see :class:`SessionWriter`).
    angle_counts : array_like of int, shape (m, n_angle), optional
    angle_rate_hz : float, optional
    metadata, device : dict, optional
        As for :class:`SessionWriter`.
    events : iterable of dict
        Keyword arguments of :meth:`SessionWriter.add_event` (``kind`` required).
    gaps : iterable of dict
        ``stream``, ``start_index``, ``n_samples``, optional ``reason``, ``host_time_s``.
        Rows inside a gap are written as the fill value whatever ``*_counts`` holds there.
    clock : dict, optional
        Clock mapping for :meth:`SessionWriter.set_clock`; may hold ``anchors``/``pings``.
    emg_t0_s, angle_t0_s : float
        Session time of row 0 of each stream.
    state : str
        Final ``state`` attribute (``"complete"``, ``"recovered"``...).
    attrs : dict, optional
        Extra root attributes.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    arrays = {"emg": np.asarray(emg_counts)}
    if angle_counts is not None:
        arrays["angle"] = np.asarray(angle_counts)
    for key, arr in list(arrays.items()):
        if arr.ndim == 1:
            arrays[key] = arr = arr[:, None]
        if arr.dtype.kind not in "iu":
            raise SessionFileError(f"{key}_counts must be integers, got {arr.dtype}")
    gap_list = [dict(g) for g in gaps]
    with SessionWriter(
        path,
        channels=channels,
        emg_rate_hz=emg_rate_hz,
        angle_rate_hz=angle_rate_hz,
        metadata=metadata,
        device=device,
        overwrite=overwrite,
        min_free_bytes=0,
        reserve_bytes=0,
    ) as w:
        for stream, t0 in (("emg", emg_t0_s), ("angle", angle_t0_s)):
            if stream in w.streams:
                w._f["streams"][stream].attrs["t0_s"] = float(t0)
        for stream, arr in arrays.items():
            arr = arr.astype(np.int32, copy=True)
            for g in gap_list:
                if g["stream"] == stream:
                    s, n = int(g["start_index"]), int(g["n_samples"])
                    if s < 0 or n < 0 or s + n > arr.shape[0]:
                        raise SessionFileError(f"gap {g} lies outside the {stream} samples")
                    arr[s : s + n] = FILL_VALUE
            w.append(stream, arr)
        for g in gap_list:
            w.add_gap(
                g["stream"],
                int(g["start_index"]),
                int(g["n_samples"]),
                g.get("reason", "missing"),
                float(g.get("host_time_s", float("nan"))),
            )
        for ev in events:
            ev = dict(ev)
            w.add_event(ev.pop("kind"), **ev)
        if clock:
            clock = dict(clock)
            w.set_clock(clock, anchors=clock.pop("anchors", None), pings=clock.pop("pings", None))
        if attrs:
            w.set_attrs(**attrs)
        w._write_pending()
        w.close(state)
    return pathlib.Path(path)


# ------------------------------------------------------------------------------------ reader
class Stream:
    """One sample stream of an open session (``"emg"`` or ``"angle"``), read lazily.

    Attributes
    ----------
    name : str
    rate_hz : float
    t0_s : float
        Session time of row 0.
    counts : h5py.Dataset, shape (n_samples, n_channels), int32
        Raw counts (fill value where a sample was never received).
    channels : list of dict
    scale, offset : numpy.ndarray, shape (n_channels,)
    units : list of str
    """

    def __init__(self, session: Session, name: str) -> None:
        g = session._file["streams"][name]
        self.name = name
        self._session = session
        self.counts = g["counts"]
        self.rate_hz = float(g.attrs["rate_hz"])
        self.t0_s = float(g.attrs.get("t0_s", 0.0))
        self.first_device_sample = int(g.attrs.get("first_device_sample", 0))
        self.scale = np.asarray(self.counts.attrs["scale"], dtype=np.float64)
        self.offset = np.asarray(self.counts.attrs["offset"], dtype=np.float64)
        self.units = [_s(u) for u in self.counts.attrs["unit"]]
        self.channel_names = [_s(u) for u in self.counts.attrs["channel_names"]]
        fill = self.counts.fillvalue
        self.fill_value = int(fill) if fill is not None else FILL_VALUE

    @property
    def n_samples(self) -> int:
        return int(self.counts.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.counts.shape[1])

    def __len__(self) -> int:
        return self.n_samples

    def time_s(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Session time of rows ``start:stop``, shape (n,): ``t0_s + row / rate_hz``."""
        start, stop, _ = slice(start, stop).indices(self.n_samples)
        return self.t0_s + np.arange(start, stop, dtype=np.float64) / self.rate_hz

    def read(self, start: int = 0, stop: int | None = None, channels=None) -> np.ndarray:
        """Physical values of rows ``start:stop``, float64, shape (n, n_channels); NaN in gaps."""
        start, stop, _ = slice(start, stop).indices(self.n_samples)
        cols = slice(None) if channels is None else np.atleast_1d(channels)
        try:
            raw = self.counts[start:stop]
        except (OSError, RuntimeError) as exc:
            if self._session.state == "recording":
                hint = "if it is still being recorded, open it again; else 'tonuslab recover'"
            else:
                hint = "try 'tonuslab recover'"
            raise TruncatedSessionError(
                f"{self._session.path}: cannot read {self.name} samples "
                f"({str(exc).splitlines()[0]}); {hint}"
            ) from exc
        raw = raw[:, cols]
        missing = raw == self.fill_value
        out = (raw.astype(np.float64) - self.offset[cols]) * self.scale[cols]
        out[missing] = np.nan
        for g in self._session.gaps:
            if g["stream"] != self.name:
                continue
            a = max(g["start_index"], start)
            b = min(g["start_index"] + g["n_samples"], stop)
            if a < b:
                out[a - start : b - start] = np.nan
        return out


class Session:
    """A session file opened by :func:`open_session` (lazy: arrays load on first use).

    Attributes
    ----------
    path : pathlib.Path
    format_version : str
    state : str
        ``"complete"``, ``"recording"`` (being recorded, or the recorder was killed),
        ``"recovered"``, ``"stopped_disk_full"`` or ``"stopped_link_lost"``.
    metadata : dict
        Session metadata (subject_id, muscle, side, joint, stretch_direction_sign, ...).
    device : dict
        Device identity (model, device_id, firmware_version, protocol_version, ...).
    channels : list of dict
        The channel table.
    emg, angle : Stream or None
    emg_uv : numpy.ndarray, shape (n, n_emg)
        EMG in microvolts, NaN where samples are missing.
    emg_time_s : numpy.ndarray, shape (n,)
    angle_deg : numpy.ndarray, shape (m,) or None
        First angle channel times ``stretch_direction_sign`` (increases as the muscle
        lengthens); NaN where missing.
    goniometer_deg : numpy.ndarray, shape (m, n_angle) or None
        Angle channels as measured (no sign correction).
    angle_time_s : numpy.ndarray, shape (m,) or None
    events : list of dict
        Keys of ``EVENT_DTYPE`` (``params`` decoded from JSON; absent values are None).
    gaps : list of dict
        ``stream``, ``start_index``, ``n_samples``, ``reason``, ``host_time_s``.
    clock : dict
        The clock mapping attributes plus ``anchors`` and ``pings`` arrays.
    results : dict
        ``/results`` as nested dicts (attributes and datasets), for the analysis layer.
    """

    def __init__(self, path: pathlib.Path, f: h5py.File) -> None:
        self.path = path
        self._file = f
        self._cache: dict = {}
        self.format_version = _s(f.attrs["format_version"])
        self.state = _s(f.attrs.get("state", "unknown"))

    # -- context and repr
    def close(self) -> None:
        """Close the HDF5 file (cached arrays stay usable)."""
        try:
            self._file.close()
        except Exception:  # pragma: no cover
            pass

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<acquire.Session {self.path} v{self.format_version} {self.state}>"

    @property
    def file(self) -> h5py.File:
        """The underlying h5py file (read-only unless opened with ``mode='r+'``)."""
        return self._file

    def _cached(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    # -- metadata
    @property
    def metadata(self) -> dict:
        return self._cached("metadata", lambda: _read_attrs(self._file["metadata"]))

    @property
    def device(self) -> dict:
        return self._cached("device", lambda: _read_attrs(self._file["device"]))

    @property
    def attrs(self) -> dict:
        """Root attributes (format, version, state, capture file, source...)."""
        return _read_attrs(self._file)

    @property
    def channels(self) -> list[dict]:
        def load():
            return [_row_dict(r) for r in self._file["channels"][()]]

        return self._cached("channels", load)

    # -- streams
    def stream(self, name: str) -> Stream | None:
        """The :class:`Stream` called ``name``, or None if the session has none."""
        if name not in self._file["streams"]:
            return None
        return self._cached(("stream", name), lambda: Stream(self, name))

    @property
    def emg(self) -> Stream:
        return self.stream("emg")

    @property
    def angle(self) -> Stream | None:
        return self.stream("angle")

    @property
    def emg_rate_hz(self) -> float:
        return self.emg.rate_hz

    @property
    def angle_rate_hz(self) -> float | None:
        return None if self.angle is None else self.angle.rate_hz

    @property
    def t0_s(self) -> float:
        return self.emg.t0_s

    @property
    def emg_channel_names(self) -> list[str]:
        return list(self.emg.channel_names)

    @property
    def emg_uv(self) -> np.ndarray:
        return self._cached("emg_uv", self.emg.read)

    @property
    def emg_counts(self) -> np.ndarray:
        return self._cached("emg_counts", lambda: self.emg.counts[()])

    @property
    def emg_time_s(self) -> np.ndarray:
        return self.emg.time_s()

    @property
    def goniometer_deg(self) -> np.ndarray | None:
        if self.angle is None:
            return None
        return self._cached("goniometer_deg", self.angle.read)

    @property
    def angle_deg(self) -> np.ndarray | None:
        if self.angle is None:
            return None
        sign = int(self.metadata.get("stretch_direction_sign", 1))
        return self._cached("angle_deg", lambda: sign * self.goniometer_deg[:, 0])

    @property
    def angle_time_s(self) -> np.ndarray | None:
        return None if self.angle is None else self.angle.time_s()

    # -- tables
    @property
    def events(self) -> list[dict]:
        def load():
            out = []
            for r in self._file["events"][()]:
                d = _row_dict(r)
                d["params"] = json.loads(d["params"] or "{}")
                for key in ("emg_sample_index", "device_time_us", "pulse_index"):
                    if d[key] < 0:
                        d[key] = None
                for key in ("time_s", "host_time_s", "intensity_ma", "width_us"):
                    if not math.isfinite(d[key]):
                        d[key] = None
                out.append(d)
            return out

        return self._cached("events", load)

    def stimuli(self) -> dict[str, np.ndarray]:
        """Stimulus events as arrays for :func:`dsp.hreflex.analyze_hreflex`.

        Returns
        -------
        dict
            ``stim_sample_index`` (int64), ``stim_intensity_ma``, ``stim_width_us`` (float64),
            ``pulse_index`` (int64), each shape (n_stimuli,).
        """
        stims = [e for e in self.events if e["kind"] == "stimulus"]
        return {
            "stim_sample_index": np.array([e["emg_sample_index"] for e in stims], dtype=np.int64),
            "stim_intensity_ma": np.array(
                [np.nan if e["intensity_ma"] is None else e["intensity_ma"] for e in stims]
            ),
            "stim_width_us": np.array(
                [np.nan if e["width_us"] is None else e["width_us"] for e in stims]
            ),
            "pulse_index": np.array([e["pulse_index"] or 0 for e in stims], dtype=np.int64),
        }

    @property
    def gaps(self) -> list[dict]:
        def load():
            out = []
            for r in self._file["gaps"][()]:
                d = _row_dict(r)
                if not math.isfinite(d["host_time_s"]):
                    d["host_time_s"] = None
                out.append(d)
            return out

        return self._cached("gaps", load)

    @property
    def clock(self) -> dict:
        def load():
            g = self._file["clock"]
            d = _read_attrs(g)
            d["anchors"] = g["anchors"][()]
            d["pings"] = g["pings"][()]
            return d

        return self._cached("clock", load)

    @property
    def results(self) -> dict:
        """``/results`` as nested dicts: attributes, and datasets as numpy arrays."""
        return _group_to_dict(self._file["results"]) if "results" in self._file else {}

    @property
    def results_group(self) -> h5py.Group:
        """The ``/results`` group (writable when opened with ``mode='r+'``)."""
        return self._file.require_group("results")


def open_session(path, mode: str = "r") -> Session:
    """Open a session file lazily.

    Parameters
    ----------
    path : path-like
    mode : {"r", "r+"}
        ``"r+"`` lets the analysis write ``/results`` (never while the file is recorded).

    Returns
    -------
    Session

    Raises
    ------
    FileNotFoundError
        No such file.
    NotASessionFileError
        Not HDF5, or HDF5 without the tonuslab session marker.
    TruncatedSessionError
        HDF5 that cannot be opened or read (cut short, damaged): try ``tonuslab recover``.
    NewerSchemaError
        Written by a newer tonuslab with a schema major version this reader does not know.
    OlderSchemaError
        A pre-release (0.x) schema.

    Notes
    -----
    Read mode opens with HDF5 file locking off, so a file that is still being recorded can be
    read by a second process; it shows the data as of the writer's last flush (at most about a
    second old). Re-open to see newer data.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "No such file", str(path))
    if path.is_dir():
        raise NotASessionFileError(f"{path} is a folder, not a session file")
    if mode not in ("r", "r+"):
        raise SessionFileError("mode must be 'r' or 'r+'")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head != b"\x89HDF\r\n\x1a\n":
        if path.stat().st_size == 0 or not head:
            raise TruncatedSessionError(f"{path} is empty; try 'tonuslab recover {path}'")
        raise NotASessionFileError(f"{path} is not an HDF5 file, so not a tonuslab session")
    f = None
    last: Exception | None = None
    for attempt in range(4):
        try:
            f = h5py.File(path, mode, locking=False) if mode == "r" else h5py.File(path, mode)
            break
        except OSError as exc:  # a writer mid-flush, or a damaged file
            last = exc
            time.sleep(0.05 * (attempt + 1))
    if f is None:
        raise TruncatedSessionError(
            f"{path} cannot be opened as HDF5 ({_first_line(last)}); try 'tonuslab recover {path}'"
        ) from last
    try:
        marker = f.attrs.get("tonuslab_format")
        if marker is None or _s(marker) != FORMAT_NAME:
            raise NotASessionFileError(f"{path} is HDF5 but not a tonuslab session file")
        version = _s(f.attrs.get("format_version", "0.0"))
        try:
            major = int(version.split(".")[0])
        except ValueError:
            raise NotASessionFileError(f"{path}: bad format_version {version!r}") from None
        if major < 1:
            raise OlderSchemaError(
                f"{path} uses session format {version}, older than this tonuslab reads "
                f"({_MAJOR}.x); convert it with the tonuslab version that wrote it"
            )
        if major > _MAJOR:
            raise NewerSchemaError(
                f"{path} uses session format {version}; this tonuslab reads {_MAJOR}.x: "
                "upgrade tonuslab"
            )
        for required in ("metadata", "device", "channels", "streams", "events", "gaps"):
            if required not in f:
                raise TruncatedSessionError(
                    f"{path} lacks /{required} (incomplete file); try 'tonuslab recover {path}'"
                )
        if "emg" not in f["streams"]:
            raise TruncatedSessionError(f"{path} has no EMG stream; try 'tonuslab recover'")
    except Exception:
        f.close()
        raise
    return Session(path, f)


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


def _group_to_dict(group: h5py.Group) -> dict:
    out = _read_attrs(group)
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = _group_to_dict(item)
        else:
            value = item[()]
            out[key] = _py(value) if not isinstance(value, np.ndarray) else value
    return out


def _first_line(exc) -> str:
    return str(exc).splitlines()[0] if exc else "unknown error"
