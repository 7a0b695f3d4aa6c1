"""The host side of protocol v1: :class:`DeviceClient` over any ``ByteLink``.

One client serves one device. Commands (``identify``, ``configure``, ``start``, ``stop``, ``ping``,
``set_time``, ``calibrate``, ``stimulate``, ``status``, ``prompt``) block until the device's ACK
and return its decoded reply; an ERROR reply raises :class:`CommandRejected`, no reply within
``command_timeout_s`` (after ``retries`` resends for idempotent commands) raises
:class:`CommandTimeout`. ``read()`` returns streamed items in arrival order: :class:`SampleBlock`
(counts as NumPy arrays) and :class:`DeviceEvent` (stimulus pulses, markers, status).

Thread safety: any thread may send commands while another calls ``read()``; whichever thread
holds the receive lock decodes for everyone.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import struct
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from firmware_iface import auth
from firmware_iface.codec import PROTOCOL_MAJOR, StreamDecoder, Unwrapper, encode_frame
from firmware_iface.errors import (
    CommandRejected,
    CommandTimeout,
    LinkClosed,
    MalformedMessage,
    ProtocolError,
    StimulationRefused,
    VersionMismatch,
)
from firmware_iface.messages import (
    HEARTBEAT_INTERVAL_S,
    MAX_STIM_VALIDITY_US,
    PING,
    SET_TIME,
    Ack,
    Calibrate,
    CalibrationReply,
    ChannelInfo,
    Config,
    DeviceInfo,
    ErrorCode,
    ErrorReply,
    Marker,
    MsgType,
    PingReply,
    Samples,
    Status,
    StimEvent,
    StimLimits,
    StimMode,
    Stimulate,
    Stream,
    pack_prompt,
)
from firmware_iface.scaling import ChannelScaling

#: What ``_wait_reply`` returns when a frame of another protocol major arrived instead of a reply.
_FOREIGN_MAJOR = object()
_IDEMPOTENT = {MsgType.IDENTIFY, MsgType.PING, MsgType.GET_STATUS, MsgType.START, MsgType.STOP}
_MOD32 = 1 << 32


def _near(raw: int, reference: int) -> int:
    """Unwrap a 32-bit value to the integer closest to ``reference``."""
    step = (int(raw) - reference) % _MOD32
    if step >= _MOD32 // 2:
        step -= _MOD32
    return reference + step


@dataclass(frozen=True)
class SampleBlock:
    """Consecutive samples of one stream.

    Attributes
    ----------
    stream : int
        :class:`~firmware_iface.messages.Stream` (0 EMG, 1 goniometer).
    first_index : int
        Device sample number of ``counts[0]`` (unwrapped; counts from 0 at CONFIGURE).
    counts : numpy.ndarray
        int32 ``(n_samples, n_channels)`` raw counts; physical = ``(counts - offset) * scale``.
    device_time_us : int
        Device time of the first sample (unwrapped microseconds).
    host_time_s : float
        ``time.monotonic()`` when the frame was decoded (arrival, never a sample time).
    gap_before : int
        Samples of this stream missing between the previous block and this one (0 normally).
    """

    stream: int
    first_index: int
    counts: np.ndarray
    device_time_us: int
    host_time_s: float
    gap_before: int = 0

    @property
    def n_samples(self) -> int:
        return self.counts.shape[0]

    @property
    def end_index(self) -> int:
        """One past the last sample's index."""
        return self.first_index + self.counts.shape[0]


@dataclass(frozen=True)
class DeviceEvent:
    """A stimulus pulse (``kind="stim"``), a marker (``"marker"``), a status (``"status"``) or
    a pair/train stopped by the device's watchdog (``"watchdog"``, PROTOCOL.md 8.4).

    ``emg_sample_index`` and ``device_time_us`` are unwrapped (None for status and watchdog);
    ``message`` is the decoded :class:`StimEvent`, :class:`Marker`, :class:`Status` or, for
    ``"watchdog"``, the device's ``HEARTBEAT_LOST`` :class:`ErrorReply` (``acked_seq`` the
    STIMULATE's, ``text`` how many pulses were delivered).
    """

    kind: str
    message: StimEvent | Marker | Status | ErrorReply
    device_time_us: int
    emg_sample_index: int | None
    host_time_s: float


@dataclass(frozen=True)
class PingResult:
    """One round trip: host send/receive times (monotonic s), the device clock at receipt and
    at reply and the device's uptime clock at receipt (us; see :class:`PingReply`)."""

    host_send_s: float
    host_recv_s: float
    device_rx_us: int
    device_tx_us: int
    uptime_us: int

    @property
    def rtt_s(self) -> float:
        return self.host_recv_s - self.host_send_s

    @property
    def offset_us(self) -> float:
        """Device clock minus host clock at the midpoint of the round trip, in microseconds."""
        device_mid = 0.5 * (self.device_rx_us + self.device_tx_us)
        return device_mid - 0.5 * (self.host_send_s + self.host_recv_s) * 1e6

    def uptime_at(self, host_time_s: float) -> float:
        """The device's uptime (us) at host monotonic time ``host_time_s``, from this round trip
        (uncertain by half the round trip, plus the clocks' drift since)."""
        return self.uptime_us + (host_time_s - 0.5 * (self.host_send_s + self.host_recv_s)) * 1e6


@dataclass(frozen=True)
class StimAccepted:
    """The device accepted a stimulation: its counter and the EMG index of the first pulse."""

    counter: int
    first_emg_index: int


#: Default validity of a STIMULATE: its deadline is this far ahead of the device's uptime.
STIM_VALIDITY_S = 0.5
#: A clock synchronisation (PING) older than this is renewed before signing a STIMULATE.
CLOCK_SYNC_MAX_AGE_S = 10.0
#: Gap records kept in memory per stream by :class:`ClientStats` (the totals stay exact).
MAX_GAP_RECORDS = 1024


@dataclass(frozen=True)
class Quarantined:
    """A SAMPLES frame that passed the CRC but contradicts the stream, set aside unused.

    Attributes
    ----------
    reason : str
        ``"shape"`` (stream, channel count or sample width contradicts CONFIGURE),
        ``"index"`` (sample number and header time disagree with the stream's line
        ``t = t0 + index / rate``: e.g. an index jump far beyond any loss) or ``"time"``
        (set aside by the recorder: the frame's time contradicts the clock fit, it would have
        arrived before its samples were taken).
    stream : int
        Stream number as the frame claims it.
    first_index : int
        Sample number as the frame claims it (unwrapped near the expected one).
    n_samples, n_channels : int
        The frame's shape.
    device_time_us : int
        Header time (unwrapped).
    host_time_s : float
        Arrival (``time.monotonic()``).
    detail : str
        One line: what contradicted what.
    """

    reason: str
    stream: int
    first_index: int
    n_samples: int
    n_channels: int
    device_time_us: int
    host_time_s: float
    detail: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: Consecutive frames that agree with each other but not with a stream's line after which the
#: line is taken to have moved (an unannounced SET_TIME, a device restarted on the same link);
#: those frames stay quarantined, the following ones are accepted.
LINE_REANCHOR_FRAMES = 3
#: Tolerance of the index/time line check: this many microseconds plus
#: :data:`LINE_TOLERANCE_PPM` of the time since the line's anchor (the spec asks header times
#: within 100 ppm of the configured rate; ten times that is allowed here).
LINE_TOLERANCE_US = 2000
LINE_TOLERANCE_PPM = 1000.0


@dataclass
class ClientStats:
    """What the client has received and lost.

    ``lost_frames`` counts device sequence-number gaps; ``version_errors`` the frames of another
    protocol major (never interpreted; ``foreign_version`` is the last such version byte);
    ``gaps[stream]`` lists the latest
    :data:`MAX_GAP_RECORDS` gaps as ``(first_missing_index, n_missing)`` (the recorder writes
    every gap to the session file as it happens; memory stays bounded over long, lossy links);
    ``missing(stream)`` is the exact total; ``samples[stream]`` counts received samples;
    ``quarantined`` counts the SAMPLES frames set aside as implausible by reason, and
    ``quarantine_log`` holds the latest :data:`MAX_GAP_RECORDS` of them (:class:`Quarantined`).
    """

    frames: int = 0
    lost_frames: int = 0
    unknown_frames: int = 0
    version_errors: int = 0
    foreign_version: int | None = None
    malformed: int = 0
    stray_replies: int = 0
    device_frame_errors: int = 0
    queue_overflows: int = 0
    heartbeat_stops: int = 0
    samples: dict = field(default_factory=lambda: {0: 0, 1: 0})
    gaps: dict = field(
        default_factory=lambda: {
            0: collections.deque(maxlen=MAX_GAP_RECORDS),
            1: collections.deque(maxlen=MAX_GAP_RECORDS),
        }
    )
    missing_samples: dict = field(default_factory=lambda: {0: 0, 1: 0})
    quarantined: dict = field(default_factory=dict)
    quarantine_log: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=MAX_GAP_RECORDS)
    )

    @property
    def quarantined_frames(self) -> int:
        """SAMPLES frames set aside as implausible (all reasons; see :class:`Quarantined`)."""
        return sum(self.quarantined.values())

    def quarantine(self, record: Quarantined) -> None:
        """Count a frame set aside (the log keeps the latest ones, the counts are exact)."""
        self.quarantined[record.reason] = self.quarantined.get(record.reason, 0) + 1
        self.quarantine_log.append(record)

    def missing(self, stream: int) -> int:
        """Samples of ``stream`` missing so far (exact, whatever the number of gaps)."""
        return self.missing_samples.get(stream, 0)

    def add_gap(self, stream: int, first_missing: int, n_missing: int) -> None:
        """Record a gap (the list keeps the latest ones, the total is exact)."""
        self.gaps.setdefault(stream, collections.deque(maxlen=MAX_GAP_RECORDS)).append(
            (first_missing, n_missing)
        )
        self.missing_samples[stream] = self.missing_samples.get(stream, 0) + n_missing


class DeviceClient:
    """Protocol v1 host over a byte link.

    Parameters
    ----------
    link : ByteLink
        Transport (see :func:`acquire.links.open_link`).
    stim_key : bytes, optional
        The 32-byte key shared with the device at pairing; without it ``stimulate`` refuses.
    command_timeout_s : float
        How long to wait for each ACK/ERROR.
    retries : int
        Resends of idempotent commands (identify, ping, status, start, stop) after a timeout.
    host_limits : StimLimits
        Stimulation limits the host enforces on top of the device's own.
    max_queued : int
        Streamed items kept for ``read()``; older ones are dropped (``stats.queue_overflows``).
    stim_validity_s : float
        How long a STIMULATE stays valid: its signed deadline (``not_after_us``, on the
        device's uptime clock, from the latest PING) is this far ahead; a command delayed
        longer on the link is refused by the device (``EXPIRED``). 0 < value <= 10.

    Raises
    ------
    ValueError
        ``stim_validity_s`` outside (0, 10] seconds.
    """

    def __init__(
        self,
        link,
        *,
        stim_key: bytes | None = None,
        command_timeout_s: float = 1.0,
        retries: int = 1,
        host_limits: StimLimits | None = None,
        max_queued: int = 200_000,
        stim_validity_s: float = STIM_VALIDITY_S,
    ):
        if not 0 < stim_validity_s <= MAX_STIM_VALIDITY_US * 1e-6:
            raise ValueError(
                f"stim_validity_s must be in (0, {MAX_STIM_VALIDITY_US * 1e-6:g}] s, "
                f"got {stim_validity_s!r}"
            )
        self.stim_validity_s = float(stim_validity_s)
        self.link = link
        self.stim_key = stim_key
        self.command_timeout_s = float(command_timeout_s)
        self.retries = int(retries)
        self.host_limits = host_limits or StimLimits()
        self.max_queued = max_queued
        self.decoder = StreamDecoder()
        self.stats = ClientStats()
        self.info: DeviceInfo | None = None
        self._seq = itertools.count(1)
        self._write_lock = threading.Lock()
        self._rx_lock = threading.Lock()
        self._cond = threading.Condition()
        self._pending: dict[int, Ack | ErrorReply | None] = {}
        self._queue: collections.deque = collections.deque()
        self._first_write = True
        self._expected_seq: int | None = None
        self._time = Unwrapper(32)
        self._index = {int(Stream.EMG): Unwrapper(32), int(Stream.ANGLE): Unwrapper(32)}
        self._next_index: dict[int, int] = {}
        # per stream: (index, device time) of an accepted frame, the line t = t0 + i / rate
        # that every later frame of the configuration must lie on (PROTOCOL.md 4.6, 6)
        self._line: dict[int, tuple[int, int]] = {}
        self._line_candidates: dict[int, list[tuple[int, int]]] = {}
        self._last_emg_index = 0
        self._stim_counter = 0
        self._stim_lock = threading.Lock()
        self._sync: PingResult | None = None  # the latest round trip (clock synchronisation)
        self._config_number = 0  # +1 whenever the sample numbers restart (CONFIGURE)
        # the last pulse the device accepted: (config number, EMG index, host time estimate)
        self._last_pulse: tuple[int, int, float] | None = None
        self._closed_error: LinkClosed | None = None
        # host-alive heartbeat while a pair or train runs (PROTOCOL.md 8.4)
        self._heartbeat_until = 0.0  # host monotonic time the last accepted pulse is due by
        self._heartbeat_thread: threading.Thread | None = None
        self._heartbeat_wake = threading.Event()
        self._closing = False

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self._closing = True
        self._heartbeat_wake.set()
        self.link.close()
        thread = self._heartbeat_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)

    # ------------------------------------------------------------------ heartbeat
    def _keep_alive_until(self, host_time_s: float) -> None:
        """Send the heartbeat (PING every :data:`HEARTBEAT_INTERVAL_S`) until ``host_time_s``."""
        with self._stim_lock:
            self._heartbeat_until = max(self._heartbeat_until, host_time_s)
            thread = self._heartbeat_thread
            if thread is None or not thread.is_alive():
                self._heartbeat_wake.clear()
                thread = threading.Thread(
                    target=self._heartbeat, name="tonuslab-heartbeat", daemon=True
                )
                self._heartbeat_thread = thread
                thread.start()

    def _heartbeat(self) -> None:
        """The heartbeat thread: any intact frame keeps a pair or train going on the device;
        PING is idempotent and cheap. A frozen host process freezes this thread too, so the
        device's watchdog stops the train (that is the point)."""
        while not self._closing:
            with self._stim_lock:
                if time.monotonic() > self._heartbeat_until:
                    self._heartbeat_thread = None
                    return
            try:
                self.command(MsgType.PING, PING.pack(next(self._seq) & 0xFFFFFFFF), retries=0)
            except LinkClosed:
                return
            except ProtocolError:  # a lost reply: the frame still reached the device, or not
                pass
            self._heartbeat_wake.wait(HEARTBEAT_INTERVAL_S)

    def end_heartbeat(self, timeout_s: float = 2.0) -> None:
        """Stop the heartbeat now (a pair or train still running on the device then stops
        within the device's heartbeat timeout); waits up to ``timeout_s`` for the thread."""
        with self._stim_lock:
            self._heartbeat_until = 0.0
            thread = self._heartbeat_thread
        self._heartbeat_wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        self._heartbeat_wake.clear()

    @property
    def heartbeat_active(self) -> bool:
        """Whether the heartbeat thread is running (a pair or train is under way)."""
        thread = self._heartbeat_thread
        return thread is not None and thread.is_alive()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ sending
    def _write(self, data: bytes) -> None:
        with self._write_lock:
            if self._first_write:
                data = b"\x00" + data  # flush any partial frame the device may hold
                self._first_write = False
            self.link.write(data)

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (for conformance tests and fault injection)."""
        self._write(data)

    def command(
        self,
        msg_type: int,
        payload: bytes = b"",
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
        version: int | None = None,
    ) -> bytes:
        """Send one command and wait for its reply; returns the ACK body.

        Raises
        ------
        CommandRejected
            The device answered with an ERROR (``.code`` holds the error code).
        CommandTimeout
            No answer within ``timeout_s`` (per attempt).
        VersionMismatch
            A frame of another protocol major version arrived while waiting for the reply.
        LinkClosed
            The link went away.
        """
        timeout_s = self.command_timeout_s if timeout_s is None else timeout_s
        if retries is None:
            retries = self.retries if msg_type in _IDEMPOTENT else 0
        name = _type_name(msg_type)
        unknown_before = self.stats.unknown_frames
        errors_before = self.decoder.stats.errors
        for _attempt in range(retries + 1):
            seq = next(self._seq) & 0xFFFF
            with self._cond:
                self._pending[seq] = None
            kwargs = {} if version is None else {"version": version}
            versions_before = self.stats.version_errors
            self._write(encode_frame(msg_type, seq, 0, payload, **kwargs))
            reply = self._wait_reply(seq, timeout_s, versions_before)
            if reply is _FOREIGN_MAJOR:
                # PROTOCOL.md section 3: frames of another major are never interpreted; the
                # host stops and tells the user to upgrade instead of waiting for a timeout
                seen = self.stats.foreign_version or 0
                raise VersionMismatch(
                    f"device answered {name} in protocol {seen >> 4}.{seen & 0x0F} frames; this "
                    f"tonuslab supports {PROTOCOL_MAJOR}.x: upgrade tonuslab"
                )
            if reply is None:
                continue
            if isinstance(reply, ErrorReply):
                raise CommandRejected(
                    f"device refused {name}: {reply.code_name}"
                    + (f" ({reply.text})" if reply.text else ""),
                    reply.code,
                )
            return reply.body
        unknown = self.stats.unknown_frames - unknown_before
        garbled = self.decoder.stats.errors - errors_before
        if unknown:  # it talks, but not protocol v1 as we know it
            heard = f"; it sent {unknown} frame(s) of an unknown message type instead"
        elif garbled:
            heard = f"; it sent {garbled} undecodable frame(s): check the baud rate and the port"
        else:
            heard = "; check that it is on and connected"
        raise CommandTimeout(
            f"device did not answer {name} within {timeout_s:g} s"
            f"{f' ({retries + 1} attempts)' if retries else ''}{heard}, "
            "then run 'tonuslab conformance URL'"
        )

    def _wait_reply(self, seq: int, timeout_s: float, versions_before: int):
        """The reply to ``seq``; None on timeout, :data:`_FOREIGN_MAJOR` when a frame of
        another major version arrived meanwhile (and no reply)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._cond:
                reply = self._pending.get(seq)
                if reply is not None:
                    del self._pending[seq]
                    return reply
                if self.stats.version_errors > versions_before:
                    self._pending.pop(seq, None)
                    return _FOREIGN_MAJOR
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                with self._cond:
                    self._pending.pop(seq, None)
                return None
            if self._rx_lock.acquire(blocking=False):
                try:
                    self._pump(min(0.05, remaining))
                finally:
                    self._rx_lock.release()
            else:
                with self._cond:
                    if self._pending.get(seq) is None:
                        self._cond.wait(min(0.01, remaining))

    # ------------------------------------------------------------------ receiving
    def _pump(self, timeout_s: float) -> bool:
        """Read and dispatch what the link has (waiting up to ``timeout_s``); True if any."""
        if self._closed_error is not None:
            raise self._closed_error
        try:
            data = self.link.read(65536, timeout_s)
        except LinkClosed as exc:
            self._closed_error = exc
            with self._cond:
                self._cond.notify_all()
            raise
        if not data:
            return False
        now = time.monotonic()
        items = []
        for frame in self.decoder.feed(data):
            item = self._dispatch(frame, now)
            if item is not None:
                items.append(item)
        with self._cond:
            if items:
                self._queue.extend(items)
                excess = len(self._queue) - self.max_queued
                for _ in range(max(0, excess)):
                    self._queue.popleft()
                    self.stats.queue_overflows += 1
            self._cond.notify_all()
        return True

    def _catch_up(self, max_reads: int = 64) -> None:
        """Dispatch what has already arrived, without waiting (unless another thread reads)."""
        if self._rx_lock.acquire(blocking=False):
            try:
                for _ in range(max_reads):
                    if not self._pump(0.0):
                        break
            finally:
                self._rx_lock.release()

    def _dispatch(self, frame, now: float):
        stats = self.stats
        if frame.major != PROTOCOL_MAJOR:
            stats.version_errors += 1
            stats.foreign_version = frame.version
            return None
        stats.frames += 1
        if self._expected_seq is not None and frame.seq != self._expected_seq:
            stats.lost_frames += (frame.seq - self._expected_seq) & 0xFFFF
        self._expected_seq = (frame.seq + 1) & 0xFFFF
        unwrapped_before = (self._time._last, self._time._value)
        time_us = self._time(frame.time_us)
        typ = frame.msg_type
        try:
            if typ == MsgType.SAMPLES:
                block = self._on_samples(Samples.unpack(frame.payload), time_us, now)
                if block is None:  # set aside: its time must not move the unwrapping either
                    self._time._last, self._time._value = unwrapped_before
                return block
            if typ in (MsgType.ACK, MsgType.ERROR):
                cls = Ack if typ == MsgType.ACK else ErrorReply
                reply = cls.unpack(frame.payload)
                if typ == MsgType.ERROR and reply.code == ErrorCode.FRAME_ERROR:
                    stats.device_frame_errors += 1
                    return None
                if typ == MsgType.ERROR and reply.code == ErrorCode.HEARTBEAT_LOST:
                    # the device's stimulation watchdog stopped a pair or train (8.4): it
                    # answers no command, it is an event of the stream
                    stats.heartbeat_stops += 1
                    return DeviceEvent("watchdog", reply, time_us, None, now)
                with self._cond:
                    if reply.acked_seq in self._pending:
                        self._pending[reply.acked_seq] = reply
                    else:
                        stats.stray_replies += 1
                return None
            if typ == MsgType.STIM_EVENT:
                ev = StimEvent.unpack(frame.payload)
                index = _near(ev.emg_sample_index, self._last_emg_index)
                return DeviceEvent("stim", ev, _near(ev.device_time_us, time_us), index, now)
            if typ == MsgType.MARKER:
                mk = Marker.unpack(frame.payload)
                index = _near(mk.emg_sample_index, self._last_emg_index)
                return DeviceEvent("marker", mk, _near(mk.device_time_us, time_us), index, now)
            if typ == MsgType.STATUS:
                return DeviceEvent("status", Status.unpack(frame.payload), time_us, None, now)
        except MalformedMessage:
            stats.malformed += 1
            return None
        stats.unknown_frames += 1  # a newer minor version's message: ignored
        return None

    def _shape_problem(self, msg: Samples) -> str | None:
        """What in a SAMPLES frame's shape contradicts the configuration (None: nothing)."""
        if self.info is None:
            return None
        cfg = self.info.config
        ch = msg.counts.shape[1]
        if msg.stream == Stream.EMG:
            want = (cfg.n_emg, cfg.emg_bits // 8)
        elif msg.stream == Stream.ANGLE and cfg.n_angle:
            want = (cfg.n_angle, 4)
        else:
            return f"stream {msg.stream} is not configured"
        if (ch, msg.bytes_per_sample) != want:
            return f"{ch} channels x {msg.bytes_per_sample} bytes, configured {want[0]} x {want[1]}"
        return None

    def _rate(self, stream: int) -> float | None:
        if self.info is None:
            return None
        cfg = self.info.config
        rate = cfg.emg_rate_hz if stream == Stream.EMG else cfg.angle_rate_hz
        return float(rate) if rate else None

    def _line_problem(self, stream: int, first: int, time_us: int) -> str | None:
        """Whether ``(first, time_us)`` lies off the stream's index/time line (None: on it, or
        the line moved: :data:`LINE_REANCHOR_FRAMES` frames agreed on a new one)."""
        rate = self._rate(stream)
        line = self._line.get(stream)
        if rate is None or line is None:
            self._line[stream] = (first, time_us)
            return None

        def off(anchor) -> float:
            dt = (first - anchor[0]) * 1e6 / rate
            return time_us - (anchor[1] + dt), abs(dt)

        error, span = off(line)
        if abs(error) <= LINE_TOLERANCE_US + LINE_TOLERANCE_PPM * 1e-6 * span:
            self._line_candidates.pop(stream, None)
            return None
        # off the line: the line may have moved (a SET_TIME by another host, a restarted
        # device); frames that agree with each other that often re-anchor it
        cands = self._line_candidates.setdefault(stream, [])
        if cands:
            e, sp = off(cands[0])
            if abs(e) > LINE_TOLERANCE_US + LINE_TOLERANCE_PPM * 1e-6 * sp:
                cands.clear()
        cands.append((first, time_us))
        if len(cands) >= LINE_REANCHOR_FRAMES:
            self._line[stream] = (first, time_us)
            cands.clear()
            return None
        return (
            f"sample {first} at device time {time_us} us lies {error / 1e3:+.1f} ms off the "
            f"stream's line t = t0 + index / rate"
        )

    def _on_samples(self, msg: Samples, time_us: int, now: float) -> SampleBlock | None:
        stream = int(msg.stream)
        expected = self._next_index.get(stream)
        if expected is None:
            first = self._index.setdefault(stream, Unwrapper(32))(msg.first_index)
        else:  # unwrapped near where the stream is, never moved by an implausible frame
            first = _near(msg.first_index, expected)
        n, ch = msg.counts.shape
        problem = self._shape_problem(msg)
        reason = "shape"
        if problem is None:
            problem, reason = self._line_problem(stream, first, time_us), "index"
        if problem is not None:
            self.stats.quarantine(Quarantined(reason, stream, first, n, ch, time_us, now, problem))
            return None
        gap = 0
        if expected is not None and first > expected:
            gap = first - expected
            self.stats.add_gap(stream, expected, gap)
        elif expected is not None and first < expected and stream == Stream.EMG:
            # sample numbers went back (a duplicated frame, or the device restarted them after
            # a power cycle): the last pulse can no longer be placed on this sample clock
            self._config_number += 1
        end = first + msg.counts.shape[0]
        self._next_index[stream] = max(end, expected or 0)
        self.stats.samples[stream] = self.stats.samples.get(stream, 0) + msg.counts.shape[0]
        if stream == Stream.EMG:
            self._last_emg_index = end
        return SampleBlock(stream, first, msg.counts, time_us, now, gap)

    def read(self, timeout_s: float = 0.1) -> list[SampleBlock | DeviceEvent]:
        """Streamed items received so far (waits up to ``timeout_s`` when there are none)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._cond:
                if self._queue:
                    items = list(self._queue)
                    self._queue.clear()
                    return items
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if self._rx_lock.acquire(blocking=False):
                try:
                    self._pump(remaining)
                finally:
                    self._rx_lock.release()
            else:
                with self._cond:
                    if not self._queue:
                        self._cond.wait(min(0.01, remaining))

    def iter_items(self, *, device_seconds: float | None = None, idle_timeout_s: float = 2.0):
        """Yield streamed items one by one (a generator over :meth:`read`).

        Stops after ``device_seconds`` of EMG device time (from the first EMG block seen), or
        when nothing arrives for ``idle_timeout_s``; ``None`` means only the idle rule applies.
        """
        first_us = None
        idle_since = time.monotonic()
        while True:
            items = self.read(0.1)
            if items:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > idle_timeout_s:
                return
            for item in items:
                yield item
                if isinstance(item, SampleBlock) and item.stream == Stream.EMG:
                    first_us = item.device_time_us if first_us is None else first_us
                    if (
                        device_seconds is not None
                        and item.device_time_us - first_us >= device_seconds * 1e6
                    ):
                        return

    def reset_stream_tracking(self) -> None:
        """Forget per-stream continuity (call after CONFIGURE, which restarts sample numbers)."""
        self._next_index.clear()
        self._line.clear()
        self._line_candidates.clear()
        for unwrap in self._index.values():
            unwrap.reset()
        self._last_emg_index = 0
        self._config_number += 1

    # ------------------------------------------------------------------ commands
    def connect(
        self, *, stop_first: bool = True, quiet_s: float = 0.1, max_drain_s: float = 2.0
    ) -> DeviceInfo:
        """Start a session robustly: STOP, drain until the line is quiet, then IDENTIFY.

        A conforming device is silent until spoken to, but one may still be streaming for a
        previous host that went away without STOP over a link that did not tell it (a serial
        adapter that ignores DTR, a host process that died while another kept the port open).
        STOP is idempotent; whatever arrives until ``quiet_s`` of silence (at most
        ``max_drain_s``) is dropped, and the counters, sequence and stream tracking start
        afresh (PROTOCOL.md section 7).

        Parameters
        ----------
        stop_first : bool
            Send STOP first (False: only the session's leading ``0x00``, e.g. for a replayed
            capture, which ends at a STOP).
        quiet_s : float
            Silence that ends the drain.
        max_drain_s : float
            Longest drain.

        Returns
        -------
        DeviceInfo
            The IDENTIFY reply.

        Raises
        ------
        CommandTimeout, CommandRejected, VersionMismatch, LinkClosed
            As :meth:`command`; ``VersionMismatch`` also as :meth:`identify`.
        """
        if stop_first:
            self.stop()
        else:
            self._write(b"")  # the 0x00 that opens every session
        deadline = time.monotonic() + max_drain_s
        with self._rx_lock:
            while time.monotonic() < deadline:
                if not self._pump(min(quiet_s, max(0.0, deadline - time.monotonic()))):
                    break
            with self._cond:
                self._queue.clear()
            self.stats = ClientStats()
            self.decoder = StreamDecoder()
            self._expected_seq = None
            self._time.reset()
            self.reset_stream_tracking()
        return self.identify()

    def identify(self) -> DeviceInfo:
        """Ask who the device is; raises :class:`VersionMismatch` for another major version."""
        info = DeviceInfo.unpack(self.command(MsgType.IDENTIFY))
        if info.protocol_major != PROTOCOL_MAJOR:
            raise VersionMismatch(
                f"device speaks protocol {info.protocol_major}.{info.protocol_minor}; this "
                f"tonuslab supports {PROTOCOL_MAJOR}.x: upgrade tonuslab"
            )
        self.info = info
        self._stim_counter = max(self._stim_counter, info.last_stim_counter)
        return info

    def configure(self, config: Config | None = None, **fields) -> DeviceInfo:
        """Configure rates, channels and gain, then re-identify; returns the new channel table.

        Pass a :class:`Config` or its fields as keywords (missing fields keep the device's
        current values).
        """
        if config is None:
            current = self.info.config if self.info else Config()
            config = Config(**{**current.__dict__, **fields})
        problems = config.problems()
        if problems:
            raise CommandRejected(f"invalid configuration: {problems[0]}", ErrorCode.OUT_OF_RANGE)
        self.command(MsgType.CONFIGURE, config.pack())
        self.reset_stream_tracking()
        return self.identify()

    def start(self) -> None:
        """Start streaming."""
        self.command(MsgType.START)

    def stop(self) -> None:
        """Stop streaming (frames already in flight may still arrive)."""
        self.command(MsgType.STOP)

    def ping(self, token: int | None = None) -> PingResult:
        """One round trip with the device clock echoed (for clock synchronisation)."""
        token = (next(self._seq) if token is None else token) & 0xFFFFFFFF
        sent = time.monotonic()
        body = self.command(MsgType.PING, PING.pack(token))
        received = time.monotonic()
        reply = PingReply.unpack(body)
        if reply.token != token:
            raise MalformedMessage(f"ping reply carries token {reply.token}, expected {token}")
        result = PingResult(sent, received, reply.device_rx_us, reply.device_tx_us, reply.uptime_us)
        self._sync = result  # the clock synchronisation STIMULATE deadlines are computed from
        return result

    def stim_deadline_us(self, validity_s: float | None = None, *, resync: bool = False) -> int:
        """A STIMULATE deadline: the device's uptime now plus ``validity_s`` (microseconds).

        The uptime comes from the latest PING (a new one is sent when there is none, it is
        older than :data:`CLOCK_SYNC_MAX_AGE_S`, or ``resync``).

        Parameters
        ----------
        validity_s : float, optional
            Default: the client's ``stim_validity_s``.
        resync : bool
            Ping the device first whatever the age of the last round trip.
        """
        validity_s = self.stim_validity_s if validity_s is None else float(validity_s)
        now = time.monotonic()
        if resync or self._sync is None or now - self._sync.host_recv_s > CLOCK_SYNC_MAX_AGE_S:
            self._sync = None
            self.ping()
            now = time.monotonic()
        return int(self._sync.uptime_at(now) + validity_s * 1e6)

    def set_time(self, device_time_us: int) -> None:
        """Set the device clock (only while not streaming).

        The sample times of every stream then follow the new clock: their index/time lines
        are re-anchored on the next frame.
        """
        self.command(MsgType.SET_TIME, SET_TIME.pack(int(device_time_us)))
        self._line.clear()
        self._line_candidates.clear()

    def status(self) -> Status:
        """Battery, temperature and device-side loss counters, now."""
        return Status.unpack(self.command(MsgType.GET_STATUS))

    def prompt(self, kind: str, **params) -> None:
        """Send a cue for the examiner (e.g. ``prompt("stretch", velocity_deg_s=120)``)."""
        self.command(MsgType.PROMPT, pack_prompt(kind, params))

    def calibrate(self, channel: int, point: int, reference_deg: float) -> CalibrationReply:
        """Two-point goniometer calibration: hold the joint at ``reference_deg``, call with
        ``point=0``, move to a second angle, call with ``point=1``; the reply of point 1 carries
        the new scale and offset (also in the channel table of the next ``identify``)."""
        payload = Calibrate(channel, point, round(reference_deg * 1000)).pack()
        reply = CalibrationReply.unpack(self.command(MsgType.CALIBRATE, payload))
        if reply.complete:
            self.identify()
        return reply

    def pair(self, key: bytes) -> None:
        """Provision ``key`` (while the device's pairing window is open).

        The stimulation counter is not reset: it never goes back on the device, not even across
        PAIR (PROTOCOL.md 8.2), so the client re-reads it with IDENTIFY.
        """
        self.command(MsgType.PAIR, bytes(key))
        self.stim_key = bytes(key)
        self.identify()

    def stimulate(
        self,
        intensity_ma: float,
        width_us: int,
        *,
        mode: str = "single",
        pulses: int | None = None,
        interval_ms: float = 0.0,
    ) -> StimAccepted:
        """Deliver a single pulse, a pair or a train (authenticated, limits checked here first).

        The command is signed with the next counter and a deadline ``stim_validity_s`` ahead
        of the device's uptime (:meth:`stim_deadline_us`). It is never resent automatically,
        except once after ``REPLAY`` (counter re-read with IDENTIFY) or ``EXPIRED`` (clock
        re-synchronised with PING): the device delivered nothing in both cases.

        Parameters
        ----------
        intensity_ma : float
            Pulse intensity in mA.
        width_us : int
            Pulse width in microseconds.
        mode : {"single", "pair", "train"}
        pulses : int, optional
            Pulses in a train (pair: 2, single: 1).
        interval_ms : float
            Onset-to-onset interval within a pair or train.

        Raises
        ------
        StimulationRefused
            No key, or a limit of the host or of the device would be exceeded, including the
            minimum interval since the previous pulse (nothing sent).
        CommandRejected
            The device refused (authentication, replay, expiry, limits, state).
        """
        if self.stim_key is None:
            raise StimulationRefused(
                "no stimulation key: pair the device and pass the key file (--key-file)"
            )
        if self.info is None:
            self.identify()
        modes = {"single": StimMode.SINGLE, "pair": StimMode.PAIR, "train": StimMode.TRAIN}
        if mode not in modes:
            raise StimulationRefused(f"stimulation mode must be one of {sorted(modes)}")
        count = {"single": 1, "pair": 2}.get(mode, pulses)
        if count is None:
            raise StimulationRefused("a train needs pulses=N")
        cmd = Stimulate(
            int(modes[mode]), _whole("pulses", count, 1, 0xFFFF),
            _whole("intensity", intensity_ma * 1000 if _is_number(intensity_ma) else intensity_ma,
                   0, 0xFFFFFFFF, unit=" mA", scale=1e-3),
            _whole("width", width_us, 0, 0xFFFF, unit=" us"),
            _whole("interval", interval_ms * 1000 if _is_number(interval_ms) else interval_ms,
                   0, 0xFFFFFFFF, unit=" ms", scale=1e-3),
            0, 0,
        )  # fmt: skip
        self._catch_up()  # the latest EMG sample received: where the device's sample clock is
        since_us = self._since_last_pulse_us()
        problem = check_stim_limits(
            cmd, self.host_limits, since_last_pulse_us=since_us
        ) or check_stim_limits(cmd, self.info.limits, since_last_pulse_us=since_us)
        if problem:
            raise StimulationRefused(f"stimulation refused by the host: {problem}")
        if not self.info.has_stimulator:
            raise StimulationRefused("this device reports no stimulator")
        resync, recovered = False, set()
        while True:
            with self._stim_lock:
                self._stim_counter += 1
                counter = self._stim_counter
            deadline = self.stim_deadline_us(resync=resync)
            signed = auth.sign(
                dataclasses.replace(cmd, counter=counter, not_after_us=deadline),
                self.stim_key,
                self.info.serial,
            )
            try:
                body = self.command(MsgType.STIMULATE, signed.pack(), retries=0)
                break
            except CommandRejected as exc:
                # REPLAY: another host used higher counters since our IDENTIFY; EXPIRED: our
                # clock synchronisation is stale (e.g. the device was power-cycled). Nothing
                # was delivered: learn the counter or the clock and sign once more (at most
                # once for each reason).
                if exc.code not in (ErrorCode.REPLAY, ErrorCode.EXPIRED) or exc.code in recovered:
                    raise
                recovered.add(exc.code)
                if exc.code == ErrorCode.REPLAY:
                    self.identify()
                resync = exc.code == ErrorCode.EXPIRED
        counter, first = struct.unpack_from("<II", body)
        first = _near(first, self._last_emg_index)
        rate = self.info.config.emg_rate_hz
        last = first + round((cmd.pulse_count - 1) * cmd.interval_us * rate / 1e6)
        host_t = time.monotonic() + max(0, last - self._last_emg_index) / rate
        self._last_pulse = (self._config_number, last, host_t)
        if cmd.pulse_count > 1:  # the device's watchdog needs the heartbeat until the end
            self._keep_alive_until(host_t + 2 * HEARTBEAT_INTERVAL_S + 0.5)
        return StimAccepted(counter, first)

    def _since_last_pulse_us(self) -> float | None:
        """Microseconds from the last pulse accepted to the earliest the next command's first
        pulse can come (2 ms after the latest EMG sample received); None before any pulse.

        Counted in EMG samples within one configuration; across a CONFIGURE (sample numbers
        restart) from the host clock. Negative while the previous pair or train still runs.
        """
        if self._last_pulse is None or self.info is None:
            return None
        number, index, host_t = self._last_pulse
        if number == self._config_number:
            rate = self.info.config.emg_rate_hz
            return (self._last_emg_index - index) * 1e6 / rate + 2000.0
        return (time.monotonic() - host_t) * 1e6 + 2000.0

    # ------------------------------------------------------------------ helpers
    def physical(self, block: SampleBlock) -> np.ndarray:
        """``(counts - offset) * scale`` of a block, float64, with the current channel table."""
        if self.info is None:
            self.identify()
        channels = [c for c in self.info.channels if int(c.stream) == block.stream]
        return to_physical(block.counts, channels)


def to_physical(counts: np.ndarray, channels: list[ChannelInfo]) -> np.ndarray:
    """Counts ``(n, ch)`` to physical units with the channel table's scale and offset."""
    return ChannelScaling.from_channels(channels).to_physical(counts)


def check_stim_limits(
    cmd: Stimulate, limits: StimLimits, *, since_last_pulse_us: float | None = None
) -> str | None:
    """The first limit ``cmd`` would exceed, or None.

    Parameters
    ----------
    cmd : Stimulate
        The command (its counter, deadline and MAC are not looked at).
    limits : StimLimits
        Maximum intensity, width range, maximum pulse count, minimum interval.
    since_last_pulse_us : float, optional
        Time from the previous pulse to this command's first pulse; the minimum interval
        applies across commands too (PROTOCOL.md 8.3). None: no previous pulse known.
    """
    if not 0 < cmd.intensity_ua <= limits.max_intensity_ua:
        return (
            f"intensity {cmd.intensity_ua / 1000:g} mA not in (0, "
            f"{limits.max_intensity_ua / 1000:g}] mA"
        )
    if not limits.min_width_us <= cmd.width_us <= limits.max_width_us:
        lo, hi = limits.min_width_us, limits.max_width_us
        return f"pulse width {cmd.width_us} us not in [{lo}, {hi}]"
    if cmd.pulse_count > limits.max_pulses or cmd.pulse_count < 1:
        return f"{cmd.pulse_count} pulses (at most {limits.max_pulses})"
    if cmd.pulse_count > 1 and cmd.interval_us < limits.min_interval_us:
        return (
            f"interval {cmd.interval_us / 1000:g} ms below the minimum "
            f"{limits.min_interval_us / 1000:g} ms"
        )
    if since_last_pulse_us is not None and since_last_pulse_us < limits.min_interval_us:
        if since_last_pulse_us < 0:
            return "the previous pair or train is still running"
        return (
            f"first pulse {since_last_pulse_us / 1000:.1f} ms after the previous pulse, "
            f"below the minimum {limits.min_interval_us / 1000:g} ms"
        )
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _whole(name: str, value, lo: int, hi: int, *, unit: str = "", scale: float = 1.0) -> int:
    """``value`` rounded to a whole number in ``[lo, hi]`` (the field's wire range), else
    :class:`StimulationRefused` naming the parameter (NaN, inf, not a number, out of range);
    the limits of :func:`check_stim_limits` are checked afterwards."""
    if not _is_number(value) or not np.isfinite(value):
        shown = value * scale if _is_number(value) else value
        raise StimulationRefused(
            f"stimulation refused by the host: {name} {shown!r}{unit} is not a finite number"
        )
    whole = round(float(value))
    if not lo <= whole <= hi:
        raise StimulationRefused(
            f"stimulation refused by the host: {name} {value * scale:g}{unit} is out of range"
        )
    return whole


def _type_name(msg_type: int) -> str:
    try:
        return MsgType(msg_type).name
    except ValueError:
        return f"command 0x{msg_type:02x}"
