"""The emulated device: protocol v1 state machine, streaming, stimulation with safety limits.

:class:`EmulatedDevice` is transport-free: ``receive(bytes)`` takes what the host sent,
``advance(until_us)`` produces the streaming frames due by a device time, ``take_output()`` hands
over the bytes to send. :class:`firmware_iface.emulator.runner.DeviceRunner` drives it over a
:class:`~firmware_iface.link.ByteLink`, paced in real time or as fast as possible.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from firmware_iface import auth
from firmware_iface.codec import PROTOCOL_MAJOR, PROTOCOL_MINOR, StreamDecoder, encode_frame
from firmware_iface.errors import MalformedMessage
from firmware_iface.messages import (
    COMMAND_TYPES,
    COUNTER_BOOT_STEP,
    HEARTBEAT_TIMEOUT_US,
    MAX_STIM_VALIDITY_US,
    PING,
    SET_TIME,
    STIM_FLAG_KEY,
    STIM_FLAG_PRESENT,
    Ack,
    Calibrate,
    CalibrationReply,
    ChannelInfo,
    Config,
    DeviceInfo,
    DeviceState,
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
    prompt_problem,
    samples_per_frame,
    unpack_prompt,
)


@dataclass
class Faults:
    """Deliberate misbehaviour, to prove that the conformance battery and the host can fail.

    Attributes
    ----------
    skip_acks : bool
        Never answer commands other than IDENTIFY (acks and errors are both suppressed).
    rate_error_ppm : float
        Samples are produced at ``rate * (1 + ppm/1e6)`` while timestamps claim the nominal rate.
    timestamp_error_ppm : float
        Header timestamps run at ``(1 + ppm/1e6)`` of the true sample times.
    drop_frame_every : int
        Skip every n-th sample frame (a device-side overrun; counted in STATUS).
    accept_unauthenticated : bool
        Deliver stimuli whatever the MAC, counter and deadline (an unsafe device).
    stim_time_error_us : int
        Added to the device time reported in STIM_EVENT frames.
    silent_on_malformed : bool
        Do not answer unknown or malformed commands.
    greeting : bool
        Send a STATUS frame as soon as the link is up, before the host speaks.
    ignore_expiry : bool
        Deliver authenticated stimuli whatever their deadline (``not_after_us``).
    ignore_limits : bool
        Deliver authenticated stimuli beyond the intensity, width, pulse-count and interval
        limits (state and BUSY are still checked).
    reset_counter_on_pair : bool
        PAIR resets the last accepted stimulation counter to 0 (protocol 1.0 revision 1), so
        a command signed in an earlier boot or pairing is accepted again.
    forge_samples : str
        After ``forge_after_frames`` EMG frames, send one extra SAMPLES frame with a valid
        CRC that contradicts the stream (what a radio peer could inject, or a corruption
        CRC-16 misses): ``"index_jump"`` (first_index +40,000, same time), ``"huge_jump"``
        (+100,000,000), ``"channels"`` (one channel more than configured) or ``"time_jump"``
        (index +40,000 and header time moved to match) or ``"time_wrap"`` (same index, header
        time +2^31 + 12,345 us: half the 32-bit range, where unwrapping would turn).
        Empty: none.
    forge_after_frames : int
        EMG frames sent before the forged one.
    ignore_heartbeat : bool
        Run pairs and trains to their end whether or not the host is still alive (no
        stimulation watchdog, PROTOCOL.md 8.4).
    """

    skip_acks: bool = False
    rate_error_ppm: float = 0.0
    timestamp_error_ppm: float = 0.0
    drop_frame_every: int = 0
    accept_unauthenticated: bool = False
    stim_time_error_us: int = 0
    silent_on_malformed: bool = False
    greeting: bool = False
    ignore_expiry: bool = False
    ignore_limits: bool = False
    reset_counter_on_pair: bool = False
    forge_samples: str = ""
    forge_after_frames: int = 100
    ignore_heartbeat: bool = False


#: Values of :attr:`Faults.forge_samples`.
FORGED_FRAMES = ("index_jump", "huge_jump", "channels", "time_jump", "time_wrap")


class DeviceClock:
    """The device's clocks: drift by ``drift_ppm``; the device clock can be set and run ahead.

    ``now_us()`` is the device clock of PROTOCOL.md section 6 (SET_TIME moves it; in fast mode
    the runner jumps it ahead). ``uptime_us()`` is the uptime clock of section 4.3: the same
    crystal from power-on, never set. The emulator keeps it in real time (times the drift)
    even in fast mode, so that a STIMULATE deadline the host computed from PING still means
    real seconds: a held-back command expires in real time however fast the samples run.
    """

    def __init__(self, drift_ppm: float = 0.0):
        self.drift_ppm = float(drift_ppm)
        self.restart()

    def restart(self, uptime_us: int = 0) -> None:
        """Power-on: both clocks start again from ``uptime_us`` (0; more to test a device that
        has been on for a while, e.g. past the 32-bit wrap of the header times)."""
        self._t0 = time.monotonic() - uptime_us * 1e-6 / (1.0 + self.drift_ppm * 1e-6)
        self._offset_us = 0.0
        self._ahead_us = 0.0

    def _elapsed_us(self) -> float:
        return (time.monotonic() - self._t0) * 1e6 * (1.0 + self.drift_ppm * 1e-6)

    def now_us(self) -> int:
        return int(self._offset_us + self._ahead_us + self._elapsed_us())

    def uptime_us(self) -> int:
        """Microseconds since power-on; SET_TIME and fast-mode jumps never move it."""
        return int(self._elapsed_us())

    def set_us(self, value: int) -> None:
        self._offset_us += value - self.now_us()

    def run_ahead_to(self, value: int) -> None:
        """Jump forward to ``value`` (fast mode); never goes back."""
        now = self.now_us()
        if value > now:
            self._ahead_us += value - now

    def host_seconds_until(self, device_us: int) -> float:
        """Real seconds until the clock reads ``device_us`` (0 if already past)."""
        return max(0.0, (device_us - self.now_us()) * 1e-6 / (1.0 + self.drift_ppm * 1e-6))


@dataclass
class _StreamState:
    stream: Stream
    rate_hz: float
    n_channels: int
    bytes_per_sample: int
    per_frame: int
    next_index: int = 0
    run_first_index: int = 0
    frames_sent: int = 0
    last_counts: np.ndarray | None = None


@dataclass
class _Pulse:
    emg_index: int
    intensity_ua: int
    width_us: int
    pulse_index: int
    pulse_count: int
    counter: int
    seq: int = 0  # of the STIMULATE, for the HEARTBEAT_LOST report


@dataclass
class EmulatedDevice:
    """Protocol v1 device state machine over a signal source.

    Parameters
    ----------
    source : SignalSource
        Where samples come from (``SimpleSource`` when None).
    serial : str
        Serial number reported by IDENTIFY (at most 16 ASCII characters).
    stim_key : bytes, optional
        The paired 32-byte stimulation key; None means not paired (stimulation refused).
    limits : StimLimits
        Stimulation limits enforced here.
    clock : DeviceClock
        The device clock (drift setting).
    faults : Faults
        Deliberate misbehaviour (default: none).
    max_emg_channels : int
        EMG channels this hardware has (1-16); CONFIGURE asking for more is OUT_OF_RANGE, as on
        a real device narrower than what protocol v1 allows.
    """

    source: object = None
    serial: str = "EMU-0001"
    stim_key: bytes | None = None
    limits: StimLimits = field(default_factory=StimLimits)
    clock: DeviceClock = field(default_factory=DeviceClock)
    faults: Faults = field(default_factory=Faults)
    hw_version: tuple[int, int] = (1, 0)
    fw_version: tuple[int, int, int] = (1, 0, 0)
    battery_pct: int = 87
    pairing_open: bool = False
    max_emg_channels: int = 16

    def __post_init__(self):
        if self.source is None:
            from firmware_iface.emulator.source import SimpleSource

            self.source = SimpleSource(seed=0)
        self._decoder = StreamDecoder()
        self._out = bytearray()
        self._seq = 0
        self.state = DeviceState.IDLE
        self.spoken_to = False
        self.last_stim_counter = 0
        self.overruns = 0
        self.dropped_samples = 0
        self._pulses: list[_Pulse] = []
        self._events: list[tuple[int, int, bytes]] = []  # (emg_index, type, payload) pending
        # the last delivered pulse: (configuration number, EMG sample number, uptime); the
        # minimum interval is measured on clocks SET_TIME cannot move (PROTOCOL.md 4.5)
        self._last_pulse: tuple[int, int, int] | None = None
        self._config_number = 0
        self._cal_points: dict[int, dict[int, tuple[int, float]]] = {}
        self._next_status_us = 0
        self.commands_seen: list[int] = []
        self._pairing_until_us = 0
        self._last_host_uptime = 0  # uptime of the latest intact host frame (the heartbeat)
        self.heartbeat_stops = 0  # pairs/trains stopped by the watchdog
        self._apply_config(Config())

    # ------------------------------------------------------------------ configuration
    def _apply_config(self, config: Config) -> None:
        table = self.source.configure(
            float(config.emg_rate_hz), config.n_emg, float(config.angle_rate_hz), config.n_angle,
            config.emg_bits,
        )  # fmt: skip
        channels = [ChannelInfo.from_dict(d) for d in table]
        gain = config.emg_gain
        self.channels = [
            ChannelInfo(c.name, c.kind, c.unit, c.scale / gain, c.offset * gain, c.highpass_hz,
                        c.lowpass_hz) if c.kind == "emg" else c
            for c in channels
        ]  # fmt: skip
        self.config = config
        bps = config.emg_bits // 8
        rate_factor = 1.0 + self.faults.rate_error_ppm * 1e-6
        self._emg = _StreamState(
            Stream.EMG, config.emg_rate_hz * rate_factor, config.n_emg, bps,
            samples_per_frame(config.n_emg, bps, config.emg_rate_hz),
        )  # fmt: skip
        self._angle = None
        if config.n_angle:
            self._angle = _StreamState(
                Stream.ANGLE, config.angle_rate_hz * rate_factor, config.n_angle, 4,
                samples_per_frame(config.n_angle, 4, config.angle_rate_hz),
            )  # fmt: skip
        self._cal_points = {}
        self._run_t0_us: int | None = None  # device time of sample 0; set by the first START
        self._config_number += 1  # the sample numbers restart

    def info(self) -> DeviceInfo:
        flags = STIM_FLAG_PRESENT | (STIM_FLAG_KEY if self.stim_key else 0)
        return DeviceInfo(
            PROTOCOL_MAJOR, PROTOCOL_MINOR, self.serial, self.hw_version, self.fw_version,
            int(self.state), self.config, self.limits, flags, self.last_stim_counter,
            tuple(self.channels),
        )  # fmt: skip

    # ------------------------------------------------------------------ output
    def _send(self, msg_type: int, payload: bytes, time_us: int | None = None) -> None:
        if time_us is None:
            time_us = self.clock.now_us()
        self._out += encode_frame(msg_type, self._seq, time_us, payload)
        self._seq = (self._seq + 1) & 0xFFFF

    def take_output(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def _ack(self, seq: int, msg_type: int, body: bytes = b"") -> None:
        if self.faults.skip_acks and msg_type != MsgType.IDENTIFY:
            return
        self._send(MsgType.ACK, Ack(seq, msg_type, body).pack())

    def _error(self, seq: int, msg_type: int, code: ErrorCode, text: str) -> None:
        if self.faults.skip_acks and msg_type != MsgType.IDENTIFY:
            return
        if self.faults.silent_on_malformed and code in (
            ErrorCode.UNKNOWN_COMMAND, ErrorCode.MALFORMED, ErrorCode.FRAME_ERROR,
        ):  # fmt: skip
            return
        self._send(MsgType.ERROR, ErrorReply(seq, msg_type, int(code), text).pack())

    # ------------------------------------------------------------------ input
    def receive(self, data: bytes) -> None:
        """Bytes from the host. Every frame gets an ACK or an ERROR; so does every bad frame."""
        if not data:
            return
        self.spoken_to = True
        errors_before = self._decoder.stats.errors
        frames = self._decoder.feed(data)
        for _ in range(self._decoder.stats.errors - errors_before):
            self._error(0xFFFF, 0xFF, ErrorCode.FRAME_ERROR, "bad CRC or framing; resend")
        for frame in frames:
            self._on_frame(frame)

    def _on_frame(self, frame) -> None:
        seq, typ = frame.seq, frame.msg_type
        self.commands_seen.append(typ)
        self._last_host_uptime = self.clock.uptime_us()  # any intact frame: the host is alive
        if frame.major != PROTOCOL_MAJOR:
            self._error(seq, typ, ErrorCode.UNSUPPORTED_VERSION,
                        f"device speaks protocol {PROTOCOL_MAJOR}.x")  # fmt: skip
            return
        if typ not in COMMAND_TYPES:
            self._error(seq, typ, ErrorCode.UNKNOWN_COMMAND, f"unknown command 0x{typ:02x}")
            return
        handler = getattr(self, f"_cmd_{MsgType(typ).name.lower()}")
        try:
            handler(frame)
        except MalformedMessage as exc:
            self._error(seq, typ, ErrorCode.MALFORMED, str(exc)[:64])
        except ValueError as exc:  # the signal source refused a parameter (e.g. a prompt)
            self._error(seq, typ, ErrorCode.OUT_OF_RANGE, str(exc)[:64])
        except Exception as exc:  # a device never dies on a command: report and carry on
            self._error(seq, typ, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}"[:64])

    def _cmd_identify(self, frame) -> None:
        self._ack(frame.seq, frame.msg_type, self.info().pack())

    def _cmd_configure(self, frame) -> None:
        config = Config.unpack(frame.payload)
        if self.state != DeviceState.IDLE:
            self._error(frame.seq, frame.msg_type, ErrorCode.BAD_STATE, "stop streaming first")
            return
        problems = config.problems()
        if config.n_emg > self.max_emg_channels:
            problems.append(f"this device has {self.max_emg_channels} EMG channels")
        if problems:
            self._error(frame.seq, frame.msg_type, ErrorCode.OUT_OF_RANGE, problems[0])
            return
        self._apply_config(config)
        self._ack(frame.seq, frame.msg_type, config.pack())

    def _cmd_start(self, frame) -> None:
        if self.state == DeviceState.STREAMING:
            self._ack(frame.seq, frame.msg_type)
            return
        now = self.clock.now_us()
        self._ack(frame.seq, frame.msg_type)
        self.state = DeviceState.STREAMING
        start_us = now + 1000  # first sample 1 ms after START
        if self._run_t0_us is None:  # first run since CONFIGURE: the sample clock starts here
            self._run_t0_us = start_us
        for st in (self._emg, self._angle):
            if st is not None:
                # The sample clock kept running while idle (section 4.6): skip the numbers of the
                # samples that were never sent, so the host sees the pause as an exact gap.
                due = math.ceil((start_us - self._run_t0_us) * st.rate_hz * 1e-6)
                self._skip(st, due - st.next_index)
                st.run_first_index = st.next_index
        self._next_status_us = start_us

    def _skip(self, st: _StreamState, n: int) -> None:
        """Consume ``n`` samples of a stream without sending them (the device was idle)."""
        # a source whose samples depend only on their index skips without making them, so a
        # START after a long pause costs no time (PatientSource); others make and drop them
        skip = getattr(self.source, "skip_emg" if st.stream == Stream.EMG else "skip_angle", None)
        if callable(skip) and n > 0:
            skip(n)
            st.next_index += n
            return
        read = self.source.emg_block if st.stream == Stream.EMG else self.source.angle_block
        while n > 0:  # the signal source is sequential: its time runs on while nobody listens
            step = min(n, 1 << 16)
            read(step)
            st.next_index += step
            n -= step

    def _cmd_stop(self, frame) -> None:
        self.state = DeviceState.IDLE
        self._cancel_pulses()
        self._ack(frame.seq, frame.msg_type)

    def _cancel_pulses(self) -> None:
        """Drop the pulses not yet delivered (STOP, a lost host, the watchdog), also from the
        signal source, whose EMG would otherwise show their responses."""
        if self._pulses:
            cancel = getattr(self.source, "cancel_stimuli", None)
            if callable(cancel):
                cancel(min(p.emg_index for p in self._pulses))
        self._pulses.clear()

    def _cmd_ping(self, frame) -> None:
        rx, uptime = self.clock.now_us(), self.clock.uptime_us()
        if len(frame.payload) < PING.size:
            raise MalformedMessage("PING needs a 4-byte token")
        (token,) = PING.unpack_from(frame.payload)
        body = PingReply(token, rx, self.clock.now_us(), uptime).pack()
        self._ack(frame.seq, frame.msg_type, body)

    def _cmd_set_time(self, frame) -> None:
        if len(frame.payload) < SET_TIME.size:
            raise MalformedMessage("SET_TIME needs an 8-byte time")
        if self.state != DeviceState.IDLE:
            self._error(frame.seq, frame.msg_type, ErrorCode.BAD_STATE, "stop streaming first")
            return
        (value,) = SET_TIME.unpack_from(frame.payload)
        before_us = self.clock.now_us()
        self.clock.set_us(value)
        if self._run_t0_us is not None:
            # The sample clock counts ADC conversions and is not the settable clock (section
            # 4.6): sample numbers run on unchanged, their time stamps follow the new clock.
            self._run_t0_us += self.clock.now_us() - before_us
        self._ack(frame.seq, frame.msg_type)

    def _cmd_get_status(self, frame) -> None:
        self._ack(frame.seq, frame.msg_type, self._status().pack())

    def _cmd_prompt(self, frame) -> None:
        kind, params = unpack_prompt(frame.payload)
        problem = prompt_problem(kind, params)  # checked here, before the source allocates
        if problem is not None:
            code, text = problem
            self._error(frame.seq, frame.msg_type, code, text[:64])
            return
        self.source.prompt(kind, params)
        self._ack(frame.seq, frame.msg_type)

    def _cmd_pair(self, frame) -> None:
        if len(frame.payload) < auth.KEY_SIZE:
            raise MalformedMessage("PAIR needs a 32-byte key")
        if self.pairing_open and self.clock.now_us() > self._pairing_until_us:
            self.pairing_open = False
        if not self.pairing_open:
            self._error(frame.seq, frame.msg_type, ErrorCode.PAIRING_CLOSED,
                        "hold the pairing button on the device, then retry")  # fmt: skip
            return
        self.stim_key = bytes(frame.payload[: auth.KEY_SIZE])
        if self.faults.reset_counter_on_pair:
            self.last_stim_counter = 0
        # else the counter never goes back, not even across PAIR (PROTOCOL.md 8.2): a command
        # signed in an earlier boot or pairing stays a REPLAY
        self.pairing_open = False
        self._ack(frame.seq, frame.msg_type)

    def _cmd_calibrate(self, frame) -> None:
        cal = Calibrate.unpack(frame.payload)
        seq, typ = frame.seq, frame.msg_type
        if self._angle is None or not 0 <= cal.channel < self._angle.n_channels:
            self._error(seq, typ, ErrorCode.OUT_OF_RANGE, f"no goniometer channel {cal.channel}")
            return
        if cal.point not in (0, 1):
            self._error(seq, typ, ErrorCode.OUT_OF_RANGE, "point must be 0 or 1")
            return
        if self._angle.last_counts is None:
            self._error(seq, typ, ErrorCode.BAD_STATE, "no goniometer reading yet; start first")
            return
        raw = int(self._angle.last_counts[cal.channel])
        points = self._cal_points.setdefault(cal.channel, {})
        if cal.point == 0:
            points.clear()
        points[cal.point] = (raw, cal.reference_mdeg / 1000.0)
        ch_index = self.config.n_emg + cal.channel
        old = self.channels[ch_index]
        if cal.point == 0:
            reply = CalibrationReply(cal.channel, 0, raw, False, old.scale, old.offset)
            self._ack(seq, typ, reply.pack())
            return
        if 0 not in points or points[0][0] == raw:
            points.clear()
            self._error(seq, typ, ErrorCode.CALIBRATION_FAILED,
                        "need point 0 first, at a different angle")  # fmt: skip
            return
        (raw0, deg0), (raw1, deg1) = points[0], points[1]
        scale = (deg1 - deg0) / (raw1 - raw0)
        offset = raw0 - deg0 / scale
        self.channels[ch_index] = ChannelInfo(
            old.name, old.kind, old.unit, scale, offset, old.highpass_hz, old.lowpass_hz
        )
        self._ack(seq, typ, CalibrationReply(cal.channel, 1, raw, True, scale, offset).pack())

    def _cmd_stimulate(self, frame) -> None:
        seq, typ = frame.seq, frame.msg_type
        arrival_us, arrival_uptime = self.clock.now_us(), self.clock.uptime_us()
        cmd = Stimulate.unpack(frame.payload)
        if not self.faults.accept_unauthenticated:
            if self.stim_key is None:
                self._error(seq, typ, ErrorCode.AUTH_REQUIRED, "device not paired")
                return
            # the MAC covers the raw bytes before it, fields of a newer minor included (8.2)
            if not auth.verify_payload(frame.payload, self.stim_key, self.serial):
                self._error(seq, typ, ErrorCode.AUTH_FAILED, "bad MAC")
                return
            if cmd.counter <= self.last_stim_counter:
                self._error(seq, typ, ErrorCode.REPLAY, f"counter must exceed "
                            f"{self.last_stim_counter}")  # fmt: skip
                return
            self.last_stim_counter = cmd.counter
            if not self.faults.ignore_expiry:
                ahead_us = cmd.not_after_us - arrival_uptime
                if ahead_us < 0:
                    self._error(seq, typ, ErrorCode.EXPIRED,
                                f"deadline passed {-ahead_us / 1000:.1f} ms ago")  # fmt: skip
                    return
                if ahead_us > MAX_STIM_VALIDITY_US:
                    self._error(seq, typ, ErrorCode.EXPIRED,
                                f"deadline {ahead_us / 1e6:.1f} s ahead (max 10 s)")  # fmt: skip
                    return
        first = self._first_pulse_index(arrival_us)
        problem = self._stim_problem(cmd, first, arrival_uptime)
        if problem:
            code, text = problem
            self._error(seq, typ, code, text)
            return
        rate = self.config.emg_rate_hz
        for k in range(cmd.pulse_count):
            index = first + round(k * cmd.interval_us * rate / 1e6)
            self._pulses.append(
                _Pulse(index, cmd.intensity_ua, cmd.width_us, k, cmd.pulse_count, cmd.counter, seq)
            )
            self.source.stimulate(index, cmd.intensity_ua / 1000.0, cmd.width_us)
        self._ack(seq, typ, np.array([cmd.counter, first], "<u4").tobytes())

    def _first_pulse_index(self, arrival_us: int) -> int:
        """The first EMG sample at least 2 ms after the command arrived (PROTOCOL.md 4.5).

        From the sample clock at the arrival time, not from the last sample sent (which can
        lag the arrival by a whole frame).
        """
        st = self._emg
        if self._run_t0_us is None:
            return st.next_index
        due = math.ceil((arrival_us + 2000 - self._run_t0_us) * st.rate_hz * 1e-6)
        return max(st.next_index, due)

    def _stim_problem(self, cmd: Stimulate, first: int, arrival_uptime: int):
        lim = self.limits
        if self.state != DeviceState.STREAMING:
            return ErrorCode.BAD_STATE, "start streaming before stimulating"
        if self._pulses:
            return ErrorCode.BUSY, "previous stimulation still running"
        expected = {StimMode.SINGLE: (1, 1), StimMode.PAIR: (2, 2), StimMode.TRAIN: (2, None)}
        if cmd.mode not in expected:
            return ErrorCode.MALFORMED, f"unknown stimulation mode {cmd.mode}"
        if self.faults.ignore_limits:
            return None
        lo, hi = expected[StimMode(cmd.mode)]
        hi = lim.max_pulses if hi is None else hi
        if not lo <= cmd.pulse_count <= min(hi, lim.max_pulses):
            return ErrorCode.STIM_LIMIT, f"pulse count {cmd.pulse_count} not allowed"
        if not 0 < cmd.intensity_ua <= lim.max_intensity_ua:
            return ErrorCode.STIM_LIMIT, f"intensity {cmd.intensity_ua} uA over the limit"
        if not lim.min_width_us <= cmd.width_us <= lim.max_width_us:
            return ErrorCode.STIM_LIMIT, f"pulse width {cmd.width_us} us outside limits"
        if cmd.pulse_count > 1 and cmd.interval_us < lim.min_interval_us:
            return ErrorCode.STIM_LIMIT, f"interval {cmd.interval_us} us below the minimum"
        if self._last_pulse is not None:
            number, index, uptime = self._last_pulse
            if number == self._config_number:  # one sample clock: count samples
                gap_us = (first - index) * 1e6 / self.config.emg_rate_hz
            else:  # a CONFIGURE restarted the sample numbers: the uptime clock
                gap_us = arrival_uptime + 2000 - uptime
            if gap_us < lim.min_interval_us:
                return ErrorCode.STIM_LIMIT, (
                    f"{gap_us / 1000:.1f} ms after the previous pulse "
                    f"(min {lim.min_interval_us / 1000:g} ms)"
                )
        return None

    # ------------------------------------------------------------------ events from outside
    def press_button(
        self, marker_id: int = 1, value: int = 1, at_emg_index: int | None = None
    ) -> int | None:
        """The device's marker button: a MARKER at the next EMG sample, or at ``at_emg_index``
        if that sample is still to come. Only while streaming; returns the marker's index."""
        if self.state != DeviceState.STREAMING:
            return None
        index = self._emg.next_index
        if at_emg_index is not None:
            index = max(index, int(at_emg_index))
        marker = Marker(index, self._sample_time_us(self._emg, index), marker_id, value)
        self._events.append((index, MsgType.MARKER, marker.pack()))
        return index

    @property
    def run_first_emg_index(self) -> int:
        """EMG sample number of the first sample of the current streaming run."""
        return self._emg.run_first_index

    def host_lost(self) -> None:
        """The link to the host went away: back to IDLE, pending pulses cancelled (section 5)."""
        self.state = DeviceState.IDLE
        self._cancel_pulses()

    def power_cycle(self) -> None:
        """Switch the device off and on: clocks from 0, IDLE, default configuration.

        The key and the last accepted stimulation counter are persisted; the counter is raised
        by :data:`~firmware_iface.messages.COUNTER_BOOT_STEP` (PROTOCOL.md 8.2), so a command
        signed before the power cycle is never accepted after it, although the uptime clock
        that its deadline refers to has started again from 0.
        """
        self.clock.restart()
        self.state = DeviceState.IDLE
        self._pulses.clear()
        self._events.clear()
        self._last_pulse = None
        self._decoder = StreamDecoder()
        self._out.clear()
        self._seq = 0
        self.spoken_to = False
        self.pairing_open = False
        self.last_stim_counter = min(0xFFFFFFFF, self.last_stim_counter + COUNTER_BOOT_STEP)
        self._apply_config(Config())

    def open_pairing_window(self, seconds: float = 30.0) -> None:
        """The pairing button: one PAIR command is accepted within ``seconds`` (device time)."""
        self.pairing_open = True
        self._pairing_until_us = self.clock.now_us() + int(seconds * 1e6)

    # ------------------------------------------------------------------ streaming
    def _sample_time_us(self, st: _StreamState, index: int) -> int:
        """Timestamp of sample ``index``: one sample clock per configuration (section 4.6)."""
        nominal = self.config.emg_rate_hz if st.stream == Stream.EMG else self.config.angle_rate_hz
        dt = index * 1e6 / nominal
        dt *= 1.0 + self.faults.timestamp_error_ppm * 1e-6
        origin = self._run_t0_us if self._run_t0_us is not None else self.clock.now_us()
        return int(origin + round(dt))

    def _true_time_us(self, st: _StreamState, index: int) -> float:
        return self._run_t0_us + index * 1e6 / st.rate_hz

    def next_due_us(self) -> int | None:
        """Device time at which the next frame completes (None when idle)."""
        if self.state != DeviceState.STREAMING:
            return None
        due = [
            self._true_time_us(st, st.next_index + st.per_frame)
            for st in (self._emg, self._angle)
            if st is not None
        ]
        return math.ceil(min(due))

    def advance(self, until_us: int) -> int:
        """Produce every frame completed by device time ``until_us``; returns frames made."""
        if self.state != DeviceState.STREAMING:
            return 0
        made = 0
        streams = [st for st in (self._emg, self._angle) if st is not None]
        while True:
            st = min(streams, key=lambda s: self._true_time_us(s, s.next_index + s.per_frame))
            if self._true_time_us(st, st.next_index + st.per_frame) > until_us:
                break
            self._emit_frame(st)
            made += 1
        if until_us >= self._next_status_us:
            self._send(MsgType.STATUS, self._status().pack())
            self._next_status_us += 1_000_000
        return made

    def _emit_frame(self, st: _StreamState) -> None:
        n = st.per_frame
        index = st.next_index
        if st.stream == Stream.EMG:
            # the watchdog decides before the samples holding the pulse are made (8.4)
            for p in [p for p in self._pulses if p.emg_index < index + n]:
                if self._heartbeat_lost(p):
                    break
            counts = self.source.emg_block(n)
            gain = self.config.emg_gain
            if gain != 1:
                limit = 2 ** (self.config.emg_bits - 1) - 1
                counts = np.clip(counts.astype(np.int64) * gain, -limit - 1, limit)
            counts = np.asarray(counts, dtype=np.int32)
        else:
            counts = np.asarray(self.source.angle_block(n), dtype=np.int32)
        st.last_counts = counts[-1]
        st.next_index += n
        st.frames_sent += 1
        time_us = self._sample_time_us(st, index)
        if self.faults.drop_frame_every and st.frames_sent % self.faults.drop_frame_every == 0:
            self.overruns += 1
            self.dropped_samples += n
        else:
            payload = Samples(int(st.stream), index, counts, st.bytes_per_sample).pack()
            self._send(MsgType.SAMPLES, payload, time_us)
        if st.stream == Stream.EMG:
            self._emit_events_before(st.next_index)
            if self.faults.forge_samples and st.frames_sent == self.faults.forge_after_frames:
                self._send_forged(st, index, counts, time_us)

    def _send_forged(self, st: _StreamState, index: int, counts: np.ndarray, time_us: int):
        """One implausible SAMPLES frame with a valid CRC (:attr:`Faults.forge_samples`)."""
        kind = self.faults.forge_samples
        if kind not in FORGED_FRAMES:
            raise ValueError(f"forge_samples must be one of {FORGED_FRAMES}, got {kind!r}")
        jump = 100_000_000 if kind == "huge_jump" else 40_000
        if kind == "channels":
            counts, jump = np.concatenate([counts, counts[:, :1]], axis=1), 0
        if kind == "time_wrap":
            jump, time_us = 0, time_us + (1 << 31) + 12_345
        if kind == "time_jump":
            time_us += round(jump * 1e6 / self.config.emg_rate_hz)
        payload = Samples(int(st.stream), index + jump, counts, st.bytes_per_sample).pack()
        self._send(MsgType.SAMPLES, payload, time_us)

    def _heartbeat_lost(self, pulse: _Pulse) -> bool:
        """The watchdog (PROTOCOL.md 8.4): before a pulse after the first of a pair or train,
        the host must have sent an intact frame within :data:`HEARTBEAT_TIMEOUT_US` (uptime).
        If not, the rest of that command is cancelled and reported with ``HEARTBEAT_LOST``."""
        if pulse.pulse_index == 0 or self.faults.ignore_heartbeat:
            return False
        silent_us = self.clock.uptime_us() - self._last_host_uptime
        if silent_us <= HEARTBEAT_TIMEOUT_US:
            return False
        self.heartbeat_stops += 1
        self._cancel_pulses()
        self._error(pulse.seq, MsgType.STIMULATE, ErrorCode.HEARTBEAT_LOST,
                    f"stopped after {pulse.pulse_index} of {pulse.pulse_count} pulses: "
                    f"no host frame for {silent_us / 1e6:.1f} s")  # fmt: skip
        return True

    def _emit_events_before(self, end_index: int) -> None:
        due = [p for p in self._pulses if p.emg_index < end_index]
        for p in due:
            t = self._sample_time_us(self._emg, p.emg_index)
            self._last_pulse = (self._config_number, p.emg_index, self.clock.uptime_us())
            ev = StimEvent(p.emg_index, t + self.faults.stim_time_error_us, p.intensity_ua,
                           p.width_us, p.pulse_index, p.pulse_count, p.counter)  # fmt: skip
            self._send(MsgType.STIM_EVENT, ev.pack(), t)
        self._pulses = [p for p in self._pulses if p.emg_index >= end_index]
        ready = [e for e in self._events if e[0] < end_index]
        for index, typ, payload in ready:
            self._send(typ, payload, self._sample_time_us(self._emg, index))
        self._events = [e for e in self._events if e[0] >= end_index]

    def _status(self) -> Status:
        return Status(int(self.state), self.battery_pct, 3700 + 5 * self.battery_pct, 3150,
                      self.overruns, self.dropped_samples)  # fmt: skip
