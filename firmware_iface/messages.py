"""Message catalogue of protocol v1: types, error codes and payload layouts.

Every payload is little-endian and packed (no padding). Readers accept payloads *longer* than the
layouts below (a newer minor version may append fields) and reject shorter ones. Byte layouts are
specified in ``PROTOCOL.md``; this module is their executable form.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass, field
from enum import IntEnum

import numpy as np

from firmware_iface.errors import MalformedMessage


class MsgType(IntEnum):
    """Message type byte. Host to device: 0x01-0x3F; device to host: 0x80-0xBF."""

    IDENTIFY = 0x01
    CONFIGURE = 0x02
    START = 0x03
    STOP = 0x04
    PING = 0x05
    SET_TIME = 0x06
    CALIBRATE = 0x07
    STIMULATE = 0x08
    GET_STATUS = 0x09
    PROMPT = 0x0A
    PAIR = 0x0B
    ACK = 0x80
    ERROR = 0x81
    SAMPLES = 0x90
    STIM_EVENT = 0x91
    MARKER = 0x92
    STATUS = 0x93


COMMAND_TYPES = frozenset(t for t in MsgType if t < 0x80)


class ErrorCode(IntEnum):
    """Error codes carried by ERROR frames."""

    UNKNOWN_COMMAND = 1  #: message type not known to the device
    MALFORMED = 2  #: payload too short or a field not decodable
    BAD_STATE = 3  #: command not allowed in the current state (e.g. configure while streaming)
    OUT_OF_RANGE = 4  #: a configuration value outside what the device supports
    AUTH_REQUIRED = 5  #: stimulation without a provisioned key
    AUTH_FAILED = 6  #: wrong MAC
    REPLAY = 7  #: stimulation counter not greater than the last accepted one
    STIM_LIMIT = 8  #: intensity, pulse width, interval or pulse count outside the device limits
    UNSUPPORTED_VERSION = 9  #: frame with a protocol major version the device does not speak
    BUSY = 10  #: a stimulation train is still running
    CALIBRATION_FAILED = 11  #: two-point calibration impossible (same reading twice, bad order)
    FRAME_ERROR = 12  #: bytes that did not decode to a frame (bad CRC/COBS); acked_seq 0xFFFF
    PAIRING_CLOSED = 13  #: PAIR outside the pairing window opened by the device's button
    INTERNAL = 14  #: device fault
    EXPIRED = 15  #: STIMULATE past its signed deadline (or a deadline too far ahead)
    HEARTBEAT_LOST = 16  #: a pair/train stopped: no host frame within the heartbeat timeout


class Stream(IntEnum):
    """Stream id of SAMPLES frames."""

    EMG = 0
    ANGLE = 1


class StimMode(IntEnum):
    SINGLE = 0
    PAIR = 1
    TRAIN = 2


class DeviceState(IntEnum):
    IDLE = 0
    STREAMING = 1


def _need(payload: bytes, size: int, what: str) -> None:
    if len(payload) < size:
        raise MalformedMessage(
            f"{what} payload has {len(payload)} bytes, needs at least {size}; the peer is not "
            "speaking protocol v1"
        )


def _cstr(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("ascii", "replace")


# --------------------------------------------------------------------------- configuration
CONFIG = struct.Struct("<IHBBBB")


@dataclass(frozen=True)
class Config:
    """Acquisition configuration (CONFIGURE payload, 10 bytes).

    Attributes
    ----------
    emg_rate_hz : int
        EMG sample rate, 500-10000 Hz.
    angle_rate_hz : int
        Goniometer sample rate, 1-1000 Hz (ignored when ``n_angle`` is 0).
    n_emg : int
        EMG channels, 1-16.
    n_angle : int
        Goniometer channels, 0-4.
    emg_bits : int
        16 or 24 (signed counts on the wire in 2 or 3 bytes).
    emg_gain : int
        Programmable amplifier gain: 1, 2, 3, 4, 6, 8, 12 or 24.
    """

    emg_rate_hz: int = 2000
    angle_rate_hz: int = 500
    n_emg: int = 2
    n_angle: int = 1
    emg_bits: int = 16
    emg_gain: int = 1

    def pack(self) -> bytes:
        return CONFIG.pack(
            self.emg_rate_hz, self.angle_rate_hz, self.n_emg, self.n_angle, self.emg_bits,
            self.emg_gain,
        )  # fmt: skip

    @classmethod
    def unpack(cls, payload: bytes) -> Config:
        _need(payload, CONFIG.size, "CONFIGURE")
        return cls(*CONFIG.unpack_from(payload))

    def problems(self) -> list[str]:
        """What is outside the v1 ranges (empty when valid)."""
        out = []
        if not 500 <= self.emg_rate_hz <= 10000:
            out.append(f"emg_rate_hz {self.emg_rate_hz} not in 500..10000")
        if not 1 <= self.n_emg <= 16:
            out.append(f"n_emg {self.n_emg} not in 1..16")
        if not 0 <= self.n_angle <= 4:
            out.append(f"n_angle {self.n_angle} not in 0..4")
        if self.n_angle and not 1 <= self.angle_rate_hz <= 1000:
            out.append(f"angle_rate_hz {self.angle_rate_hz} not in 1..1000")
        if self.emg_bits not in (16, 24):
            out.append(f"emg_bits {self.emg_bits} not 16 or 24")
        if self.emg_gain not in EMG_GAINS:
            out.append(f"emg_gain {self.emg_gain} not one of {EMG_GAINS}")
        return out


EMG_GAINS = (1, 2, 3, 4, 6, 8, 12, 24)


# --------------------------------------------------------------------------- identify
IDENT_HEAD = struct.Struct("<BB16sBBBBBB")
LIMITS = struct.Struct("<IHHIH")
AUTH_STATE = struct.Struct("<BI")
CHANNEL = struct.Struct("<B8s4sddff")

STIM_FLAG_PRESENT = 0x01
STIM_FLAG_KEY = 0x02


@dataclass(frozen=True)
class ChannelInfo:
    """One row of the channel table (37 bytes on the wire).

    ``physical = (counts - offset) * scale`` in ``unit``; filter corners in Hz, None if absent.
    """

    name: str
    kind: str  # "emg" | "angle"
    unit: str  # "uV" | "deg"
    scale: float
    offset: float
    highpass_hz: float | None
    lowpass_hz: float | None

    @property
    def stream(self) -> Stream:
        return Stream.EMG if self.kind == "emg" else Stream.ANGLE

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ChannelInfo:
        return cls(
            name=str(d["name"]), kind=str(d["kind"]), unit=str(d["unit"]),
            scale=float(d["scale"]), offset=float(d["offset"]),
            highpass_hz=None if d.get("highpass_hz") is None else float(d["highpass_hz"]),
            lowpass_hz=None if d.get("lowpass_hz") is None else float(d["lowpass_hz"]),
        )  # fmt: skip

    def pack(self) -> bytes:
        def corner(v):
            return float("nan") if v is None else float(v)

        return CHANNEL.pack(
            int(self.stream), self.name.encode("ascii", "replace")[:8],
            self.unit.encode("ascii", "replace")[:4], self.scale, self.offset,
            corner(self.highpass_hz), corner(self.lowpass_hz),
        )  # fmt: skip

    @classmethod
    def unpack_from(cls, payload: bytes, offset: int) -> ChannelInfo:
        stream, name, unit, scale, off, hp, lp = CHANNEL.unpack_from(payload, offset)
        return cls(
            name=_cstr(name), kind="emg" if stream == Stream.EMG else "angle", unit=_cstr(unit),
            scale=scale, offset=off, highpass_hz=None if math.isnan(hp) else hp,
            lowpass_hz=None if math.isnan(lp) else lp,
        )  # fmt: skip


@dataclass(frozen=True)
class StimLimits:
    """Stimulation limits the device enforces (and reports in IDENTIFY)."""

    max_intensity_ua: int = 100_000
    min_width_us: int = 50
    max_width_us: int = 1000
    min_interval_us: int = 10_000
    max_pulses: int = 50

    def pack(self) -> bytes:
        return LIMITS.pack(
            self.max_intensity_ua, self.min_width_us, self.max_width_us, self.min_interval_us,
            self.max_pulses,
        )  # fmt: skip


@dataclass(frozen=True)
class DeviceInfo:
    """The IDENTIFY reply: who the device is, its configuration, limits and channel table."""

    protocol_major: int
    protocol_minor: int
    serial: str
    hw_version: tuple[int, int]
    fw_version: tuple[int, int, int]
    state: int
    config: Config
    limits: StimLimits
    stim_flags: int
    last_stim_counter: int
    channels: tuple[ChannelInfo, ...] = field(default_factory=tuple)

    @property
    def emg_channels(self) -> list[ChannelInfo]:
        return [c for c in self.channels if c.kind == "emg"]

    @property
    def angle_channels(self) -> list[ChannelInfo]:
        return [c for c in self.channels if c.kind == "angle"]

    @property
    def has_stimulator(self) -> bool:
        return bool(self.stim_flags & STIM_FLAG_PRESENT)

    @property
    def key_provisioned(self) -> bool:
        return bool(self.stim_flags & STIM_FLAG_KEY)

    def pack(self) -> bytes:
        head = IDENT_HEAD.pack(
            self.protocol_major, self.protocol_minor, self.serial.encode("ascii")[:16],
            *self.hw_version, *self.fw_version, self.state,
        )  # fmt: skip
        parts = [head, self.config.pack(), self.limits.pack()]
        parts.append(AUTH_STATE.pack(self.stim_flags, self.last_stim_counter))
        parts.append(bytes([len(self.channels)]))
        parts.extend(c.pack() for c in self.channels)
        return b"".join(parts)

    @classmethod
    def unpack(cls, body: bytes) -> DeviceInfo:
        fixed = IDENT_HEAD.size + CONFIG.size + LIMITS.size + AUTH_STATE.size + 1
        _need(body, fixed, "IDENTIFY reply")
        pm, pn, serial, hw1, hw2, fw1, fw2, fw3, state = IDENT_HEAD.unpack_from(body)
        off = IDENT_HEAD.size
        config = Config(*CONFIG.unpack_from(body, off))
        off += CONFIG.size
        limits = StimLimits(*LIMITS.unpack_from(body, off))
        off += LIMITS.size
        flags, counter = AUTH_STATE.unpack_from(body, off)
        off += AUTH_STATE.size
        n = body[off]
        off += 1
        _need(body, off + n * CHANNEL.size, "IDENTIFY reply")
        channels = tuple(ChannelInfo.unpack_from(body, off + k * CHANNEL.size) for k in range(n))
        return cls(
            pm, pn, _cstr(serial), (hw1, hw2), (fw1, fw2, fw3), state, config, limits, flags,
            counter, channels,
        )  # fmt: skip

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = [c.to_dict() for c in self.channels]
        return d


# --------------------------------------------------------------------------- ack / error
ACK_HEAD = struct.Struct("<HB")
ERROR_HEAD = struct.Struct("<HBB")
MAX_ERROR_TEXT = 64


@dataclass(frozen=True)
class Ack:
    """ACK: ``acked_seq u16, acked_type u8`` then the command's reply body."""

    acked_seq: int
    acked_type: int
    body: bytes = b""

    def pack(self) -> bytes:
        return ACK_HEAD.pack(self.acked_seq, self.acked_type) + self.body

    @classmethod
    def unpack(cls, payload: bytes) -> Ack:
        _need(payload, ACK_HEAD.size, "ACK")
        seq, typ = ACK_HEAD.unpack_from(payload)
        return cls(seq, typ, bytes(payload[ACK_HEAD.size :]))


@dataclass(frozen=True)
class ErrorReply:
    """ERROR: ``acked_seq u16, acked_type u8, code u8`` then up to 64 bytes of UTF-8 text."""

    acked_seq: int
    acked_type: int
    code: int
    text: str = ""

    def pack(self) -> bytes:
        text = self.text.encode("utf-8")[:MAX_ERROR_TEXT]
        return ERROR_HEAD.pack(self.acked_seq, self.acked_type, self.code) + text

    @classmethod
    def unpack(cls, payload: bytes) -> ErrorReply:
        _need(payload, ERROR_HEAD.size, "ERROR")
        seq, typ, code = ERROR_HEAD.unpack_from(payload)
        text = bytes(payload[ERROR_HEAD.size :]).decode("utf-8", "replace")
        return cls(seq, typ, code, text)

    @property
    def code_name(self) -> str:
        try:
            return ErrorCode(self.code).name
        except ValueError:
            return f"code {self.code}"


# --------------------------------------------------------------------------- ping / time
PING = struct.Struct("<I")
PING_REPLY = struct.Struct("<IQQQ")
SET_TIME = struct.Struct("<Q")


@dataclass(frozen=True)
class PingReply:
    """Ping reply body (28 bytes): the host's token, the device clock at receipt and at reply,
    and the device's uptime clock at receipt (all 64-bit microseconds).

    The uptime clock counts from power-on and is never set (SET_TIME moves only the device
    clock); STIMULATE deadlines (``not_after_us``) are on the uptime clock.
    """

    token: int
    device_rx_us: int
    device_tx_us: int
    uptime_us: int

    def pack(self) -> bytes:
        return PING_REPLY.pack(self.token, self.device_rx_us, self.device_tx_us, self.uptime_us)

    @classmethod
    def unpack(cls, body: bytes) -> PingReply:
        _need(body, PING_REPLY.size, "PING reply")
        return cls(*PING_REPLY.unpack_from(body))


# --------------------------------------------------------------------------- calibration
CALIBRATE = struct.Struct("<BBi")
CALIBRATE_REPLY = struct.Struct("<BBiBdd")


@dataclass(frozen=True)
class Calibrate:
    """CALIBRATE: goniometer ``channel`` (0-3), ``point`` (0 or 1), reference angle (mdeg)."""

    channel: int
    point: int
    reference_mdeg: int

    def pack(self) -> bytes:
        return CALIBRATE.pack(self.channel, self.point, self.reference_mdeg)

    @classmethod
    def unpack(cls, payload: bytes) -> Calibrate:
        _need(payload, CALIBRATE.size, "CALIBRATE")
        return cls(*CALIBRATE.unpack_from(payload))


@dataclass(frozen=True)
class CalibrationReply:
    """CALIBRATE reply: the raw reading taken; after point 1 the new scale and offset."""

    channel: int
    point: int
    raw_counts: int
    complete: bool
    scale: float
    offset: float

    def pack(self) -> bytes:
        return CALIBRATE_REPLY.pack(
            self.channel, self.point, self.raw_counts, int(self.complete), self.scale, self.offset
        )

    @classmethod
    def unpack(cls, body: bytes) -> CalibrationReply:
        _need(body, CALIBRATE_REPLY.size, "CALIBRATE reply")
        ch, pt, raw, complete, scale, offset = CALIBRATE_REPLY.unpack_from(body)
        return cls(ch, pt, raw, bool(complete), scale, offset)


# --------------------------------------------------------------------------- stimulation
STIMULATE = struct.Struct("<BHIHIIQ")
MAC_SIZE = 16
#: Furthest ahead of the device's uptime a STIMULATE deadline may lie (PROTOCOL.md 4.5).
MAX_STIM_VALIDITY_US = 10_000_000
#: Added to the last accepted stimulation counter at every power-on (PROTOCOL.md 8.2).
COUNTER_BOOT_STEP = 65_536
#: A pair or train stops when no intact host frame arrived for this long (uptime clock,
#: PROTOCOL.md 8.4): the host-alive heartbeat's timeout.
HEARTBEAT_TIMEOUT_US = 2_000_000
#: The reference host's heartbeat period while a pair or train runs (PING), seconds.
HEARTBEAT_INTERVAL_S = 0.25


@dataclass(frozen=True)
class Stimulate:
    """STIMULATE (41 bytes in protocol 1.0): what to deliver, until when, the counter, the MAC.

    Attributes
    ----------
    mode : int
        :class:`StimMode`: 0 single, 1 pair, 2 train.
    pulse_count : int
        1 for single, 2 for a pair, 2..max_pulses for a train.
    intensity_ua : int
        Pulse intensity in microamps.
    width_us : int
        Pulse width in microseconds.
    interval_us : int
        Onset-to-onset between pulses of a pair or train (0 for a single pulse).
    counter : int
        Replay counter: greater than the last one the device accepted.
    not_after_us : int
        Deadline on the device's uptime clock (64-bit microseconds, see :class:`PingReply`):
        the device refuses the command (``EXPIRED``) once its uptime is past it.
    mac : bytes
        16 bytes, always the last of the payload; covers every byte before it
        (see :mod:`firmware_iface.auth`).
    extra : bytes
        Fields a newer minor version appended after ``not_after_us`` (before the MAC); covered
        by the MAC, otherwise ignored by a 1.0 reader.
    """

    mode: int
    pulse_count: int
    intensity_ua: int
    width_us: int
    interval_us: int
    counter: int
    not_after_us: int
    mac: bytes = b"\x00" * MAC_SIZE
    extra: bytes = b""

    def signed_part(self) -> bytes:
        """Every payload byte before the MAC (what the MAC covers)."""
        return STIMULATE.pack(
            self.mode, self.pulse_count, self.intensity_ua, self.width_us, self.interval_us,
            self.counter, self.not_after_us,
        ) + self.extra  # fmt: skip

    def pack(self) -> bytes:
        return self.signed_part() + self.mac

    @classmethod
    def unpack(cls, payload: bytes) -> Stimulate:
        _need(payload, STIMULATE.size + MAC_SIZE, "STIMULATE")
        fields = STIMULATE.unpack_from(payload)
        extra = bytes(payload[STIMULATE.size : len(payload) - MAC_SIZE])
        return cls(*fields, mac=bytes(payload[-MAC_SIZE:]), extra=extra)


# --------------------------------------------------------------------------- events, status
STIM_EVENT = struct.Struct("<IIIHBBI")
MARKER = struct.Struct("<IIBB")
STATUS = struct.Struct("<BBHhII")


@dataclass(frozen=True)
class StimEvent:
    """A delivered stimulus pulse, at EMG-sample precision (22 bytes)."""

    emg_sample_index: int
    device_time_us: int
    intensity_ua: int
    width_us: int
    pulse_index: int
    pulse_count: int
    counter: int

    @property
    def intensity_ma(self) -> float:
        return self.intensity_ua / 1000.0

    def pack(self) -> bytes:
        return STIM_EVENT.pack(
            self.emg_sample_index & 0xFFFFFFFF, self.device_time_us & 0xFFFFFFFF,
            self.intensity_ua, self.width_us, self.pulse_index, self.pulse_count, self.counter,
        )  # fmt: skip

    @classmethod
    def unpack(cls, payload: bytes) -> StimEvent:
        _need(payload, STIM_EVENT.size, "STIM_EVENT")
        return cls(*STIM_EVENT.unpack_from(payload))


@dataclass(frozen=True)
class Marker:
    """A marker (button press on the device), at EMG-sample precision (10 bytes)."""

    emg_sample_index: int
    device_time_us: int
    marker_id: int
    value: int

    def pack(self) -> bytes:
        return MARKER.pack(
            self.emg_sample_index & 0xFFFFFFFF, self.device_time_us & 0xFFFFFFFF,
            self.marker_id, self.value,
        )  # fmt: skip

    @classmethod
    def unpack(cls, payload: bytes) -> Marker:
        _need(payload, MARKER.size, "MARKER")
        return cls(*MARKER.unpack_from(payload))


@dataclass(frozen=True)
class Status:
    """Device status (14 bytes): battery, temperature and device-side loss counters.

    ``overruns`` counts device buffer overruns and ``dropped_samples`` the samples (per stream,
    summed) the device discarded because of them, both cumulative since power-on.
    """

    state: int
    battery_pct: int
    battery_mv: int
    temperature_cdeg: int
    overruns: int
    dropped_samples: int

    @property
    def temperature_c(self) -> float:
        return self.temperature_cdeg / 100.0

    def pack(self) -> bytes:
        return STATUS.pack(
            self.state, self.battery_pct, self.battery_mv, self.temperature_cdeg, self.overruns,
            self.dropped_samples,
        )  # fmt: skip

    @classmethod
    def unpack(cls, payload: bytes) -> Status:
        _need(payload, STATUS.size, "STATUS")
        return cls(*STATUS.unpack_from(payload))


# --------------------------------------------------------------------------- samples
SAMPLES_HEAD = struct.Struct("<BBBBI")


def samples_per_frame(n_channels: int, bytes_per_sample: int, rate_hz: float) -> int:
    """How many samples the reference firmware packs in one frame (<= 10 ms, <= MAX_FRAME)."""
    from firmware_iface.codec import MAX_PAYLOAD

    fit = (MAX_PAYLOAD - SAMPLES_HEAD.size) // (n_channels * bytes_per_sample)
    return int(max(1, min(255, fit, rate_hz // 100)))


def pack_counts(counts: np.ndarray, bytes_per_sample: int) -> bytes:
    """Signed counts ``(n, ch)`` to little-endian 2-, 3- or 4-byte integers, sample-major."""
    c = np.ascontiguousarray(counts, dtype="<i4")
    if bytes_per_sample == 4:
        return c.tobytes()
    if bytes_per_sample == 2:
        return c.astype("<i2").tobytes()
    return c.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()


def unpack_counts(data: bytes, n_samples: int, n_channels: int, bytes_per_sample: int):
    """Inverse of :func:`pack_counts`: int32 ``(n_samples, n_channels)``."""
    raw = np.frombuffer(data, dtype=np.uint8, count=n_samples * n_channels * bytes_per_sample)
    if bytes_per_sample == 4:
        return raw.view("<i4").astype(np.int32).reshape(n_samples, n_channels)
    if bytes_per_sample == 2:
        return raw.view("<i2").astype(np.int32).reshape(n_samples, n_channels)
    b = raw.reshape(-1, 3).astype(np.int32)
    v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    v = (v << 8) >> 8
    return v.reshape(n_samples, n_channels)


@dataclass(frozen=True)
class Samples:
    """SAMPLES: ``stream u8, n_channels u8, bytes_per_sample u8, n_samples u8,
    first_index u32`` then ``n_samples * n_channels`` signed integers, sample-major.

    The frame header's time is the device time of the first sample.
    """

    stream: int
    first_index: int
    counts: np.ndarray  # int32 (n_samples, n_channels)
    bytes_per_sample: int = 2

    def pack(self) -> bytes:
        n, ch = self.counts.shape
        head = SAMPLES_HEAD.pack(
            self.stream, ch, self.bytes_per_sample, n, self.first_index & 0xFFFFFFFF
        )
        return head + pack_counts(self.counts, self.bytes_per_sample)

    @classmethod
    def unpack(cls, payload: bytes) -> Samples:
        _need(payload, SAMPLES_HEAD.size, "SAMPLES")
        stream, ch, bps, n, first = SAMPLES_HEAD.unpack_from(payload)
        if bps not in (2, 3, 4) or ch == 0 or n == 0:
            raise MalformedMessage(f"SAMPLES frame with {ch} channels x {n} samples x {bps} bytes")
        _need(payload, SAMPLES_HEAD.size + n * ch * bps, "SAMPLES")
        counts = unpack_counts(payload[SAMPLES_HEAD.size :], n, ch, bps)
        return cls(stream, first, counts, bps)


# --------------------------------------------------------------------------- prompt
def pack_prompt(kind: str, params: dict) -> bytes:
    """PROMPT payload: UTF-8 JSON ``{"kind": ..., "params": {...}}`` (a cue for the examiner)."""
    return json.dumps({"kind": kind, "params": params}, separators=(",", ":")).encode()


#: What a device accepts in a ``stretch`` prompt (PROTOCOL.md 4.5a): ``name: (low, high)``,
#: inclusive, in the parameter's unit. ``velocity_deg_s`` is required.
STRETCH_PROMPT_LIMITS = {
    "velocity_deg_s": (5.0, 1000.0),
    "peak_velocity_deg_s": (5.0, 1000.0),
    "return_velocity_deg_s": (5.0, 1000.0),
    "end_deg": (-360.0, 360.0),
    "hold_s": (0.0, 30.0),
    "overshoot_deg": (0.0, 45.0),
}
#: Values of a stretch prompt's ``shape``.
STRETCH_PROMPT_SHAPES = ("bell", "manual")


def prompt_problem(kind: str, params: dict) -> tuple[ErrorCode, str] | None:
    """Why a device refuses a PROMPT (PROTOCOL.md 4.5a), or None to accept it.

    Only ``kind == "stretch"`` has parameters a device acts on: ``velocity_deg_s`` (required)
    and the optional fields of :data:`STRETCH_PROMPT_LIMITS` must be finite numbers within
    their limits (``MALFORMED`` for a missing value, ``null``, a string or a boolean;
    ``OUT_OF_RANGE`` for NaN, infinities and values outside), ``shape`` one of
    :data:`STRETCH_PROMPT_SHAPES`. Unknown fields and other kinds are accepted (shown or ignored).
    """
    if kind != "stretch":
        return None
    speed = params.get("velocity_deg_s", params.get("peak_velocity_deg_s"))
    if speed is None:
        return ErrorCode.MALFORMED, "a stretch prompt needs a number velocity_deg_s"
    for name, (lo, hi) in STRETCH_PROMPT_LIMITS.items():
        if name not in params or (params[name] is None and name != "velocity_deg_s"):
            continue
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return ErrorCode.MALFORMED, f"stretch prompt: {name} must be a number"
        try:
            number = float(value)  # a JSON integer can be too large for a float
        except OverflowError:
            number = math.inf
        if not (math.isfinite(number) and lo <= number <= hi):
            shown = f"{number:g}" if not math.isfinite(number) else repr(value)
            return ErrorCode.OUT_OF_RANGE, f"stretch prompt: {name}={shown} not in [{lo:g}, {hi:g}]"
    shape = params.get("shape")
    if shape is not None and shape not in STRETCH_PROMPT_SHAPES:
        return (
            ErrorCode.OUT_OF_RANGE,
            f"stretch prompt: shape must be one of {STRETCH_PROMPT_SHAPES}",
        )
    return None


def unpack_prompt(payload: bytes) -> tuple[str, dict]:
    try:
        d = json.loads(bytes(payload).decode("utf-8"))
        return str(d["kind"]), dict(d.get("params", {}))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MalformedMessage("PROMPT payload is not JSON with a 'kind'") from exc
