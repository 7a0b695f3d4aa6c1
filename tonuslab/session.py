"""The researcher's view of one session: :func:`tonuslab.open` returns a :class:`Session`.

A :class:`Session` wraps the lazy reader of :mod:`acquire.session_file` (``open_session``) and
presents one stable surface: signals in physical units with their time vectors, events, gaps,
metadata and stored analysis results. Large datasets are read only when an attribute is first
used. Sessions built in memory (:meth:`Session.from_arrays`, e.g. from arrays in a notebook)
expose the same attributes and analyse the same way. :func:`save_recording` writes a simulator
recording as a session file.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from acquire.session_file.stimuli import Stimulus, stimulus_arrays
from tonuslab.errors import SessionFileError, UsageError

__all__ = ["Session", "Stimulus", "open_session", "save_recording"]


class Session:
    """One recorded (or imported) session.

    Attributes (read lazily from the file)
    --------------------------------------
    path : pathlib.Path | None
        File the session came from (None for in-memory sessions).
    metadata : dict
        Subject, muscle, protocol, device and recording attributes.
    emg_rate_hz, angle_rate_hz : float
        Sampling rates.
    emg_channel_names : list[str]
    emg_uv : numpy.ndarray, shape (n_samples, n_channels)
        EMG in microvolts; samples never received are NaN.
    emg_time_s : numpy.ndarray, shape (n_samples,)
    angle_deg : numpy.ndarray, shape (m_samples,)
        Joint angle in degrees, sign-corrected so it increases as the muscle lengthens.
    angle_time_s : numpy.ndarray, shape (m_samples,)
    events : list[dict]
        Every event (stimuli, prompts, markers) as dicts with at least ``kind`` and ``time_s``.
    stimuli : list[Stimulus]
    gaps : list[dict]
        Gaps (samples never received) with ``stream``, ``start_index``, ``n_samples``.
    results : dict
        Stored analysis runs by name (see :mod:`tonuslab.analysis`).
    """

    def __init__(self, reader=None, path=None, **arrays):
        self._reader = reader
        self.path = None if path is None else pathlib.Path(path)
        self._cache: dict = dict(arrays)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        *,
        emg_uv,
        emg_rate_hz: float,
        angle_deg=None,
        angle_rate_hz: float | None = None,
        stimuli=(),
        metadata: dict | None = None,
        emg_channel_names=None,
        events=(),
        gaps=(),
        t0_s: float = 0.0,
    ) -> Session:
        """An in-memory session with the same attributes as a file-backed one."""
        emg = np.asarray(emg_uv, dtype=float)
        if emg.ndim == 1:
            emg = emg[:, None]
        angle = None if angle_deg is None else np.asarray(angle_deg, dtype=float).reshape(-1)
        names = list(emg_channel_names or [f"emg{i}" for i in range(emg.shape[1])])
        stims = [s if isinstance(s, Stimulus) else Stimulus(**s) for s in stimuli]
        return cls(
            emg_uv=emg,
            emg_rate_hz=float(emg_rate_hz),
            angle_deg=angle,
            angle_rate_hz=None if angle_rate_hz is None else float(angle_rate_hz),
            stimuli=stims,
            metadata=dict(metadata or {}),
            emg_channel_names=names,
            events=list(events),
            gaps=list(gaps),
            t0_s=float(t0_s),
            results={},
        )

    # -- lazy access ----------------------------------------------------------------------
    def _get(self, name):
        if name not in self._cache:
            if self._reader is None:
                raise AttributeError(name)
            self._check_open(name)
            self._cache[name] = getattr(self, f"_load_{name}")()
        return self._cache[name]

    def _check_open(self, what: str) -> None:
        f = getattr(self._reader, "file", None)
        if f is not None and not f.id.valid:
            raise SessionFileError(
                f"{self.path} is closed: '{what}' was not read before closing; "
                "open it again with tonuslab.open"
            )

    def __getattr__(self, name):
        if name in _LAZY:
            return self._get(name)
        raise AttributeError(f"'Session' object has no attribute {name!r}")

    # -- what only a file has: the reader's own, named here one by one ---------------------
    def _reader_attr(self, name: str, default=None):
        if self._reader is None:
            return default
        self._check_open(name)
        return getattr(self._reader, name)

    @property
    def device(self) -> dict:
        """The recording device's attributes (``/device``; empty in memory)."""
        return self._reader_attr("device", {})

    @property
    def attrs(self) -> dict:
        """The file's root attributes (format, state, writer, times; empty in memory)."""
        return self._reader_attr("attrs", {})

    @property
    def channels(self) -> list[dict]:
        """The channel table: name, stream, kind, unit, scale, offset, filters (file only)."""
        return self._reader_attr("channels", [])

    @property
    def clock(self) -> dict:
        """The device-to-host clock mapping (anchors, pings; empty in memory)."""
        return self._reader_attr("clock", {})

    @property
    def state(self) -> str:
        """``complete``, ``recording``, ``recovered``... (``complete`` for in-memory sessions)."""
        return self._reader_attr("state", "complete")

    @property
    def format_version(self) -> str | None:
        """Schema version of the file (None in memory)."""
        return self._reader_attr("format_version")

    @property
    def emg(self):
        """The EMG :class:`acquire.session_file.Stream` (windowed reads; None in memory)."""
        return self._reader_attr("emg")

    @property
    def angle(self):
        """The angle :class:`acquire.session_file.Stream` (None without one or in memory)."""
        return self._reader_attr("angle")

    @property
    def emg_counts(self) -> np.ndarray | None:
        """Raw EMG counts as stored, int32 ``(n_samples, n_channels)`` (None in memory)."""
        return self._reader_attr("emg_counts")

    @property
    def goniometer_deg(self) -> np.ndarray | None:
        """Goniometer in degrees as recorded, ``(m, n_angle)``, before the direction sign."""
        return self._reader_attr("goniometer_deg")

    def stimulus_arrays(self) -> dict[str, np.ndarray]:
        """Stimuli as arrays for :func:`dsp.hreflex.analyze_hreflex`."""
        return stimulus_arrays(self.stimuli)

    @property
    def reader(self):
        """The underlying :class:`acquire.session_file.SessionReader` (None in memory)."""
        return self._reader

    @property
    def start_time_utc(self) -> str | None:
        """When the recording started (ISO 8601 with a UTC offset), if known.

        The root attribute ``recording_start`` when present (imported sessions: the start date
        and time of the source recording; EDF stores a local clock time without a zone, taken as
        UTC), else ``created_utc`` (recorded sessions: the file is created as recording starts).
        The import time of an imported file is never the start.
        """
        if "start_time_utc" in self._cache:
            return self._cache["start_time_utc"]
        attrs = getattr(self._reader, "attrs", None) or {}
        for key in ("recording_start", "created_utc"):
            value = _iso_utc(attrs.get(key))
            if value is not None:
                return value
        return None

    @property
    def prompt_times_s(self) -> list[float]:
        """Times of the stretch prompts (events of kind ``prompt``), seconds from EMG row 0."""
        return [
            float(e["time_s"]) - self.t0_s
            for e in self.events
            if e.get("kind") == "prompt" and e.get("time_s") is not None
        ]

    def _n_rows(self, stream: str) -> int | None:
        """Rows of a stream, from the cache or the dataset's shape (nothing is read)."""
        cached = self._cache.get("emg_uv" if stream == "emg" else "angle_deg")
        if cached is not None or self._reader is None:
            return None if cached is None else int(cached.shape[0])
        self._check_open(f"{stream}_time_s")
        reader_stream = getattr(self._reader, stream, None)
        n = getattr(reader_stream, "n_samples", None)
        return None if n is None else int(n)

    @property
    def emg_time_s(self) -> np.ndarray:
        """Session time of every EMG row, seconds (computed from the length; no EMG is read)."""
        n = self._n_rows("emg")
        if n is None:
            n = self.emg_uv.shape[0]
        return self.t0_s + np.arange(n) / self.emg_rate_hz

    @property
    def angle_time_s(self) -> np.ndarray | None:
        """Session time of every angle row, seconds (None without an angle; nothing is read)."""
        if self._reader is not None and "angle_deg" not in self._cache:
            self._check_open("angle_time_s")
            if getattr(self._reader, "angle", None) is None:
                return None
            n = self._n_rows("angle")
            if n is not None:
                if n == 0:
                    return None  # as angle_deg: an empty angle stream is no angle
                return self.t0_s + np.arange(n) / self.angle_rate_hz
        if self.angle_deg is None:
            return None
        return self.t0_s + np.arange(self.angle_deg.shape[0]) / self.angle_rate_hz

    def emg_window(self, start_s: float, stop_s: float, channels=None):
        """EMG between two session times without loading the rest of the file.

        Parameters
        ----------
        start_s, stop_s : float
            Session times (seconds, same clock as ``emg_time_s``).
        channels : int or list of int, optional
            Columns to read (default all).

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            Time vector ``(n,)`` in seconds and EMG ``(n, n_channels)`` in microvolts (NaN in
            gaps).
        """
        if not stop_s > start_s:
            raise UsageError(f"stop_s ({stop_s}) must be after start_s ({start_s})")
        rate, t0 = self.emg_rate_hz, self.t0_s
        a = max(0, int(np.floor((start_s - t0) * rate)))
        b = max(a, int(np.ceil((stop_s - t0) * rate)))
        if "emg_uv" in self._cache or self._reader is None:
            data = self.emg_uv[a:b]
            if channels is not None:
                data = data[:, np.atleast_1d(channels)]
        else:
            self._check_open("emg_window")
            data = self._reader.emg.read(a, b, channels=channels)
        return t0 + np.arange(a, a + data.shape[0]) / rate, data

    @property
    def muscle(self) -> str | None:
        return self.metadata.get("muscle")

    def close(self) -> None:
        """Release the file handle (the session stays usable for cached data)."""
        close = getattr(self._reader, "close", None)
        if close is not None:
            close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        where = self.path if self.path is not None else "memory"
        return f"<tonuslab.Session {where}>"

    # -- loaders from acquire.session_file's reader (adapted in one place) ---------------------
    def _load_metadata(self):
        return _as_dict(_first(self._reader, "metadata", "attrs", default={}))

    def _load_emg_uv(self):
        value = _first(self._reader, "emg_uv", default=None)
        if value is None:
            raise SessionFileError(f"{self.path}: the session has no EMG data")
        arr = np.asarray(value, dtype=float)
        return arr[:, None] if arr.ndim == 1 else arr

    def _load_emg_rate_hz(self):
        return float(_first(self._reader, "emg_rate_hz"))

    def _load_angle_deg(self):
        value = _first(self._reader, "angle_deg", default=None)
        if value is None:
            return None
        arr = np.asarray(value, dtype=float)
        if arr.ndim == 2:
            arr = arr[:, 0]
        return arr if arr.size else None

    def _load_angle_rate_hz(self):
        value = _first(self._reader, "angle_rate_hz", default=None)
        return None if value is None else float(value)

    def _load_emg_channel_names(self):
        names = _first(self._reader, "emg_channel_names", "emg_channels", default=None)
        if names is None:
            return [f"emg{i}" for i in range(self.emg_uv.shape[1])]
        return [n if isinstance(n, str) else str(getattr(n, "name", n)) for n in names]

    def _load_events(self):
        return [_as_dict(e) for e in (_first(self._reader, "events", default=None) or [])]

    def _load_gaps(self):
        return [_as_dict(g) for g in (_first(self._reader, "gaps", default=None) or [])]

    def _load_t0_s(self):
        return float(_first(self._reader, "t0_s", default=0.0) or 0.0)

    def _load_stimuli(self):
        return list(self._reader.stimuli)

    def _load_results(self):
        from tonuslab.results import read_results

        f = getattr(self._reader, "file", None)
        return read_results(f if f is not None and f.id.valid else self.path)


_LAZY = {
    "metadata",
    "emg_uv",
    "emg_rate_hz",
    "angle_deg",
    "angle_rate_hz",
    "emg_channel_names",
    "events",
    "gaps",
    "stimuli",
    "results",
    "t0_s",
}


def _first(obj, *names, **kw):
    for name in names:
        if isinstance(obj, dict) and name in obj:
            return obj[name]
        if hasattr(obj, name):
            value = getattr(obj, name)
            return value() if callable(value) and not hasattr(value, "shape") else value
    if "default" in kw:
        return kw["default"]
    raise SessionFileError(f"the session file does not provide '{names[0]}'")


def _iso_utc(value) -> str | None:
    """An ISO 8601 time as text with a UTC offset (naive times taken as UTC), or None."""
    import datetime as _dt

    if value is None or not str(value).strip():
        return None
    try:
        t = _dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    return t.isoformat()


def _as_dict(obj) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return dict(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    if hasattr(obj, "dtype") and obj.dtype.names:  # numpy structured row
        return {k: obj[k].item() for k in obj.dtype.names}
    if hasattr(obj, "items"):
        return {k: (json.loads(v) if _looks_json(v) else v) for k, v in obj.items()}
    return dict(obj)


def _looks_json(v) -> bool:
    return isinstance(v, str) and v[:1] in "[{"


def open_session(path) -> Session:
    """Open a session file (see :func:`tonuslab.open`)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    if path.is_dir():
        raise SessionFileError(f"{path} is a folder, not a session file")
    if not path.is_file():  # a FIFO or a device would block the HDF5 open forever
        raise SessionFileError(f"{path} is not a regular file (a pipe or a device?)")
    try:
        from acquire.session_file import open_session as _acquire_open
    except ImportError as exc:  # pragma: no cover - until acquire.session_file lands
        raise SessionFileError(f"cannot read session files ({exc})") from exc
    try:
        reader = _acquire_open(path)
    except (OSError, KeyError, ValueError) as exc:
        raise SessionFileError(f"{path} is not a tonuslab session file ({exc})") from exc
    # acquire's own errors (NotASessionFileError, TruncatedSessionError...) pass through:
    # they are user errors with a one-line message already.
    return Session(reader=reader, path=path)


def save_recording(recording, path, *, metadata: dict | None = None, overwrite: bool = False):
    """Write a simulator recording (:class:`virtual_patient.Recording`) as a session file.

    Raw counts, scales and offsets are kept exactly; the recording's stimulus events become
    stimulus events; ``stretch_direction_sign`` comes from the recording unless ``metadata``
    sets it. Returns the path.
    """
    from acquire.session_file import write_session

    names = list(getattr(recording, "channel_names", None) or [])
    n_emg = recording.emg_counts.shape[1]
    names = (names + [f"emg{i}" for i in range(len(names), n_emg)])[:n_emg]
    channels = [
        {"name": n, "kind": "emg", "unit": "uV", "scale": float(recording.emg_scale_uv)}
        for n in names
    ]
    angle_counts = getattr(recording, "angle_counts", None)
    if angle_counts is not None and np.asarray(angle_counts).size:
        channels.append(
            {
                "name": "goniometer",
                "kind": "angle",
                "unit": "deg",
                "scale": float(recording.angle_scale_deg),
                "offset": float(recording.angle_offset_counts),
            }
        )
    else:
        angle_counts = None
    meta = {"stretch_direction_sign": int(getattr(recording, "stretch_direction_sign", 1))}
    meta.update(metadata or {})
    events = [
        {k: v for k, v in dict(e).items() if k != "time_s" or v is not None}
        for e in getattr(recording, "events", []) or []
    ]
    return write_session(
        path,
        emg_counts=recording.emg_counts,
        emg_rate_hz=float(recording.emg_rate_hz),
        channels=channels,
        angle_counts=angle_counts,
        angle_rate_hz=None if angle_counts is None else float(recording.angle_rate_hz),
        metadata=meta,
        device={"model": "virtual_patient", "source": "simulator"},
        events=events,
        overwrite=overwrite,
    )
