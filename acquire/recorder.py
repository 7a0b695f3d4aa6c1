"""The recorder: any source URL -> device client -> session file (+ wire capture).

One lifecycle for every source (serial, BLE, TCP, ``sim://``, ``replay://``): open the link
(:func:`acquire.links.open_link`), wrap it so every byte is captured with its arrival time,
identify and configure the device through :class:`firmware_iface.client.DeviceClient` (the one
decode path), start streaming, then loop: decoded sample blocks go to the
:class:`~acquire.session_file.SessionWriter` at their device sample number (so a sequence jump is
a gap record with the exact number of missing samples), device events become event rows, arrival
times feed the lower-envelope :class:`~acquire.clock.ClockFitter` and round-trip pings measure
the latency. Stop with :meth:`Recorder.request_stop` (signal-safe) or when ``duration_s`` of
session time is recorded.

A vanished link (USB unplugged, peer closed) is detected (``LinkClosed``), logged as a ``link``
event, and, if ``reconnect`` is set, the recorder reopens the URL with backoff and resumes; the
samples missed meanwhile become a ``link_lost`` gap.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import logging
import math
import pathlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from acquire.capture import EVENT, HEAD, LINK, CaptureWriter, CapturingLink, capture_path_for
from acquire.clock import ClockFitter
from acquire.errors import AcquisitionError, LinkLostError, SessionFileError, SourceError
from acquire.session_file import SessionWriter, validate_metadata
from firmware_iface.scaling import ChannelScaling

log = logging.getLogger("acquire.recorder")

STREAM_NAMES = {0: "emg", 1: "angle"}


@dataclass
class RecorderStats:
    """What the live view shows (updated by the recorder loop)."""

    started_host_s: float = 0.0
    elapsed_s: float = 0.0
    session_time_s: float = 0.0
    samples: dict = field(default_factory=lambda: {"emg": 0, "angle": 0})
    rows: dict = field(default_factory=lambda: {"emg": 0, "angle": 0})
    rate_hz: dict = field(default_factory=lambda: {"emg": 0.0, "angle": 0.0})
    gap_samples: dict = field(default_factory=lambda: {"emg": 0, "angle": 0})
    lost_packets: int = 0
    decode_errors: int = 0
    battery_pct: int | None = None
    emg_level_uv: list = field(default_factory=list)
    angle_deg: float = float("nan")
    velocity_deg_s: float = float("nan")
    link_up: bool = True
    link_losses: int = 0
    markers: int = 0
    stimuli: int = 0
    clock: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    quarantined: dict = field(default_factory=dict)
    watchdog_stops: int = 0

    @property
    def quarantined_frames(self) -> int:
        """Implausible SAMPLES frames set aside, all reasons (see :attr:`quarantined`)."""
        return sum(self.quarantined.values())


class _Ring:
    """The newest ``capacity`` rows of a (n, ch) float stream."""

    def __init__(self, capacity: int, n_ch: int) -> None:
        self.buf = np.full((capacity, n_ch), np.nan)
        self.pos = 0
        self.total = 0

    def push(self, rows: np.ndarray) -> None:
        n = rows.shape[0]
        cap = self.buf.shape[0]
        if n >= cap:
            self.buf[:] = rows[-cap:]
            self.pos = 0
        else:
            end = self.pos + n
            if end <= cap:
                self.buf[self.pos : end] = rows
            else:
                k = cap - self.pos
                self.buf[self.pos :] = rows[:k]
                self.buf[: n - k] = rows[k:]
            self.pos = end % cap
        self.total += n

    def last(self, n: int) -> np.ndarray:
        cap = self.buf.shape[0]
        n = min(n, cap, self.total)
        idx = (self.pos - n + np.arange(n)) % cap
        return self.buf[idx]


class Recorder:
    """Record one session from a device URL into an HDF5 session file.

    Parameters
    ----------
    url : str
        Device URL (``sim://simple?seed=1``, ``/dev/ttyACM0``, ``tcp://...``, ``ble://...``,
        ``replay://x.capture``).
    path : path-like
        Session file to create.
    metadata : dict, optional
        Session metadata (checked; personal data refused before anything is opened).
    config : dict, optional
        Acquisition configuration sent with CONFIGURE (``emg_rate_hz``, ``angle_rate_hz``,
        ``n_emg``, ``n_angle``, ``emg_bits``, ``emg_gain``); None keeps the device's.
    capture : bool
        Save the raw wire capture beside the session (``x.capture``; the journal used by
        ``tonuslab recover``). Replays never capture.
    keep_capture : bool
        Keep the capture after a clean stop (False deletes it once the session file is closed).
    reconnect : bool
        On a lost link, reopen the URL with backoff and resume.
    reconnect_timeout_s : float
        Give up reconnecting after this long (the session is closed as ``stopped_link_lost``).
    duration_s : float, optional
        Stop after this much session time (device clock).
    stim_key : bytes, optional
        Stimulation key for the client (H-reflex protocol).
    ping_interval_s : float
        Round-trip pings for the latency estimate (live sources only).
    overwrite : bool
        Replace existing session/capture files.
    link_opener : callable, optional
        ``f(url) -> ByteLink``; default :func:`acquire.links.open_link`.
    """

    def __new__(cls, url=None, *args, **kwargs):
        # a foreign source (lsl://...) or a replay of its journal is recorded by SourceRecorder
        if cls is Recorder and _is_source_target(url):
            from acquire.sources import source_recorder_class

            return super().__new__(source_recorder_class())
        return super().__new__(cls)

    def __init__(
        self,
        url: str,
        path,
        *,
        metadata: Mapping | None = None,
        config: Mapping | None = None,
        capture: bool = True,
        keep_capture: bool = True,
        reconnect: bool = False,
        reconnect_timeout_s: float = 60.0,
        duration_s: float | None = None,
        stim_key: bytes | None = None,
        ping_interval_s: float = 2.0,
        overwrite: bool = False,
        link_opener: Callable | None = None,
        header_extra: Mapping | None = None,
        final_state: str = "complete",
        min_free_bytes: int = 8 << 20,
    ) -> None:
        self.url = url
        self.path = pathlib.Path(path)
        self.metadata = validate_metadata(metadata)
        self.config = {k: int(v) for k, v in dict(config or {}).items() if v is not None}
        self.capture_enabled = capture
        self.keep_capture = keep_capture
        self.reconnect = reconnect
        self.reconnect_timeout_s = reconnect_timeout_s
        self.duration_s = duration_s
        self.stim_key = stim_key
        self.ping_interval_s = ping_interval_s
        self.overwrite = overwrite
        self.header_extra = dict(header_extra or {})
        self.final_state = final_state
        self.min_free_bytes = int(min_free_bytes)
        if link_opener is None:
            from acquire.links import open_link

            link_opener = open_link
        self._open_link = link_opener
        self.stats = RecorderStats()
        self.capture: CaptureWriter | None = None
        self.writer: SessionWriter | None = None
        self.client = None
        self.link = None
        self.info = None
        self.replay = False
        self._stop = threading.Event()
        self._fitter = ClockFitter()
        self._origin: dict[str, int] = {}
        self._origin_time: dict[str, int] = {}
        self._rates: dict[str, float] = {}
        self._scaling: dict[str, ChannelScaling] = {}
        self._emg_ring: _Ring | None = None
        self._angle_ring: _Ring | None = None
        self._lost_since: float | None = None
        self._gap_reason = {"emg": "sequence", "angle": "sequence"}
        self._duplicates = 0
        self._quarantine_seen = 0  # records of the current client already written
        self._quarantine_events = 0
        self._check_fit: tuple[int, dict] | None = None  # (anchors, fit) of the time check
        self._last_ping = 0.0
        self._last_clock = 0.0
        self._last_clock_write = 0.0
        self._host_unix_minus_host_s = time.time() - time.monotonic()
        self._lock = threading.RLock()
        self._status_seen: tuple | None = None
        self._closed = False
        self._max_rows: dict[str, int] | None = None
        self._rate_history: collections.deque = collections.deque()
        self._last_stats_s = -math.inf
        #: ``f(kind, data)`` for events (marker, prompt, gap, link, stimulus, note, ...).
        self.listeners: list[Callable[[str, dict], None]] = []
        #: ``f(stream, row, physical, counts)`` for every block written: ``physical`` is float
        #: (EMG uV (n, n_emg); angle: the first channel sign-corrected, (n, 1)), ``counts`` raw.
        self.block_listeners: list[Callable[[str, int, np.ndarray, np.ndarray], None]] = []

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> Recorder:
        """Open the link, identify/configure the device, create the files, start streaming."""
        from firmware_iface.client import DeviceClient

        self._check_paths()
        link = self._open_link(self.url)
        self.replay = bool(getattr(link, "replay", False))
        if self.replay:
            header = getattr(link, "header", {}) or {}
            self._host_unix_minus_host_s = header.get(
                "host_unix_minus_host_s", self._host_unix_minus_host_s
            )
            self.capture_enabled = False
            if not self.config and header.get("config"):
                # answer the recorded conversation: configure the way the live recording did
                self.config = {k: int(v) for k, v in header["config"].items()}
        try:
            if self.capture_enabled:
                self.capture = CaptureWriter(capture_path_for(self.path), overwrite=self.overwrite)
                self.capture.write_json(HEAD, self._header())
            self.link = CapturingLink(link, self.capture)
            self.client = DeviceClient(self.link, stim_key=self.stim_key)
            # STOP and drain first: a device may still stream for a host that vanished (a
            # replay ends at a STOP, so it only gets the session's leading 0x00)
            self.info = self.client.connect(stop_first=not self.replay)
            if self.config:
                self.info = self.client.configure(**self.config)
            self._create_writer()
            self.client.start()
        except BaseException:
            self._abort_open(link)
            raise
        self.stats.started_host_s = time.monotonic()
        self._emit("started", {"device": self.writer_device()})
        return self

    def _check_paths(self) -> None:
        """Refuse existing files (unless overwrite) before touching the device; make the folder."""
        if not self.overwrite:  # refuse before touching the device or creating anything
            for existing in (self.path, capture_path_for(self.path)):
                if existing.exists() and (existing == self.path or self.capture_enabled):
                    raise SessionFileError(
                        f"{existing} exists; choose another session name or --overwrite"
                    )
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _abort_open(self, link) -> None:
        with contextlib.suppress(Exception):
            link.close()
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close("recording")
        if self.capture is not None:
            with contextlib.suppress(Exception):
                self.capture.close()
            if self.writer is None:  # nothing was recorded: leave no stray capture behind
                self.capture.path.unlink(missing_ok=True)

    def _header(self) -> dict:
        return {
            "format": "tonuslab-capture",
            "url": self.url,
            "metadata": self.metadata,
            "config": self.config,
            "duration_s": self.duration_s,
            "session_file": self.path.name,
            "started_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "host_unix_minus_host_s": self._host_unix_minus_host_s,
            **self.header_extra,
        }

    def writer_device(self) -> dict:
        info = self.info
        return {
            "model": "tonuslab protocol v1 device",
            "device_id": info.serial,
            "firmware_version": ".".join(str(v) for v in info.fw_version),
            "hardware_version": ".".join(str(v) for v in info.hw_version),
            "protocol_version": f"{info.protocol_major}.{info.protocol_minor}",
            "emg_bits": int(info.config.emg_bits),
            "emg_gain": int(info.config.emg_gain),
            "has_stimulator": bool(info.has_stimulator),
        }

    def _stream_rates(self) -> dict[str, float]:
        """Sampling rate of each recorded stream, Hz (``"emg"``, and ``"angle"`` if any)."""
        info = self.info
        rates = {"emg": float(info.config.emg_rate_hz)}
        if any(c.kind == "angle" for c in info.channels):
            rates["angle"] = float(info.config.angle_rate_hz)
        return rates

    def _create_writer(self) -> None:
        info = self.info
        channels = [c.to_dict() for c in info.channels]
        self._rates = self._stream_rates()
        if self.duration_s is not None:
            self._max_rows = {s: math.ceil(self.duration_s * r) for s, r in self._rates.items()}
        self.writer = SessionWriter(
            self.path,
            channels=channels,
            emg_rate_hz=self._rates["emg"],
            angle_rate_hz=self._rates.get("angle"),
            metadata=self.metadata,
            device=self.writer_device(),
            overwrite=self.overwrite,
            min_free_bytes=self.min_free_bytes,
        )
        attrs = {"source_url": self.url}
        if self.capture is not None:
            attrs["capture_file"] = self.capture.path.name
            # write-ahead: the journal reaches the OS before the session file does
            self.writer.before_flush = self.capture.flush
            # On a full disk the file gets the reserve: the journal stops taking space first
            # (its records so far stay on disk; a sync thread flushing into the freed room made
            # HDF5's last writes fail, and HDF5 then crashed at interpreter exit).
            self.writer.on_disk_full = self.capture.suspend
        attrs.update(quarantined_frames=0, quarantine={})
        self.writer.set_attrs(**attrs)
        for stream in self._rates:
            chans = [c for c in channels if c["kind"] == stream]
            self._scaling[stream] = ChannelScaling.from_channels(chans)
        n_emg = self._scaling["emg"].n_channels
        self._emg_ring = _Ring(int(self._rates["emg"] * self.RECENT_EMG_S), n_emg)
        if "angle" in self._rates:
            self._angle_ring = _Ring(max(8, int(self._rates["angle"] * 2)), 1)

    def request_stop(self) -> None:
        """Ask the loop to stop (safe from a signal handler or another thread)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, on_tick: Callable[[RecorderStats], None] | None = None, tick_s=0.25) -> str:
        """Record until stopped, the duration is reached or the source ends; then close.

        Returns
        -------
        str
            The final state written to the file.
        """
        if self.writer is None:
            self.open()
        state = self.final_state
        last_tick = 0.0
        try:
            while not self._stop.is_set():
                if not self.step(0.05):
                    break
                now = time.monotonic()
                if on_tick is not None and now - last_tick >= tick_s:
                    last_tick = now
                    on_tick(self.stats)
        except AcquisitionError as exc:
            state = self.state_for_error(exc)
            raise
        finally:
            self.close(state)
        return state

    def state_for_error(self, exc: BaseException) -> str:
        """The final ``state`` of a session stopped by ``exc`` (lost link, full disk...)."""
        if isinstance(exc, LinkLostError):
            return "stopped_link_lost"
        if type(exc).__name__ == "DiskFullError":
            return "stopped_disk_full"
        if isinstance(exc, AcquisitionError):
            return self.final_state
        return "recording"

    def step(self, timeout_s: float = 0.05) -> bool:
        """One loop iteration; returns False when the recording is over."""
        from firmware_iface.errors import LinkClosed, ProtocolError

        try:
            items = self.client.read(timeout_s)
        except LinkClosed as exc:
            if self.replay and getattr(self.link.link, "exhausted", False):
                return False
            return self._link_lost(str(exc))
        arrival_override = self.link.last_arrival_s if self.replay else None
        if self.replay:  # host records that precede these bytes in the capture come first
            self._replay_host_events()
        for item in items:
            self._handle(item, arrival_override)
        self._take_quarantined(arrival_override)
        now = time.monotonic()
        if not self.replay and now - self._last_ping >= self.ping_interval_s:
            self._last_ping = now
            try:
                res = self.client.ping()
                self._fitter.add_ping(res.device_tx_us, res.host_send_s, res.host_recv_s)
            except LinkClosed as exc:
                return self._link_lost(str(exc))
            except ProtocolError as exc:
                log.debug("ping failed: %s", exc)
        if now - self._last_clock >= 1.0:
            self._last_clock = now
            self._update_clock()
        self.writer.maybe_flush()
        if self.capture is not None:
            self.capture.maybe_flush()
        self._update_stats(now)
        if self.duration_s is not None and self.stats.session_time_s >= self.duration_s:
            return False
        return True

    def _close_capture(self, state: str) -> None:
        """Close the wire capture; a clean recording's capture is deleted unless kept."""
        if self.capture is None:
            return
        try:
            self.capture.close()
        except AcquisitionError:
            if state == "complete":
                raise
        if not self.keep_capture and state == "complete":
            self.capture.path.unlink(missing_ok=True)

    def close(self, state: str | None = None) -> None:
        """Stop streaming, write the clock mapping, close the session file and the capture."""
        if self._closed:
            return
        self._closed = True
        state = state or self.final_state
        from firmware_iface.errors import ProtocolError

        writer_ok = self.writer is not None and not self.writer._closed
        disk_full = state == "stopped_disk_full"
        if disk_full and writer_ok:
            self.writer.make_room_for_closing()  # room for HDF5's last metadata, first of all
        if self.capture is not None and self.capture._error is not None and self.link is not None:
            self.link.capture = None  # the journal is dead (disk full): stop feeding it
        if self.client is not None and not self.replay and self.stats.link_up:
            try:
                self.client.stop()
                deadline = time.monotonic() + 0.3
                while time.monotonic() < deadline and writer_ok and not disk_full:
                    for item in self.client.read(0.05):
                        self._handle(item, None)
                    self._take_quarantined(None)
            except (ProtocolError, OSError, AcquisitionError):
                pass
        try:
            if writer_ok:
                if self.replay:  # host events captured after the last data chunk replayed
                    self._replay_host_events(to_the_end=True)
                self._update_clock(final=True)
                self.writer.close(state)
        finally:
            self._close_capture(state)
            if self.link is not None:
                with contextlib.suppress(Exception):
                    self.link.close()
        self._emit("closed", {"state": state})

    def __enter__(self) -> Recorder:
        if self.writer is None:
            self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(self.final_state if exc_type is None else "recording")

    # ------------------------------------------------------------------ host actions
    def latest_emg_index(self) -> int:
        """Device sample index of the newest EMG sample (-1 before the first)."""
        if "emg" not in self._origin:
            return -1
        return self._origin["emg"] + self.writer.n_samples("emg") - 1

    @property
    def emg_rate_hz(self) -> float:
        """EMG sampling rate, Hz (NaN before :meth:`open`)."""
        return self._rates.get("emg", float("nan"))

    @property
    def angle_rate_hz(self) -> float | None:
        """Angle sampling rate, Hz (None when the device streams no angle, or before
        :meth:`open`)."""
        return self._rates.get("angle")

    def recent_emg_uv(self, n_samples: int) -> np.ndarray:
        """Newest ``n_samples`` EMG samples in uV, (n, n_emg), oldest first."""
        with self._lock:
            return self._emg_ring.last(n_samples).copy()

    def emg_uv_between(self, first_index: int, stop_index: int) -> np.ndarray | None:
        """EMG of device samples ``[first_index, stop_index)`` in uV, (n, n_emg), read atomically.

        Returns None when the recent-EMG buffer (:attr:`RECENT_EMG_S`) does not hold the whole
        span: not received yet, or already overwritten. Unlike :meth:`latest_emg_index` followed by
        :meth:`recent_emg_uv`, no sample can arrive between the two reads.
        """
        with self._lock:
            latest = self.latest_emg_index()
            if self._emg_ring is None or stop_index <= first_index or stop_index - 1 > latest:
                return None
            n_back = latest - first_index + 1
            if n_back > min(self._emg_ring.total, self._emg_ring.buf.shape[0]):
                return None
            x = self._emg_ring.last(n_back)
            return x[: stop_index - first_index].copy()

    def recent_angle_deg(self, n_samples: int) -> np.ndarray:
        """Newest angle samples (sign-corrected first angle channel), oldest first."""
        if self._angle_ring is None:
            return np.empty(0)
        with self._lock:
            return self._angle_ring.last(n_samples)[:, 0].copy()

    def add_marker(self, label: str = "marker", **params) -> None:
        """A host marker at the newest EMG sample (the technician's key)."""
        self.add_host_event("marker", label=label, params=params)
        self.stats.markers += 1

    def prompt(self, kind: str, **params) -> None:
        """Send a prompt to the device (the examiner's cue) and record it as an event."""
        from firmware_iface.errors import ProtocolError

        if not self.replay:
            try:
                self.client.prompt(kind, **params)
            except ProtocolError as exc:
                log.warning("prompt not delivered: %s", exc)
                params = {**params, "delivered": False}
        self.add_host_event("prompt", label=kind, params=params)

    def add_host_event(self, kind: str, *, label: str = "", params: Mapping | None = None) -> None:
        """Record a host-side event (stored in the session and in the capture)."""
        with self._lock:
            row = self.writer.n_samples("emg") if "emg" in self._origin else -1
            ev = {
                "kind": kind,
                "label": label,
                "params": dict(params or {}),
                "emg_sample_index": row,
                "time_s": row / self._rates["emg"] if row >= 0 else float("nan"),
                "host_time_s": time.monotonic(),
            }
            if self.capture is not None:
                self.capture.write_json(EVENT, ev, ev["host_time_s"])
            self._write_host_event(ev)

    def _write_host_event(self, ev: dict) -> None:
        self.writer.add_event(
            ev["kind"],
            label=ev.get("label", ""),
            params=ev.get("params"),
            emg_sample_index=int(ev.get("emg_sample_index", -1)),
            time_s=float(ev.get("time_s", float("nan"))),
            host_time_s=float(ev.get("host_time_s", float("nan"))),
        )
        self._emit(ev["kind"], ev)

    def _replay_host_events(self, *, to_the_end: bool = False) -> None:
        replay_link = self.link.link
        events = replay_link.drain_host_events() if to_the_end else replay_link.take_host_events()
        for kind, _t, ev in events:
            if kind == EVENT:
                self._write_host_event(ev)
                if ev.get("kind") == "marker":
                    self.stats.markers += 1
            elif kind == LINK:
                self._apply_link_event(ev)

    # ------------------------------------------------------------------ data path
    def _handle(self, item, arrival_override: float | None) -> None:
        from firmware_iface.client import SampleBlock

        arrival = item.host_time_s if arrival_override is None else arrival_override
        if isinstance(item, SampleBlock):
            self._on_block(item, arrival)
        else:
            self._on_event(item, arrival)

    #: Event rows written for quarantined frames; beyond, they are only counted (attribute
    #: ``quarantine`` of the file), so a flood of bad frames cannot grow the file without bound.
    MAX_QUARANTINE_EVENTS = 1000
    #: A SAMPLES frame whose last sample the clock fit places this many seconds (or more) after
    #: its arrival is set aside (reason ``"time"``): it would have arrived before its samples
    #: were taken. Checked once the fit has :data:`CLOCK_CHECK_MIN_ANCHORS` anchors and runs in
    #: real time (drift within :data:`CLOCK_CHECK_MAX_DRIFT_PPM`; not the emulator's fast mode).
    CLOCK_CHECK_EARLY_S = 1.0
    CLOCK_CHECK_MIN_ANCHORS = 5
    CLOCK_CHECK_MAX_DRIFT_PPM = 1000.0

    def _take_quarantined(self, arrival_override: float | None) -> None:
        """Write the frames the client set aside since the last step (shape, index)."""
        cs = self.client.stats
        total = cs.quarantined_frames
        new = total - self._quarantine_seen
        if new <= 0:
            return
        self._quarantine_seen = total
        log_ = list(cs.quarantine_log)
        for record in log_[max(0, len(log_) - new) :]:
            self._quarantine(record, arrival_override)

    def _quarantine(self, record, arrival_override: float | None = None) -> None:
        """Count one implausible frame, and record it as a ``quarantine`` event (bounded)."""
        q = self.stats.quarantined
        q[record.reason] = q.get(record.reason, 0) + 1
        stream = STREAM_NAMES.get(int(record.stream), str(record.stream))
        data = {**record.to_dict(), "stream": stream}
        if arrival_override is not None:
            data["host_time_s"] = arrival_override
        with self._lock:
            if self._quarantine_events < self.MAX_QUARANTINE_EVENTS:
                self._quarantine_events += 1
                self.writer.add_event(
                    "quarantine",
                    label=record.reason,
                    device_time_us=int(record.device_time_us),
                    host_time_s=float(data["host_time_s"]),
                    params={k: v for k, v in data.items()
                            if k not in ("reason", "device_time_us", "host_time_s")},
                )  # fmt: skip
            self.writer.set_attrs(quarantined_frames=self.stats.quarantined_frames, quarantine=q)
        log.info("implausible %s frame set aside (%s): %s", stream, record.reason,
                    record.detail)  # fmt: skip
        self._emit("quarantine", data)

    def _time_problem(self, block, stream: str, arrival: float) -> str | None:
        """Whether the clock fit puts the block's last sample after its arrival (None: no).

        The fit is refreshed whenever the lower envelope gains an anchor (once per device
        second), from the arrivals of accepted frames only, so a live recording and its replay
        (recorded arrival times) decide alike.
        """
        if "emg" not in self._origin_time:
            return None
        n_windows = len(self._fitter._windows)
        if self._check_fit is None or self._check_fit[0] != n_windows:
            self._check_fit = (n_windows, self._fitter.fit(self._origin_time["emg"]))
        fit = self._check_fit[1]
        if (
            fit.get("method") != "lower-envelope"
            or fit.get("n_anchors", 0) < self.CLOCK_CHECK_MIN_ANCHORS
            or not abs(fit.get("drift_ppm", math.inf)) <= self.CLOCK_CHECK_MAX_DRIFT_PPM
            or "emg" not in self._origin_time
        ):
            return None
        latency = fit.get("one_way_latency_s", math.nan)
        intercept = fit["offset_s"] + (latency if math.isfinite(latency) else 0.0)
        last_us = block.device_time_us + round((block.n_samples - 1) * 1e6 / self._rates[stream])
        x = (last_us - self._origin_time["emg"]) * 1e-6
        predicted = intercept + (1.0 + fit["drift_ppm"] * 1e-6) * x
        early = predicted - arrival
        if early < self.CLOCK_CHECK_EARLY_S + fit.get("residual_max_s", 0.0):
            return None
        return f"arrived {early:.1f} s before its last sample was taken (clock fit)"

    def _on_block(self, block, arrival: float) -> None:
        stream = STREAM_NAMES.get(int(block.stream))
        if stream not in self._rates:
            return
        problem = self._time_problem(block, stream, arrival)
        if problem is not None:
            from firmware_iface.client import Quarantined

            record = Quarantined(
                "time", int(block.stream), int(block.first_index), block.n_samples,
                int(block.counts.shape[1]), int(block.device_time_us), arrival, problem,
            )  # fmt: skip
            self._quarantine(record)
            return
        with self._lock:
            if stream not in self._origin:
                self._set_origin(stream, block.first_index, block.device_time_us)
            row = block.first_index - self._origin[stream]
            counts = block.counts
            if self._max_rows is not None:  # --duration: keep exactly the requested span
                room = self._max_rows[stream] - row
                if room <= 0:
                    return
                counts = counts[:room]
            end = self.writer.n_samples(stream)
            if row < end:  # overlap with what we have (a resent or reordered block)
                skip = end - row
                self._duplicates += min(skip, counts.shape[0])
                if skip >= counts.shape[0]:
                    return
                counts = counts[skip:]
                row = end
            if row > end:
                self.stats.gap_samples[stream] += row - end
                self._emit("gap", {"stream": stream, "start_index": end, "n_samples": row - end})
                # the recent-signal rings stay aligned with device sample numbers: NaN for the gap
                ring = self._emg_ring if stream == "emg" else self._angle_ring
                if ring is not None:
                    n_fill = min(row - end, ring.buf.shape[0])
                    ring.push(np.full((n_fill, ring.buf.shape[1]), np.nan))
            self.writer.append(
                stream, counts, start_index=row, gap_reason=self._gap_reason[stream],
                host_time_s=arrival,
            )  # fmt: skip
            self._gap_reason[stream] = "sequence"
            n = counts.shape[0]
            self.stats.samples[stream] += n
            rate = self._rates[stream]
            last_us = block.device_time_us + round((block.n_samples - 1) * 1e6 / rate)
            self._fitter.add_arrival(last_us, arrival)
            phys = self._scaling[stream].to_physical(counts)
            if stream == "emg":
                self._emg_ring.push(phys)
            else:
                sign = int(self.metadata.get("stretch_direction_sign", 1))
                phys = sign * phys[:, :1]
                self._angle_ring.push(phys)
        for fn in self.block_listeners:
            fn(stream, row, phys, counts)

    def _set_origin(self, stream: str, first_index: int, device_time_us: int) -> None:
        self._origin[stream] = int(first_index)
        self._origin_time[stream] = int(device_time_us)
        # EMG row 0 defines session time 0; give every known stream its t0 against it
        for name in ("emg", "angle"):
            if name in self._origin:
                kwargs = {}
                if "emg" not in self._origin:
                    kwargs["t0_s"] = 0.0
                self.writer.set_stream_origin(
                    name,
                    first_device_sample=self._origin[name],
                    device_time_us_row0=self._origin_time[name],
                    **kwargs,
                )

    def _on_event(self, ev, arrival: float) -> None:
        kind = ev.kind
        emg_row = -1
        if ev.emg_sample_index is not None and "emg" in self._origin:
            emg_row = int(ev.emg_sample_index) - self._origin["emg"]
        msg = ev.message
        with self._lock:
            if kind == "stim":
                self.writer.add_event(
                    "stimulus",
                    emg_sample_index=emg_row,
                    device_time_us=int(ev.device_time_us),
                    host_time_s=arrival,
                    intensity_ma=msg.intensity_ma,
                    width_us=msg.width_us,
                    pulse_index=msg.pulse_index,
                    params={"pulse_count": msg.pulse_count, "counter": msg.counter},
                )
                self.stats.stimuli += 1
                self._emit(
                    "stimulus", {"emg_sample_index": emg_row, "intensity_ma": msg.intensity_ma}
                )
            elif kind == "marker":
                self.writer.add_event(
                    "marker",
                    emg_sample_index=emg_row,
                    device_time_us=int(ev.device_time_us),
                    host_time_s=arrival,
                    label=f"device marker {msg.marker_id}",
                    params={"marker_id": msg.marker_id, "value": msg.value},
                )
                self.stats.markers += 1
            elif kind == "watchdog":  # the device stopped a pair/train: no host heartbeat
                self.writer.add_event(
                    "note",
                    device_time_us=int(ev.device_time_us),
                    host_time_s=arrival,
                    label="stimulation_watchdog",
                    params={"text": msg.text, "stimulate_seq": msg.acked_seq},
                )
                self.stats.watchdog_stops += 1
                self._emit("watchdog", {"text": msg.text})
            elif kind == "status":
                self.stats.battery_pct = int(msg.battery_pct)
                key = (msg.battery_pct, msg.overruns, msg.dropped_samples, msg.state)
                if key != self._status_seen:
                    self._status_seen = key
                    t = float("nan")
                    if "emg" in self._origin_time:
                        t = (int(ev.device_time_us) - self._origin_time["emg"]) / 1e6
                    self.writer.add_event(
                        "status",
                        time_s=t,
                        device_time_us=int(ev.device_time_us),
                        host_time_s=arrival,
                        label="status",
                        params={
                            "battery_pct": msg.battery_pct,
                            "battery_mv": msg.battery_mv,
                            "temperature_c": msg.temperature_c,
                            "overruns": msg.overruns,
                            "dropped_samples": msg.dropped_samples,
                            "state": msg.state,
                        },
                    )

    # ------------------------------------------------------------------ link loss
    def _link_lost(self, reason: str) -> bool:
        self.stats.link_up = False
        self.stats.link_losses += 1
        lost_at = time.monotonic()
        self._log_link({"event": "lost", "reason": reason}, lost_at)
        self.writer.flush()  # everything received so far is on disk before we wait
        if self.capture is not None:
            self.capture.flush()
        log.warning("link lost: %s", reason)
        if not self.reconnect:
            raise LinkLostError(
                f"link to {self.url} lost ({reason}); data up to now is saved "
                "(use --reconnect to wait for the device to come back)"
            )
        from firmware_iface.client import DeviceClient
        from firmware_iface.errors import CommandRejected, ProtocolError

        with contextlib.suppress(Exception):
            self.link.close()
        delay = 0.1
        while not self._stop.is_set():
            if time.monotonic() - lost_at > self.reconnect_timeout_s:
                raise LinkLostError(
                    f"link to {self.url} lost ({reason}) and not back within "
                    f"{self.reconnect_timeout_s:g} s; data up to the loss is saved"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
            try:
                link = self._open_link(self.url)
            except AcquisitionError:
                continue
            self.link = CapturingLink(link, self.capture)
            client = DeviceClient(self.link, stim_key=self.stim_key)
            try:
                info = client.connect()
                if info.serial != self.info.serial:
                    raise SourceError(
                        f"a different device ({info.serial}) answered at {self.url}; "
                        f"expected {self.info.serial}"
                    )
                with contextlib.suppress(CommandRejected):
                    client.start()
            except SourceError:
                raise
            except ProtocolError:
                with contextlib.suppress(Exception):
                    self.link.close()
                continue
            self.client = client
            self._quarantine_seen = 0
            self.stats.link_up = True
            self._log_link({"event": "restored", "down_s": time.monotonic() - lost_at}, None)
            log.warning("link restored after %.1f s", time.monotonic() - lost_at)
            return True
        return False

    def _log_link(self, ev: dict, t: float | None) -> None:
        t = time.monotonic() if t is None else t
        if self.capture is not None:
            self.capture.write_json(LINK, ev, t)
        self._apply_link_event({**ev, "host_time_s": t})

    def _apply_link_event(self, ev: dict) -> None:
        if ev.get("event") == "lost":
            self._gap_reason = {"emg": "link_lost", "angle": "link_lost"}
        row = self.writer.n_samples("emg") if "emg" in self._origin else -1
        self.writer.add_event(
            "link",
            label=str(ev.get("event", "")),
            emg_sample_index=row,
            time_s=row / self._rates["emg"] if row >= 0 else float("nan"),
            host_time_s=float(ev.get("host_time_s", float("nan"))),
            params={k: v for k, v in ev.items() if k not in ("event", "host_time_s")},
        )
        self._emit("link", ev)

    # ------------------------------------------------------------------ clock and stats
    #: Seconds between writes of the clock mapping to the file while recording (the fit itself
    #: is refreshed every second for the live view; the last one is always written at close).
    #: Rewriting HDF5 attributes and a growing dataset every second grew the writer's memory.
    CLOCK_WRITE_INTERVAL_S = 10.0
    #: Seconds between refreshes of the live figures in :attr:`stats` (achieved rates, EMG
    #: levels, angle and velocity); counters and session time are updated at every step. The
    #: refresh at every step (about 200 a second) cost 6 % of a core.
    STATS_INTERVAL_S = 0.1
    #: Seconds of device time held for :meth:`recent_emg_uv` / :meth:`emg_uv_between` (the
    #: H-reflex gate and quick measures; 10 s: 6.4 MB at 16 channels x 5 kHz). A reader that
    #: falls further behind (a starved thread while the emulator runs fast) gets None.
    RECENT_EMG_S = 10.0

    def _update_clock(self, *, final: bool = False) -> None:
        if self.writer is None or "emg" not in self._origin_time:
            return
        if self.replay:
            self._fitter._pings = []
            self._fitter._rtts = []
            for dev_us, sent, recv in self.link.link.recorded_pings():
                self._fitter.add_ping(dev_us, sent, recv)
        fit = self._fitter.fit(self._origin_time["emg"])
        fit["host_unix_minus_host_s"] = self._host_unix_minus_host_s
        self.stats.clock = fit
        now = time.monotonic()
        if final or now - self._last_clock_write >= self.CLOCK_WRITE_INTERVAL_S:
            self._last_clock_write = now
            self.writer.set_clock(fit, anchors=self._fitter.anchors(), pings=self._fitter.pings())

    def _update_stats(self, now: float) -> None:
        s = self.stats
        s.elapsed_s = now - s.started_host_s
        if "emg" in self._origin:
            s.rows["emg"] = self.writer.n_samples("emg")
            s.session_time_s = s.rows["emg"] / self._rates["emg"]
        if "angle" in self._origin:
            s.rows["angle"] = self.writer.n_samples("angle")
        if now - self._last_stats_s < self.STATS_INTERVAL_S:
            return  # the live figures below are refreshed at most ten times a second
        self._last_stats_s = now
        # achieved rates over the last ~2 s (a dropout shows at once, not diluted by the past)
        hist = self._rate_history
        hist.append((now, dict(s.samples)))
        while len(hist) > 2 and now - hist[1][0] >= 2.0:
            hist.popleft()
        t_old, n_old = hist[0]
        span = now - t_old
        for stream in self._rates:
            if span > 0.2:
                s.rate_hz[stream] = (s.samples[stream] - n_old.get(stream, 0)) / span
            elif s.elapsed_s > 0:
                s.rate_hz[stream] = s.samples[stream] / s.elapsed_s
        if self.client is not None:
            cs = self.client.stats
            s.lost_packets = int(cs.lost_frames)
            s.decode_errors = int(self.client.decoder.stats.errors)
        with self._lock:
            n = max(1, int(self._rates["emg"] * 0.2))
            recent = self._emg_ring.last(n)
            if recent.shape[0]:
                centred = recent - np.nanmean(recent, axis=0)
                s.emg_level_uv = np.sqrt(np.nanmean(centred**2, axis=0)).tolist()
            if self._angle_ring is not None and self._angle_ring.total >= 2:
                rate = self._rates["angle"]
                k = max(2, int(rate * 0.05))
                a = self._angle_ring.last(k)[:, 0]
                s.angle_deg = float(a[-1])
                s.velocity_deg_s = float((a[-1] - a[0]) * rate / (len(a) - 1))

    def _emit(self, kind: str, data: dict) -> None:
        for fn in list(self.listeners):
            try:
                fn(kind, data)
            except Exception:  # a view must never break the recording
                log.exception("listener failed")


def _is_source_target(url) -> bool:
    """True for a foreign-source URL (``lsl://``) or a replay of a foreign source's capture."""
    if not isinstance(url, str):
        return False
    from acquire.sources import is_source_url

    if is_source_url(url):
        return True
    if not url.startswith("replay://"):
        return False
    from acquire.capture import capture_header
    from acquire.replay import parse_replay_url

    try:
        path, _speed = parse_replay_url(url)
        return bool(capture_header(path).get("source_scheme"))
    except (AcquisitionError, OSError, ValueError):
        return False


def replay_capture(
    capture,
    path,
    *,
    speed: float | None = None,
    overwrite: bool = False,
    state: str = "complete",
    on_tick: Callable[[RecorderStats], None] | None = None,
) -> pathlib.Path:
    """Rebuild a session file from a wire capture (same decode path as the live recorder).

    Parameters
    ----------
    capture : path-like
        The ``.capture`` file.
    path : path-like
        Session file to write.
    speed : float or None
        None: as fast as possible; 1.0: the recorded pace.
    state : str
        Final ``state`` of the file (``"recovered"`` for ``tonuslab recover``).

    Returns
    -------
    pathlib.Path
    """
    from acquire.capture import capture_header

    capture = pathlib.Path(capture)
    header = capture_header(capture)
    query = "" if speed is None else f"?speed={speed:g}"
    url = f"replay://{capture.resolve()}{query}"
    rec = Recorder(
        url,
        path,
        metadata=header.get("metadata"),
        config=header.get("config"),
        duration_s=header.get("duration_s"),
        capture=False,
        overwrite=overwrite,
        final_state=state,
    )
    rec.open()
    rec.writer.set_attrs(source_url=str(header.get("url", "")), replayed_from=capture.name)
    rec.run(on_tick=on_tick)
    return pathlib.Path(path)


def format_rate(v: float) -> str:
    return "-" if not math.isfinite(v) else f"{v:,.0f}"
