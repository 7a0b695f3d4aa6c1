"""Device conformance battery: does a device on a byte link speak protocol v1 correctly?

``run_conformance(link)`` runs every check in order and returns a :class:`Report` (a list of
:class:`Check` with PASS / FAIL / SKIP and a one-line detail). Each check is independent: a
failure is recorded and the battery carries on. The CLI is ``tonuslab conformance URL``.

Stimulation checks on a real device deliver two pulses at the device's lowest allowed intensity
(at most 1 mA) and shortest width, and the watchdog check the first pulses of a train (those of
the heartbeat timeout, at the same intensity); they run only when a key is given. The re-pairing
check also needs the device's pairing window open (its button held), else it is skipped. The
limits check sends signed over-limit commands; a conforming device refuses them all, a broken
one may deliver one (the battery stops there): bench devices with a load only. The device
clock and sampling-rate checks need a device in real time (they are skipped for the emulator
in fast mode). The checks and what each compares are listed in PROTOCOL.md section 10.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from firmware_iface import auth
from firmware_iface.client import DeviceClient, DeviceEvent, PingResult, SampleBlock
from firmware_iface.codec import encode_frame
from firmware_iface.errors import CommandRejected, CommandTimeout, ProtocolError
from firmware_iface.messages import (
    HEARTBEAT_TIMEOUT_US,
    Config,
    ErrorCode,
    MsgType,
    StimMode,
    Stimulate,
)

RATE_TOLERANCE_PPM = 100.0
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
#: The battery's checks, in the order they run.
CHECKS = (
    "silent until spoken to", "identify", "configuration round trip", "start/stop",
    "sequence continuity", "timestamps vs rate", "malformed commands", "stimulation auth",
    "re-pairing replay", "stimulation timing", "stimulation limits", "stimulation watchdog",
    "clock vs host", "sampling rate vs clock",
)  # fmt: skip


@dataclass
class Check:
    name: str
    status: str
    detail: str = ""


@dataclass
class Report:
    """Results of the battery; ``passed`` is True when nothing failed."""

    checks: list[Check] = field(default_factory=list)
    device: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def status(self, name: str) -> str:
        return next(c.status for c in self.checks if c.name == name)

    def table(self) -> str:
        width = max(len(c.name) for c in self.checks)
        lines = [f"{'check':<{width}}  result  detail"]
        lines += [f"{c.name:<{width}}  {c.status:<6}  {c.detail}" for c in self.checks]
        failed = sum(c.status == FAIL for c in self.checks)
        verdict = "device conforms" if not failed else "device does NOT conform"
        lines.append(f"{len(self.checks)} checks, {failed} failed: {verdict}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "device": self.device,
            "checks": [c.__dict__ for c in self.checks],
        }


def _collect(read, device_seconds: float, wall_limit_s: float):
    """Items from ``read`` until ``device_seconds`` of EMG arrived (or the wall-clock limit)."""
    items, first, last = [], None, None
    deadline = time.monotonic() + wall_limit_s
    while time.monotonic() < deadline:
        for it in read(0.2):
            items.append(it)
            if isinstance(it, SampleBlock) and it.stream == 0:
                first = it.device_time_us if first is None else first
                last = it.device_time_us
        if last is not None and last - first >= device_seconds * 1e6:
            break
    return items


def _lower_envelope(s: np.ndarray, h: np.ndarray, bin_s: float = 0.1, min_frames: int = 5):
    """Slope of host arrival time ``h`` against sample time ``s`` along the earliest arrivals.

    The earliest arrival in each ``bin_s`` of samples (bins with at least ``min_frames``
    frames), then a straight line through them, twice dropping the minima held up on the host
    (more than 3 robust standard deviations above the line). Returns ``(slope, uncertainty of
    the slope, span of s in s)``, or None with fewer than 5 usable bins. Each minimum lies
    above the true floor by an unknown delay; the range of their residuals bounds how much
    those delays can differ from one end of the span to the other, hence the uncertainty
    ``range / span``.
    """
    bins = np.floor(s / bin_s).astype(np.int64)
    xs, ys = [], []
    for b in np.unique(bins):
        members = np.flatnonzero(bins == b)
        if len(members) >= min_frames:
            k = members[np.argmin(h[members] - s[members])]
            xs.append(s[k])
            ys.append(h[k])
    xs, ys = np.asarray(xs), np.asarray(ys)
    if len(xs) < 5:
        return None
    for _ in range(2):
        slope, offset = np.polyfit(xs, ys, 1)
        resid = ys - (offset + slope * xs)
        sigma = 1.4826 * np.median(np.abs(resid - np.median(resid))) + 1e-6
        keep = resid - np.median(resid) < 3.0 * sigma
        if keep.sum() < 5 or keep.all():
            break
        xs, ys = xs[keep], ys[keep]
    slope, offset = np.polyfit(xs, ys, 1)
    resid = ys - (offset + slope * xs)
    span = xs.max() - xs.min()
    return slope, (resid.max() - resid.min()) / span, span


def _expect_error(client: DeviceClient, codes, send) -> str | None:
    """Run ``send``; None if it raised CommandRejected with one of ``codes``, else a problem."""
    try:
        send()
    except CommandRejected as exc:
        if exc.code in codes:
            return None
        return f"wrong error code {exc.code} ({str(exc)[:60]})"
    except CommandTimeout:
        return "no reply (silence)"
    return "accepted instead of refused"


class _Battery:
    def __init__(self, link, stim_key, seconds, timeout_s, realtime_factor):
        self.client = DeviceClient(link, stim_key=stim_key, command_timeout_s=timeout_s, retries=0)
        self.key = stim_key
        self.seconds = seconds
        self.wall = seconds * realtime_factor + 5.0
        self.report = Report()
        self.info = None
        self.stream_items: list = []
        self.quiet_s = 0.3
        self.first_ping: PingResult | None = None
        self.arrivals: list[tuple[int, float]] = []  # (EMG end index, host arrival time)
        self.arrival_rate: int | None = None  # EMG rate of the configuration they belong to

    def add(self, name, status, detail=""):
        self.report.checks.append(Check(name, status, detail))

    def run(self, name, func):
        try:
            result = func()
        except ProtocolError as exc:
            self.add(name, FAIL, str(exc))
            return
        status, detail = result
        self.add(name, status, detail)

    def read(self, timeout_s: float):
        """``client.read`` that also records when each EMG frame arrived (sampling-rate check)."""
        items = self.client.read(timeout_s)
        if self.arrival_rate is not None:
            self.arrivals += [
                (b.end_index, b.host_time_s)
                for b in items
                if isinstance(b, SampleBlock) and b.stream == 0
            ]
        return items

    def realtime(self) -> bool:
        """Whether the device clock keeps pace with the host clock (False for a device running
        faster than real time, as the emulator does in fast mode)."""
        if self.first_ping is None:
            return False
        now = self.client.ping()
        host_span = now.host_recv_s - self.first_ping.host_recv_s
        dev_span = (now.device_tx_us - self.first_ping.device_tx_us) * 1e-6
        return host_span > 0.2 and 0.9 < dev_span / host_span < 1.1

    # ------------------------------------------------------------------ checks
    def silent_first(self):
        data = self.client.link.read(4096, self.quiet_s)
        if data:
            return FAIL, f"{len(data)} bytes arrived before the host spoke (a tty would lose them)"
        return PASS, f"no bytes in the first {self.quiet_s:g} s"

    def identify(self):
        info = self.client.identify()
        self.info = info
        self.report.device = {
            "serial": info.serial,
            "protocol": f"{info.protocol_major}.{info.protocol_minor}",
            "firmware": ".".join(map(str, info.fw_version)),
            "hardware": ".".join(map(str, info.hw_version)),
        }
        cfg = info.config
        problems = []
        if not info.serial:
            problems.append("empty serial number")
        if len(info.emg_channels) != cfg.n_emg or len(info.angle_channels) != cfg.n_angle:
            problems.append("channel table does not match the configuration")
        for ch in info.channels:
            if ch.unit not in ("uV", "deg") or not np.isfinite(ch.scale) or ch.scale == 0:
                problems.append(f"channel {ch.name}: unit {ch.unit!r}, scale {ch.scale}")
        if problems:
            return FAIL, "; ".join(problems)
        return PASS, (f"{info.serial}, protocol {info.protocol_major}.{info.protocol_minor}, "
                      f"{cfg.n_emg} EMG + {cfg.n_angle} goniometer channels")  # fmt: skip

    def configuration(self):
        if self.info is None:
            return FAIL, "no IDENTIFY reply"
        want = Config(
            emg_rate_hz=5000, angle_rate_hz=200 if self.info.config.n_angle else 100,
            n_emg=2, n_angle=min(1, self.info.config.n_angle), emg_bits=24, emg_gain=2,
        )  # fmt: skip
        got = self.client.configure(want)
        if got.config != want:
            return FAIL, f"configured {want}, device reports {got.config}"
        if len(got.emg_channels) != want.n_emg or len(got.angle_channels) != want.n_angle:
            return FAIL, "channel table does not follow the configuration"
        problem = _expect_error(
            self.client, {ErrorCode.OUT_OF_RANGE},
            lambda: self.client.command(MsgType.CONFIGURE, Config(emg_rate_hz=50_000).pack()),
        )  # fmt: skip
        if problem:
            return FAIL, f"out-of-range configuration: {problem}"
        self.info = self.client.identify()
        if self.info.config != want:
            return FAIL, "a refused configuration changed the device's configuration"
        self.arrival_rate = want.emg_rate_hz  # one sample clock from here to the end
        return PASS, "5 kHz x 2 ch x 24 bit, gain 2 applied and reported; 50 kHz refused"

    def start_stop(self):
        self.client.start()
        self.stream_items = _collect(self.read, self.seconds, self.wall)
        n = sum(b.n_samples for b in self.stream_items if isinstance(b, SampleBlock))
        if n == 0:
            return FAIL, "no samples after START"
        self.client.stop()
        self.read(0.3)  # frames in flight
        self.read(0.1)
        late = [b for b in self.read(0.5) if isinstance(b, SampleBlock)]
        if late:
            return FAIL, f"{len(late)} sample frames still arriving 0.4 s after STOP"
        return PASS, f"{n} samples streamed, silent after STOP"

    def continuity(self):
        blocks = [b for b in self.stream_items if isinstance(b, SampleBlock)]
        if not blocks:
            return FAIL, "no samples to check"
        stats = self.client.stats
        problems = []
        if stats.lost_frames:
            problems.append(f"{stats.lost_frames} frames lost (sequence gaps)")
        if self.client.decoder.stats.errors:
            problems.append(f"{self.client.decoder.stats.errors} corrupt frames")
        for stream in (0, 1):
            missing = stats.missing(stream)
            if missing:
                problems.append(f"stream {stream}: {missing} samples missing")
        if problems:
            return FAIL, "; ".join(problems)
        return PASS, f"{stats.frames} frames, no sequence gap, no missing sample"

    def timestamps(self):
        blocks = [b for b in self.stream_items if isinstance(b, SampleBlock)]
        cfg = self.info.config
        details = []
        for stream, rate in ((0, cfg.emg_rate_hz), (1, cfg.angle_rate_hz)):
            bs = [b for b in blocks if b.stream == stream]
            if len(bs) < 3:
                if stream == 0 or cfg.n_angle:
                    return FAIL, f"stream {stream}: too few frames to check timing"
                continue
            idx = np.array([b.first_index for b in bs], dtype=np.float64)
            t = np.array([b.device_time_us for b in bs], dtype=np.float64)
            slope = np.polyfit(idx - idx[0], t - t[0], 1)[0]
            ppm = (slope * rate / 1e6 - 1.0) * 1e6
            resid = t - t[0] - (idx - idx[0]) * 1e6 / rate
            jitter = np.max(np.abs(resid - np.median(resid)))
            details.append(f"stream {stream} {ppm:+.1f} ppm")
            if abs(ppm) > RATE_TOLERANCE_PPM:
                return FAIL, f"stream {stream}: timestamps run {ppm:+.0f} ppm off the {rate} Hz"
            if jitter > 1e6 / rate:
                return FAIL, f"stream {stream}: timestamps jump by {jitter:.0f} us (> 1 sample)"
        return PASS, ", ".join(details) + f" (limit {RATE_TOLERANCE_PPM:g})"

    def malformed(self):
        c = self.client
        problems = []
        cases = [
            ("unknown type", {ErrorCode.UNKNOWN_COMMAND}, lambda: c.command(0x3E)),
            ("truncated CONFIGURE", {ErrorCode.MALFORMED},
             lambda: c.command(MsgType.CONFIGURE, b"\x10\x27")),
            ("protocol major 2", {ErrorCode.UNSUPPORTED_VERSION},
             lambda: c.command(MsgType.IDENTIFY, version=0x20)),
        ]  # fmt: skip
        for name, codes, send in cases:
            problem = _expect_error(c, codes, send)
            if problem:
                problems.append(f"{name}: {problem}")
        before = c.stats.device_frame_errors
        bad = bytearray(encode_frame(MsgType.IDENTIFY, 0x7777, 0))
        bad[2] ^= 0xFF
        c.send_raw(bytes(bad))
        deadline = time.monotonic() + c.command_timeout_s
        while c.stats.device_frame_errors == before and time.monotonic() < deadline:
            self.read(0.05)
        if c.stats.device_frame_errors == before:
            problems.append("corrupt frame: no FRAME_ERROR reply")
        if problems:
            return FAIL, "; ".join(problems)
        return PASS, "unknown, truncated, wrong-version and corrupt frames all answered"

    def _stim_command(self, counter, key, serial, not_after_us=None):
        """A signed single pulse at the lowest intensity (<= 1 mA) and the shortest width, valid
        for the client's validity unless ``not_after_us`` is given."""
        lim = self.info.limits
        if not_after_us is None:
            not_after_us = self.client.stim_deadline_us()
        cmd = Stimulate(int(StimMode.SINGLE), 1, min(1000, lim.max_intensity_ua), lim.min_width_us,
                        0, counter, not_after_us)  # fmt: skip
        return auth.sign(cmd, key, serial)

    def unauthenticated(self):
        if not self.info.has_stimulator:
            return SKIP, "device reports no stimulator"
        c = self.client
        c.start()
        try:
            counter = self.info.last_stim_counter + 1_000_000
            wrong_key = bytes(x ^ 0xA5 for x in (self.key or bytes(32)))  # never the real key
            forged = self._stim_command(counter, wrong_key, self.info.serial)
            problems = []
            codes = {ErrorCode.AUTH_REQUIRED, ErrorCode.AUTH_FAILED}
            p = _expect_error(c, codes, lambda: c.command(MsgType.STIMULATE, forged.pack()))
            if p:
                problems.append(f"wrong key: {p}")
            unsigned = Stimulate(0, 1, 1000, self.info.limits.min_width_us, 0, counter,
                                 c.stim_deadline_us())  # fmt: skip
            p = _expect_error(c, codes, lambda: c.command(MsgType.STIMULATE, unsigned.pack()))
            if p:
                problems.append(f"no MAC: {p}")
            if self.key is not None:
                # signed and fresh, but held back past its deadline / valid for a minute
                uptime = c.stim_deadline_us(0.0, resync=True)
                late = [("deadline passed", max(0, uptime - 1_000_000)),
                        ("deadline 60 s ahead", uptime + 60_000_000)]  # fmt: skip
                for k, (name, not_after) in enumerate(late):
                    cmd = self._stim_command(self.info.last_stim_counter + 1 + k, self.key,
                                             self.info.serial, not_after)  # fmt: skip
                    p = _expect_error(
                        c, {ErrorCode.EXPIRED}, lambda m=cmd: c.command(MsgType.STIMULATE, m.pack())
                    )
                    if p:
                        problems.append(f"{name}: {p}")
                info = c.identify()
                replay = self._stim_command(info.last_stim_counter, self.key, info.serial)
                p = _expect_error(
                    c, {ErrorCode.REPLAY}, lambda: c.command(MsgType.STIMULATE, replay.pack())
                )
                if p and info.last_stim_counter > 0:
                    problems.append(f"replayed counter: {p}")
            stims = [e for e in self.read(0.3) if isinstance(e, DeviceEvent) and e.kind == "stim"]
            if stims:
                problems.append(f"{len(stims)} pulses delivered without authentication")
        finally:
            c.stop()
        if problems:
            return FAIL, "; ".join(problems)
        return PASS, "forged and unsigned STIMULATE refused" + (
            ", expired and replayed refused" if self.key is not None else ""
        )

    def repair_replay(self):
        """A command signed before PAIR is refused after it: the counter never goes back.

        The "recorded" command (signed, valid for 8 s) is sent while idle, so its valid MAC
        consumes its counter and the device answers ``BAD_STATE`` without a pulse; then PAIR
        with the same key (the pairing window must be open: the operator holds the button),
        then the same bytes again while streaming: ``REPLAY``. A device that resets its counter
        at PAIR accepts them, and after a power cycle (when the uptime has reached the old
        deadline again) would accept a command recorded in an earlier boot (PROTOCOL.md 8.2).
        """
        if not self.info.has_stimulator:
            return SKIP, "device reports no stimulator"
        if self.key is None:
            return SKIP, "needs the device's stimulation key (--key-file)"
        c = self.client
        info = c.identify()
        counter = info.last_stim_counter + 1
        recorded = self._stim_command(counter, self.key, info.serial,
                                      c.stim_deadline_us(8.0, resync=True))  # fmt: skip
        p = _expect_error(
            c, {ErrorCode.BAD_STATE}, lambda: c.command(MsgType.STIMULATE, recorded.pack())
        )
        if p:
            return FAIL, f"signed STIMULATE while idle: {p}"
        try:
            c.command(MsgType.PAIR, bytes(self.key))
        except CommandRejected as exc:
            if exc.code == ErrorCode.PAIRING_CLOSED:
                return SKIP, ("needs the pairing window: hold the device's pairing button "
                              "while the battery runs (PAIR refused: PAIRING_CLOSED)")  # fmt: skip
            raise
        problems = []
        after = c.identify().last_stim_counter
        if after < counter:
            problems.append(f"PAIR moved the counter back from {counter} to {after}")
        c.start()
        try:
            p = _expect_error(
                c, {ErrorCode.REPLAY}, lambda: c.command(MsgType.STIMULATE, recorded.pack())
            )
            if p:
                problems.append(f"command signed before PAIR, sent again after it: {p}")
            stims = [e for e in self.read(0.3) if isinstance(e, DeviceEvent) and e.kind == "stim"]
            if stims:
                problems.append(f"{len(stims)} pulse(s) delivered from a replayed command")
        finally:
            c.stop()
        if problems:
            return FAIL, "; ".join(problems)
        return PASS, f"counter kept across PAIR ({after}); the earlier command is a REPLAY"

    def stim_timing(self):
        if not self.info.has_stimulator:
            return SKIP, "device reports no stimulator"
        if self.key is None:
            return SKIP, "needs the device's stimulation key (--key-file)"
        c = self.client
        lim = self.info.limits
        rate = self.info.config.emg_rate_hz
        interval_us = max(50_000, lim.min_interval_us)
        c.start()
        try:
            items = _collect(self.read, 0.1, self.wall)
            realtime = self.realtime()
            sync = c.ping()  # device clock just before the command (also the deadline's sync)
            sent = time.monotonic()
            accepted = c.stimulate(min(1.0, lim.max_intensity_ua / 1000), lim.min_width_us,
                                   mode="pair", interval_ms=interval_us / 1000)  # fmt: skip
            acked = time.monotonic()
            # read until the EMG samples past the second pulse have arrived
            last_pulse = accepted.first_emg_index + round(interval_us * rate / 1e6)
            deadline = time.monotonic() + self.wall
            while time.monotonic() < deadline:
                new = self.read(0.2)
                items += new
                ends = [b.end_index for b in new if isinstance(b, SampleBlock) and b.stream == 0]
                if ends and max(ends) > last_pulse + rate // 10:
                    break
        finally:
            c.stop()
        stims = [e for e in items if isinstance(e, DeviceEvent) and e.kind == "stim"]
        stims = [e for e in stims if e.message.counter == accepted.counter]
        if [e.message.pulse_index for e in stims] != [0, 1]:
            return FAIL, f"expected 2 STIM_EVENTs (pulse 0 and 1), got {len(stims)}"
        problems = []
        if stims[0].emg_sample_index != accepted.first_emg_index:
            problems.append("first pulse not at the acknowledged sample")
        step = stims[1].emg_sample_index - stims[0].emg_sample_index
        if step != round(interval_us * rate / 1e6):
            problems.append(f"pulses {step} samples apart, expected {interval_us * rate / 1e6:g}")
        blocks = [b for b in items if isinstance(b, SampleBlock) and b.stream == 0]
        for e in stims:
            home = [b for b in blocks if b.first_index <= e.emg_sample_index < b.end_index]
            if not home:
                problems.append("pulse sample never received")
                continue
            b = home[0]
            expected = b.device_time_us + (e.emg_sample_index - b.first_index) * 1e6 / rate
            if abs(e.device_time_us - expected) > 0.5e6 / rate + 1:
                problems.append(
                    f"pulse {e.message.pulse_index} time off its sample by "
                    f"{e.device_time_us - expected:+.0f} us"
                )
            if e.message.width_us != lim.min_width_us:
                problems.append("reported width differs from the command")
        arrival = self._pulse_after_command(stims[0], sync, sent, acked, rate, realtime)
        if arrival:
            problems.append(arrival)
        if problems:
            return FAIL, "; ".join(problems)
        where = "2 ms after the command" if realtime else "after the command (not timed: fast)"
        return PASS, f"pair {interval_us / 1000:g} ms apart at sample precision, {where}"

    @staticmethod
    def _pulse_after_command(pulse, sync, sent, acked, rate, realtime) -> str | None:
        """PROTOCOL 4.5: the first pulse is the first EMG sample at least 2 ms after the command.

        Always: the pulse follows the PING reply sent before the command by >= 2 ms. In real
        time also against the host clock: the command arrived after the host sent it and before
        the host had its ACK (mapped to the device clock with the PING, within half its round
        trip), so the pulse lies in ``[sent + 2 ms, acked + 2 ms + 1 sample]``.
        """

        def device_time(host_s):  # the device clock at a host time, modulo 2^32 like the header
            mid = 0.5 * (sync.host_send_s + sync.host_recv_s)
            return 0.5 * (sync.device_rx_us + sync.device_tx_us) + (host_s - mid) * 1e6

        def after(t_us, reference_us):  # t - reference, 32-bit wrap-around as in section 6
            return (t_us - reference_us + 2**31) % 2**32 - 2**31

        t = pulse.device_time_us
        if after(t, sync.device_tx_us) < 2000:
            return (f"first pulse {after(t, sync.device_tx_us) / 1000:+.1f} ms after a PING "
                    "answered before the command (>= 2 ms after the command)")  # fmt: skip
        if not realtime:
            return None
        tolerance_us = 0.5 * sync.rtt_s * 1e6 + 500.0
        early = after(t, device_time(sent) + 2000)
        if early < -tolerance_us:
            return f"first pulse {-early / 1000:.1f} ms earlier than 2 ms after the command"
        late = after(t, device_time(acked) + 2000 + 1e6 / rate)
        if late > tolerance_us:
            return f"first pulse {late / 1000:.1f} ms later than the first sample 2 ms after it"
        return None

    def stim_limits(self):
        """Signed, fresh, over-limit commands: each refused with STIM_LIMIT and no pulse."""
        if not self.info.has_stimulator:
            return SKIP, "device reports no stimulator"
        if self.key is None:
            return SKIP, "needs the device's stimulation key (--key-file)"
        c, lim = self.client, self.info.limits
        low = min(1000, lim.max_intensity_ua)
        width, step = lim.min_width_us, max(lim.min_interval_us, 1)
        # from the most harmless probe to the least; each exceeds one limit by the smallest
        # step with everything else at its minimum, and the battery stops at the first one
        # delivered (on a bench: a load, never a person)
        probes = []
        if lim.min_interval_us > 0:
            probes.append(("interval", StimMode.PAIR, 2, low, width, lim.min_interval_us - 1))
        probes.append(("pulse count", StimMode.TRAIN, lim.max_pulses + 1, low, width, step))
        if width > 1:
            probes.append(("width below minimum", StimMode.SINGLE, 1, low, width - 1, 0))
        probes += [
            ("width above maximum", StimMode.SINGLE, 1, low, lim.max_width_us + 1, 0),
            ("intensity", StimMode.SINGLE, 1, lim.max_intensity_ua + 1, width, 0),
        ]
        problems = []
        c.start()
        try:
            _collect(self.read, 0.05, self.wall)
            info = c.identify()
            counter = info.last_stim_counter
            for name, mode, count, intensity, w, interval in probes:
                counter += 1
                cmd = Stimulate(int(mode), count, intensity, w, interval, counter,
                                c.stim_deadline_us())  # fmt: skip
                cmd = auth.sign(cmd, self.key, info.serial)
                p = _expect_error(
                    c, {ErrorCode.STIM_LIMIT}, lambda m=cmd: c.command(MsgType.STIMULATE, m.pack())
                )
                if p:
                    problems.append(f"{name}: {p}")
                    if p.startswith("accepted"):
                        break
            stims = [e for e in self.read(0.3) if isinstance(e, DeviceEvent) and e.kind == "stim"]
            if stims:
                problems.append(f"{len(stims)} pulses delivered beyond the limits")
        finally:
            c.stop()
        if problems:
            return FAIL, "; ".join(problems)
        return PASS, "over-limit interval, pulse count, width and intensity refused, no pulse"

    def watchdog(self):
        """A train sent without any heartbeat afterwards must stop (PROTOCOL.md 8.4).

        A signed train of ``min(max_pulses, 50)`` pulses lasting the heartbeat timeout + 2 s at
        the lowest intensity, sent with a raw command (no heartbeat thread); then the host
        sends nothing, and does not even read, for the timeout + 1.5 s (a device that runs
        faster than real time then waits for the link, while its uptime runs on); then it
        reads until the train's planned end. Fewer pulses than the train's must arrive, with a
        ``HEARTBEAT_LOST`` report; in real time, none later than the timeout + 0.5 s after the
        first.
        """
        if not self.info.has_stimulator:
            return SKIP, "device reports no stimulator"
        if self.key is None:
            return SKIP, "needs the device's stimulation key (--key-file)"
        c, lim = self.client, self.info.limits
        rate = self.info.config.emg_rate_hz
        n = max(2, min(lim.max_pulses, 50))
        interval_us = max(lim.min_interval_us, -(-(HEARTBEAT_TIMEOUT_US + 2_000_000) // (n - 1)))
        silence_s = HEARTBEAT_TIMEOUT_US * 1e-6 + 1.5
        c.end_heartbeat()  # the heartbeat of an earlier pair would keep the train alive
        c.start()
        try:
            _collect(self.read, 0.05, self.wall)
            realtime = self.realtime()
            info = c.identify()
            cmd = Stimulate(int(StimMode.TRAIN), n, min(1000, lim.max_intensity_ua),
                            lim.min_width_us, interval_us, info.last_stim_counter + 1,
                            c.stim_deadline_us())  # fmt: skip
            body = c.command(MsgType.STIMULATE, auth.sign(cmd, self.key, info.serial).pack())
            first = int(np.frombuffer(body[4:8], "<u4")[0]) if len(body) >= 8 else None
            time.sleep(silence_s)  # the host is frozen: nothing sent, nothing read
            items = []
            end = None if first is None else first + round(n * interval_us * rate / 1e6)
            deadline = time.monotonic() + self.wall + n * interval_us * 1e-6
            while time.monotonic() < deadline:  # not self.read: a backlog, no arrival times
                new = c.read(0.2)
                items += new
                ends = [b.end_index for b in new if isinstance(b, SampleBlock) and b.stream == 0]
                if end is not None and ends and max(ends) % (1 << 32) >= end % (1 << 32):
                    break
        finally:
            c.stop()
        stims = [e for e in items if isinstance(e, DeviceEvent) and e.kind == "stim"]
        stims = [e for e in stims if e.message.counter == cmd.counter]
        reports = [e for e in items if isinstance(e, DeviceEvent) and e.kind == "watchdog"]
        if len(stims) >= n and not realtime:
            # a device faster than real time ran the train ahead, into the link's buffers,
            # before its uptime (real time) reached the timeout: nothing to conclude
            return SKIP, (
                "the device ran the whole train faster than real time, before the heartbeat "
                "timeout passed on its uptime; run the battery in real time"
            )
        problems = []
        if len(stims) >= n:
            problems.append(f"all {n} pulses delivered without a heartbeat")
        if not reports:
            problems.append("no HEARTBEAT_LOST report")
        if realtime and len(stims) >= 2:
            span = (stims[-1].emg_sample_index - stims[0].emg_sample_index) / rate
            if span > HEARTBEAT_TIMEOUT_US * 1e-6 + 0.5:
                problems.append(f"pulses went on for {span:.1f} s without a heartbeat")
        if problems:
            return FAIL, "; ".join(problems)
        return PASS, (f"train stopped after {len(stims)} of {n} pulses without a heartbeat "
                      f"(timeout {HEARTBEAT_TIMEOUT_US / 1e6:g} s)")  # fmt: skip

    def sampling_rate(self, first):
        """The sample clock against the device clock (section 6: the sample clock is the clock).

        Frames leave the device when their last sample is complete, so the earliest arrivals
        (the lower envelope of host arrival time against ``end_index / rate``) progress at
        the true sampling rate on the host clock; the PINGs give the device clock on the host
        clock. Their ratio is the sampling rate against the device clock. Sample numbers run
        on while the device is idle, so every streaming period of the battery counts.
        """
        if first is None:
            return FAIL, "no PING reply at the start"
        if not self.realtime():
            return SKIP, "device runs faster than real time: no clock to compare the rate with"
        last = self.best_ping()
        rate = self.arrival_rate
        if rate is None or len(self.arrivals) < 20:
            return FAIL, "too few EMG frames to time"
        s = np.array([a[0] for a in self.arrivals], dtype=np.float64) / rate
        h = np.array([a[1] for a in self.arrivals], dtype=np.float64)
        s -= s[0]
        h -= h[0]
        if s[-1] - s.min() < 1.0:
            return SKIP, "less than 1 s of samples to time"
        fit = _lower_envelope(s, h)
        if fit is None:
            return SKIP, "too few streaming periods to time the samples"
        slope, slope_uncertainty, span = fit
        sample_per_host = 1.0 / slope
        host_span = 0.5 * (last.host_send_s + last.host_recv_s - first.host_send_s
                           - first.host_recv_s)  # fmt: skip
        device_per_host = 0.5 * (last.device_rx_us + last.device_tx_us - first.device_rx_us
                                 - first.device_tx_us) * 1e-6 / host_span  # fmt: skip
        ppm = (sample_per_host / device_per_host - 1.0) * 1e6
        uncertainty_ppm = (slope_uncertainty / slope
                           + 0.5 * (first.rtt_s + last.rtt_s) / host_span) * 1e6  # fmt: skip
        detail = (f"{ppm:+.0f} +/- {uncertainty_ppm:.0f} ppm against the device clock over "
                  f"{span:.1f} s of samples (limit {RATE_TOLERANCE_PPM:g})")  # fmt: skip
        if abs(ppm) - uncertainty_ppm > RATE_TOLERANCE_PPM:
            return FAIL, "sampling rate " + detail
        return PASS, detail

    def best_ping(self, n: int = 5):
        """The fastest of ``n`` round trips (least disturbed by queueing)."""
        return min((self.client.ping() for _ in range(n)), key=lambda p: p.rtt_s)

    def clock_rate(self, first):
        """Device clock against the host clock between two ping bursts."""
        if first is None:
            return FAIL, "no PING reply at the start"
        last = self.best_ping()
        host_span = 0.5 * (last.host_send_s + last.host_recv_s - first.host_send_s
                           - first.host_recv_s)  # fmt: skip
        dev_span = 0.5 * (last.device_rx_us + last.device_tx_us - first.device_rx_us
                          - first.device_tx_us) * 1e-6  # fmt: skip
        if host_span <= 0:
            return FAIL, "host clock did not advance"
        ratio = dev_span / host_span
        if not 0.9 < ratio < 1.1:
            return SKIP, f"device clock runs {ratio:.1f}x real time (emulator as fast as possible)"
        ppm = (ratio - 1.0) * 1e6
        uncertainty_ppm = 0.5 * (first.rtt_s + last.rtt_s) / host_span * 1e6
        detail = (f"{ppm:+.0f} +/- {uncertainty_ppm:.0f} ppm over {host_span:.1f} s "
                  f"(limit {RATE_TOLERANCE_PPM:g})")  # fmt: skip
        if abs(ppm) - uncertainty_ppm > RATE_TOLERANCE_PPM:
            return FAIL, "sample clock " + detail
        return PASS, detail

    def restore(self, original: Config | None):
        if original is not None:
            try:
                self.client.configure(original)
            except ProtocolError:
                pass


def run_conformance(
    link,
    *,
    stim_key: bytes | None = None,
    stream_seconds: float = 2.0,
    timeout_s: float = 1.0,
    realtime_factor: float = 2.0,
) -> Report:
    """Run the battery on ``link`` (a ByteLink); the device's configuration is restored after.

    Parameters
    ----------
    stim_key : bytes, optional
        The device's stimulation key; without it the pulse-timing check is skipped.
    stream_seconds : float
        Device seconds of streaming used by the continuity and timestamp checks.
    timeout_s : float
        Per-command reply timeout.
    realtime_factor : float
        Wall-clock allowance per device second when waiting for data.
    """
    b = _Battery(link, stim_key, stream_seconds, timeout_s, realtime_factor)
    b.run("silent until spoken to", b.silent_first)
    b.run("identify", b.identify)
    original = b.info.config if b.info else None
    if b.info is None:
        for name in CHECKS[2:]:
            b.add(name, FAIL, "device did not identify")
        return b.report
    try:
        first_ping = b.best_ping()
    except ProtocolError:
        first_ping = None
    b.first_ping = first_ping
    b.run("configuration round trip", b.configuration)
    b.run("start/stop", b.start_stop)
    b.run("sequence continuity", b.continuity)
    b.run("timestamps vs rate", b.timestamps)
    b.run("malformed commands", b.malformed)
    b.run("stimulation auth", b.unauthenticated)
    b.run("re-pairing replay", b.repair_replay)
    b.run("stimulation timing", b.stim_timing)
    b.run("stimulation limits", b.stim_limits)
    b.run("stimulation watchdog", b.watchdog)
    b.run("clock vs host", lambda: b.clock_rate(first_ping))
    b.run("sampling rate vs clock", lambda: b.sampling_rate(first_ping))
    b.restore(original)
    return b.report
