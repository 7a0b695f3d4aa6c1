"""Reading session files lazily: :func:`open_session` returns a :class:`SessionReader`."""

from __future__ import annotations

import errno
import json
import math
import pathlib
import time

import h5py
import numpy as np

from acquire.errors import (
    NewerSchemaError,
    NotASessionFileError,
    OlderSchemaError,
    SessionFileError,
    TruncatedSessionError,
)
from acquire.session_file._h5 import _first_line, _read_attrs, _row_dict, _s
from acquire.session_file.schema import _MAJOR, FILL_VALUE, FORMAT_NAME
from acquire.session_file.stimuli import Stimulus, parse_stimuli, stimulus_arrays
from firmware_iface.scaling import ChannelScaling


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

    def __init__(self, session: SessionReader, name: str) -> None:
        g = session._file["streams"][name]
        self.name = name
        self._session = session
        self.counts = g["counts"]
        self.rate_hz = float(g.attrs["rate_hz"])
        self.t0_s = float(g.attrs.get("t0_s", 0.0))
        self.first_device_sample = int(g.attrs.get("first_device_sample", 0))
        self.scaling = ChannelScaling(
            np.asarray(self.counts.attrs["scale"], dtype=np.float64).reshape(-1),
            np.asarray(self.counts.attrs["offset"], dtype=np.float64).reshape(-1),
        )
        n_ch = self.counts.shape[1] if self.counts.ndim == 2 else -1
        for what, values in (("scale", self.scaling.scale), ("offset", self.scaling.offset)):
            if values.shape[0] != n_ch or not np.all(np.isfinite(values)):
                raise NotASessionFileError(
                    f"{session.path}: the {name} stream has {n_ch} channel(s) but "
                    f"{values.shape[0]} {what} value(s) (or non-finite ones): the channel table "
                    "is damaged"
                )
        if not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise NotASessionFileError(
                f"{session.path}: the {name} stream's rate_hz is {self.rate_hz}"
            )
        self.scale, self.offset = self.scaling.scale, self.scaling.offset
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
        out = self.scaling.select(cols).to_physical(raw)
        out[missing] = np.nan
        for g in self._session.gaps:
            if g["stream"] != self.name:
                continue
            a = max(g["start_index"], start)
            b = min(g["start_index"] + g["n_samples"], stop)
            if a < b:
                out[a - start : b - start] = np.nan
        return out


class SessionReader:
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

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<acquire.SessionReader {self.path} v{self.format_version} {self.state}>"

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
        def load():
            meta = _read_attrs(self._file["metadata"])
            sign = meta.get("stretch_direction_sign", 1)
            if sign not in (1, -1):
                raise NotASessionFileError(
                    f"{self.path}: metadata stretch_direction_sign is {sign!r}, not +1 or -1"
                )
            return meta

        return self._cached("metadata", load)

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

    @property
    def stimuli(self) -> list[Stimulus]:
        """The stimulus pulses (:class:`~acquire.session_file.stimuli.Stimulus`), parsed once."""
        return self._cached(
            "stimuli",
            lambda: parse_stimuli(self.events, t0_s=self.t0_s, emg_rate_hz=self.emg_rate_hz),
        )

    def stimulus_arrays(self) -> dict[str, np.ndarray]:
        """Stimuli as arrays for :func:`dsp.hreflex.analyze_hreflex` (see
        :func:`~acquire.session_file.stimuli.stimulus_arrays`)."""
        return stimulus_arrays(self.stimuli)

    @property
    def gaps(self) -> list[dict]:
        def load():
            out = []
            table = self._file["gaps"]
            if table.dtype.names is None or not {"stream", "start_index", "n_samples"} <= set(
                table.dtype.names
            ):
                raise NotASessionFileError(f"{self.path}: the /gaps table is damaged")
            for r in table[()]:
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


def open_session(path, mode: str = "r") -> SessionReader:
    """Open a session file lazily.

    Parameters
    ----------
    path : path-like
    mode : {"r", "r+"}
        ``"r+"`` lets the analysis write ``/results`` (never while the file is recorded).

    Returns
    -------
    SessionReader

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
    if not path.is_file():  # reading a FIFO or a device would block forever
        raise NotASessionFileError(f"{path} is not a regular file (a pipe or a device?)")
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
    return SessionReader(path, f)
