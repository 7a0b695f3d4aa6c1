"""Device conformance battery: does a device on a byte link speak protocol v1 correctly?

``run_conformance(link)`` runs every check in order and returns a :class:`Report` (a list of
:class:`Check` with PASS / FAIL / SKIP and a one-line detail). Each check is independent: a
failure is recorded and the battery carries on. The CLI is ``tonuslab conformance URL``.

Stimulation checks on a real device deliver two pulses at the device's lowest allowed intensity
(at most 1 mA) and shortest width; they run only when a key is given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from firmware_iface import auth
from firmware_iface.client import DeviceClient, DeviceEvent, SampleBlock
from firmware_iface.codec import encode_frame
from firmware_iface.errors import CommandRejected, CommandTimeout, ProtocolError
from firmware_iface.messages import Config, ErrorCode, MsgType, StimMode, Stimulate

RATE_TOLERANCE_PPM = 100.0
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


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


def _collect(client: DeviceClient, device_seconds: float, wall_limit_s: float):
    """Items until ``device_seconds`` of EMG arrived (or the wall-clock limit)."""
    items, first, last = [], None, None
    deadline = time.monotonic() + wall_limit_s
    while time.monotonic() < deadline:
        for it in client.read(0.2):
            items.append(it)
            if isinstance(it, SampleBlock) and it.stream == 0:
                first = it.device_time_us if first is None else first
                last = it.device_time_us
        if last is not None and last - first >= device_seconds * 1e6:
            break
    return items


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
        return PASS, "5 kHz x 2 ch x 24 bit, gain 2 applied and reported; 50 kHz refused"

    def start_stop(self):
        self.client.start()
        self.stream_items = _collect(self.client, self.seconds, self.wall)
        n = sum(b.n_samples for b in self.stream_items if isinstance(b, SampleBlock))
        if n == 0:
            return FAIL, "no samples after START"
        self.client.stop()
        self.client.read(0.3)  # frames in flight
        self.client.read(0.1)
        late = [b for b in self.client.read(0.5) if isinstance(b, SampleBlock)]
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
            c.read(0.05)
        if c.stats.device_frame_errors == before:
            problems.append("corrupt frame: no FRAME_ERROR reply")
        if problems:
            return FAIL, "; ".join(problems)
        return PASS, "unknown, truncated, wrong-version and corrupt frames all answered"

    def _stim_command(self, counter, key, serial):
        lim = self.info.limits
        cmd = Stimulate(int(StimMode.SINGLE), 1, min(1000, lim.max_intensity_ua), lim.min_width_us,
                        0, counter)  # fmt: skip
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
            unsigned = Stimulate(0, 1, 1000, self.info.limits.min_width_us, 0, counter)
            p = _expect_error(c, codes, lambda: c.command(MsgType.STIMULATE, unsigned.pack()))
            if p:
                problems.append(f"no MAC: {p}")
            if self.key is not None:
                info = c.identify()
                replay = self._stim_command(info.last_stim_counter, self.key, info.serial)
                p = _expect_error(
                    c, {ErrorCode.REPLAY}, lambda: c.command(MsgType.STIMULATE, replay.pack())
                )
                if p and info.last_stim_counter > 0:
                    problems.append(f"replayed counter: {p}")
            stims = [e for e in c.read(0.3) if isinstance(e, DeviceEvent) and e.kind == "stim"]
            if stims:
                problems.append(f"{len(stims)} pulses delivered without authentication")
        finally:
            c.stop()
        if problems:
            return FAIL, "; ".join(problems)
        return PASS, "forged and unsigned STIMULATE refused" + (
            ", replay refused" if self.key is not None else ""
        )

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
            items = _collect(c, 0.1, self.wall)
            accepted = c.stimulate(min(1.0, lim.max_intensity_ua / 1000), lim.min_width_us,
                                   mode="pair", interval_ms=interval_us / 1000)  # fmt: skip
            # read until the EMG samples past the second pulse have arrived
            last_pulse = accepted.first_emg_index + round(interval_us * rate / 1e6)
            deadline = time.monotonic() + self.wall
            while time.monotonic() < deadline:
                new = c.read(0.2)
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
        if problems:
            return FAIL, "; ".join(problems)
        return PASS, f"pair {interval_us / 1000:g} ms apart at sample precision"

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
        for name in ("configuration round trip", "start/stop", "sequence continuity",
                     "timestamps vs rate", "malformed commands", "stimulation auth",
                     "stimulation timing", "clock vs host"):  # fmt: skip
            b.add(name, FAIL, "device did not identify")
        return b.report
    try:
        first_ping = b.best_ping()
    except ProtocolError:
        first_ping = None
    b.run("configuration round trip", b.configuration)
    b.run("start/stop", b.start_stop)
    b.run("sequence continuity", b.continuity)
    b.run("timestamps vs rate", b.timestamps)
    b.run("malformed commands", b.malformed)
    b.run("stimulation auth", b.unauthenticated)
    b.run("stimulation timing", b.stim_timing)
    b.run("clock vs host", lambda: b.clock_rate(first_ping))
    b.restore(original)
    return b.report
