"""Writing session files: :class:`SessionWriter` (while recording) and :func:`write_session`."""

from __future__ import annotations

import errno
import json
import math
import os
import pathlib
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence

import h5py
import numpy as np

from acquire.errors import (
    DiskFullError,
    SessionFileError,
)
from acquire.jsonable import json_default
from acquire.session_file._h5 import (
    _UNCLOSABLE_AFTER_DISK_FULL,
    CHUNK_CACHE_SLOTS,
    _bound_metadata_cache,
    _is_disk_full,
    _now_utc,
    _tonuslab_version,
    _write_attrs,
)
from acquire.session_file.schema import (
    _STR,
    ANCHOR_DTYPE,
    CHANNEL_DTYPE,
    EVENT_DTYPE,
    EVENT_KINDS,
    FILL_VALUE,
    FORMAT_NAME,
    FORMAT_VERSION,
    GAP_DTYPE,
    PING_DTYPE,
    STATES,
    STREAMS,
    _float_or_nan,
    _validate_channels,
    validate_metadata,
)

#: Highest sampling rate a session may declare (Hz); the protocol's own maximum is far below.
MAX_RATE_HZ = 1e6


def _rate(name: str, value) -> float:
    """A sampling rate as a finite float in (0, MAX_RATE_HZ]; SessionFileError otherwise."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise SessionFileError(f"{name} must be a number in Hz, got {value!r}") from None
    if not (math.isfinite(rate) and 0 < rate <= MAX_RATE_HZ):
        raise SessionFileError(
            f"{name} must be a finite rate in (0, {MAX_RATE_HZ:g}] Hz, got {value!r}"
        )
    return rate


def _event_int(name: str, value, kind: str) -> int:
    """An event's integer field (None or NaN = absent, stored as -1)."""
    if value is None:
        return -1
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise SessionFileError(f"{kind} event: {name} must be an integer, got {value!r}") from None
    if math.isnan(f):
        return -1
    if not math.isfinite(f) or f != int(f) or abs(f) >= 2**62:
        raise SessionFileError(f"{kind} event: {name} must be an integer, got {value!r}")
    return int(f)


def _event_float(name: str, value, kind: str) -> float:
    """An event's float field (None = absent, NaN); infinities are refused."""
    if value is None:
        return float("nan")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise SessionFileError(f"{kind} event: {name} must be a number, got {value!r}") from None
    if math.isinf(f):
        raise SessionFileError(f"{kind} event: {name} must be finite, got {value!r}")
    return f


def _chunk_rows(rate_hz: float, chunk_s: float) -> int:
    target = max(64, int(rate_hz * chunk_s))
    return 1 << round(math.log2(target))


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
        rates = {"emg": _rate("emg_rate_hz", emg_rate_hz), "angle": _float_or_nan(angle_rate_hz)}
        if self._channels["angle"]:
            rates["angle"] = _rate("angle_rate_hz (angle channels need one)", angle_rate_hz)
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
        emg_sample_index = _event_int("emg_sample_index", emg_sample_index, kind)
        pulse_index = _event_int("pulse_index", pulse_index, kind)
        device_time_us = _event_int("device_time_us", device_time_us, kind)
        if kind == "stimulus" and emg_sample_index < 0:
            raise SessionFileError("a stimulus event needs emg_sample_index (the EMG row, >= 0)")
        time_s, host_time_s, intensity_ma, width_us = (
            _event_float(name, v, kind)
            for name, v in (("time_s", time_s), ("host_time_s", host_time_s),
                            ("intensity_ma", intensity_ma), ("width_us", width_us))
        )  # fmt: skip
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
        self._flushed_rows = dict(self._written)  # on disk and readable from here on

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
        rate = self._rates["emg"]
        flushed = getattr(self, "_flushed_rows", {}).get("emg", 0)
        if getattr(self._f, "id", None) is not None and self._f.id.valid:
            # HDF5 could not close the file (its last writes met ENOSPC). Releasing these
            # handles later would make HDF5 crash (segmentation fault) in its error path, so
            # they are kept for the life of the process; the flushed data on disk is unaffected.
            _UNCLOSABLE_AFTER_DISK_FULL.append((self._f, dict(self._ds), self._clock))
            raise DiskFullError(
                f"disk full while writing {self.path}: recording stopped; the file could not be "
                f"closed: the {flushed / rate:.1f} s of EMG flushed before are intact (free "
                "space, then 'tonuslab recover' to repair it and add the rest from the capture)"
            ) from exc
        check = _check_after_disk_full(self.path, self._flushed_rows_by_stream(n))
        received = check.get("emg", (n.get("emg", 0), 0))[0]
        cut = sum(c for _, c in check.values())
        note = f"; {cut} unreadable row(s) written as the disk filled were cut off" if cut else ""
        raise DiskFullError(
            f"disk full while writing {self.path}: recording stopped; {received / rate:.1f} s "
            f"of EMG on disk are intact{note} (free space, then 'tonuslab recover' to add the "
            "rest from the capture)"
        ) from exc

    def _flushed_rows_by_stream(self, written: dict) -> dict[str, tuple[int, int]]:
        """``{stream: (rows known flushed, rows written)}`` at the disk-full stop."""
        flushed = getattr(self, "_flushed_rows", {})
        return {s: (min(flushed.get(s, 0), written[s]), written[s]) for s in written}

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


def _check_after_disk_full(path, rows: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """Read back what a disk-full stop left and cut off rows that cannot be read.

    Rows before the last successful flush are on disk; the chunks written after it are read back
    one by one, and the dataset is shortened to the first chunk that fails to read (HDF5 could
    write its index but not its data as the disk filled). Only the dataset's shape changes:
    that needs no new space.

    Parameters
    ----------
    path : path-like
        The closed session file.
    rows : dict
        ``{stream: (rows flushed, rows written)}``.

    Returns
    -------
    dict
        ``{stream: (rows received and readable, rows cut off)}``; ``rows received`` counts the
        readable rows that hold samples (fill values excluded).
    """
    out: dict[str, tuple[int, int]] = {}
    try:
        f = h5py.File(path, "r+", locking=False)
    except Exception:  # cannot reopen: report what was flushed
        return {s: (flushed, 0) for s, (flushed, _) in rows.items()}
    try:
        for stream, (flushed, _written) in rows.items():
            ds = f["streams"][stream]["counts"]
            n = int(ds.shape[0])
            step = int(ds.chunks[0]) if ds.chunks else 4096
            start = (min(flushed, n) // step) * step
            good = n
            for a in range(start, n, step):
                try:
                    ds[a : min(a + step, n)]
                except Exception:
                    good = a
                    break
            if good < n:
                try:
                    ds.resize(good, axis=0)
                except Exception:
                    good = min(good, flushed)
            fill = ds.fillvalue
            received = 0
            for a in range(0, good, step * 64):
                block = ds[a : min(a + step * 64, good)]
                received += int(np.count_nonzero(~np.all(block == fill, axis=1)))
            out[stream] = (received, n - good)
        f.flush()
    except Exception:
        out = {s: (flushed, 0) for s, (flushed, _) in rows.items()}
    finally:
        try:
            f.close()
        except Exception:
            pass
    return out
