"""``bitalino://PORT_OR_MAC``: record a PLUX BITalino (r)evolution board over its serial protocol.

URL forms (options after ``?``, see docs/cli.md):

- ``bitalino:///dev/ttyUSB0`` or ``bitalino:///dev/pts/7``: a serial port (the USB cable, a
  paired Bluetooth board's ``/dev/rfcomm0``, or the emulator's pty), opened with pyserial at
  115200 baud;
- ``bitalino://HOST:PORT``: a TCP bridge (the emulator's ``--tcp``, a serial-to-TCP adapter);
- ``bitalino://20:16:07:18:13:37``: a Bluetooth MAC, over an RFCOMM socket (channel 1) where
  Python has ``socket.AF_BLUETOOTH`` (Linux with BlueZ); elsewhere one line says to pair the
  board and use its serial port.

Options: ``rate=1|10|100|1000`` (Hz, default 1000), ``emg=A1[,A3...]`` (EMG sensor ports,
default A1), ``gonio=A2`` and ``gonio_cal=CODE0:DEG0,CODE1:DEG1`` (an analog goniometer and its
two-point calibration, in 10-bit codes), ``ttl=I1|none`` (the digital input wired to a
stimulator's sync output, default I1), ``simulated=1`` (the board's own test signals),
``battery=0..63`` (battery-LED threshold), ``timeout=S`` (seconds to wait for the board).

The wire format is :mod:`firmware_iface.foreign.bitalino` (frames, CRC-4, 4-bit sequence). The
live half (:class:`BitalinoSource`) hands out the bytes exactly as read; the pure half
(:class:`BitalinoDecoder`) finds the frames, numbers them from the sequence (exact for up to 15
lost frames in a row; longer losses are resolved with the journalled host arrival times) and
turns them into blocks and stimulus events. A frame whose CRC fails is counted, never raised.

EMG is stored as the board's ADC codes with the published transfer function as scale/offset
(PLUX, *Electromyography (EMG) Sensor Data Sheet*, BITalino EMG REV B):

    EMG(V) = (ADC / 2**n - 1/2) * VCC / G_EMG,   VCC = 3.3 V, G_EMG = 1009,

``n`` = 10 bits on A1-A4 and 6 bits on A5-A6, so ``scale = VCC / 2**n / G_EMG * 1e6`` uV per
count and ``offset = 2**(n-1)`` counts (range +-1.64 mV).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import select
import socket
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from acquire.errors import SourceChannelError, SourceError, SourceNotFoundError
from acquire.sources.base import (
    ANGLE,
    EMG,
    OPEN_TAG,
    REOPEN_TAG,
    Block,
    Channel,
    Chunk,
    ConnectingSource,
    Decoder,
    Event,
    SourceInfo,
    SourceLost,
    SourceSpec,
)
from acquire.sources.hostclock import ArrivalStart
from firmware_iface.foreign import bitalino as bp

#: Serial speed of the BITalino (r)evolution.
BAUD = 115200
#: Default seconds to wait for the board's answers.
DEFAULT_TIMEOUT_S = 3.0
#: Host-side limits on O1 stimulator triggers (the operator sets the intensity on the stimulator).
TRIGGER_MAX_RATE_HZ = 2.0
TRIGGER_MAX_PULSES = 600
#: Length of an O1 trigger pulse, s (held high, then low).
TRIGGER_PULSE_S = 0.002
#: Host-clock silence after which a sequence jump may hide more than 15 lost frames, frames.
CLOCK_GAP_MIN_FRAMES = 15.5
#: Seconds the decoder waits, after a silence that may hide more than 15 lost frames, for the
#: bytes still on their way (a host that was slow reads a backlog; a board that was silent not).
SETTLE_S = 0.25
#: Seconds of arrival times that date the board's start (longer windows would let drift in).
CLOCK_WINDOW_S = 10.0

_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
OPTIONS = ("rate", "emg", "gonio", "gonio_cal", "ttl", "simulated", "battery", "timeout")


@dataclass(frozen=True)
class BitalinoOptions:
    """The parsed ``bitalino://`` URL (see the module docstring)."""

    kind: str  # "serial" | "tcp" | "bluetooth"
    address: str
    rate_hz: int = 1000
    emg: tuple[int, ...] = (0,)
    gonio: int | None = None
    gonio_cal: tuple[tuple[float, float], tuple[float, float]] | None = None
    ttl: int | None = 0
    simulated: bool = False
    battery: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def channels(self) -> tuple[int, ...]:
        """Analog channels of the start mask (0..5 = A1..A6), in slot order."""
        return tuple(sorted(set(self.emg) | ({self.gonio} - {None})))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> BitalinoOptions:
        d = dict(d)
        d["emg"] = tuple(d["emg"])
        if d.get("gonio_cal") is not None:
            d["gonio_cal"] = tuple(tuple(p) for p in d["gonio_cal"])
        return cls(**d)


def _analog(url: str, key: str, text: str) -> int:
    t = text.strip().upper()
    if not re.fullmatch(r"A[1-6]", t):
        raise SourceChannelError(f"{url}: {key}={text}: BITalino analog ports are A1..A6")
    return int(t[1]) - 1


def parse_bitalino_url(url: str) -> BitalinoOptions:
    """Parse ``bitalino://PORT_OR_MAC?...``.

    Raises
    ------
    acquire.errors.SourceError
        Not a ``bitalino://`` URL, an unknown option or a bad value (one line).
    acquire.errors.SourceChannelError
        A port that is not A1..A6 / I1..I2, or one given twice.
    """
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme.lower() != "bitalino":
        raise SourceError(f"not a BITalino URL: {url!r} (expected bitalino://PORT_OR_MAC)")
    query: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key in query:
            raise SourceError(f"{url}: option {key!r} is given twice")
        query[key] = value
    unknown = sorted(set(query) - set(OPTIONS))
    if unknown:
        raise SourceError(f"{url}: unknown option {unknown[0]!r}; known: {', '.join(OPTIONS)}")
    netloc, path = urllib.parse.unquote(parts.netloc), urllib.parse.unquote(parts.path)
    # a MAC has colons, which urlsplit may read as a port: take the text after // as it is
    raw = str(url).split("://", 1)[1].split("?", 1)[0]
    if _MAC.match(raw):
        kind, address = "bluetooth", raw.upper()
    elif path and not netloc:
        kind, address = "serial", path
    elif netloc and not path.strip("/"):
        host, sep, port = netloc.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise SourceError(
                f"{url}: give a serial port (bitalino:///dev/ttyUSB0), HOST:PORT or a MAC"
            )
        kind, address = "tcp", netloc
    else:
        raise SourceError(
            f"{url}: give a serial port (bitalino:///dev/ttyUSB0), HOST:PORT or a MAC"
        )
    try:
        rate = int(float(query.get("rate", "1000")))
        bp.cmd_sampling_rate(float(query.get("rate", "1000")))
    except (ValueError, bp.BitalinoCommandError):
        raise SourceError(
            f"{url}: rate must be 1, 10, 100 or 1000 Hz, got {query.get('rate')!r}"
        ) from None
    emg = tuple(_analog(url, "emg", c) for c in query.get("emg", "A1").split(",") if c.strip())
    if not emg or len(set(emg)) != len(emg):
        raise SourceChannelError(f"{url}: emg= needs distinct ports, e.g. emg=A1,A3")
    gonio = _analog(url, "gonio", query["gonio"]) if query.get("gonio") else None
    if gonio is not None and gonio in emg:
        raise SourceChannelError(f"{url}: A{gonio + 1} is given both as EMG and as goniometer")
    cal = None
    if gonio is not None:
        if "gonio_cal" not in query:
            raise SourceError(
                f"{url}: gonio=A{gonio + 1} needs its two-point calibration: "
                "gonio_cal=CODE0:DEG0,CODE1:DEG1"
            )
        cal = _two_points(url, query["gonio_cal"])
    elif "gonio_cal" in query:
        raise SourceError(f"{url}: gonio_cal= without gonio=A1..A6")
    ttl_text = query.get("ttl", "I1").strip().upper()
    if ttl_text not in ("I1", "I2", "NONE"):
        raise SourceChannelError(f"{url}: ttl must be I1, I2 or none, got {query['ttl']!r}")
    ttl = None if ttl_text == "NONE" else int(ttl_text[1]) - 1
    simulated = query.get("simulated", "0").strip().lower()
    if simulated not in ("0", "1", "true", "false", "yes", "no"):
        raise SourceError(f"{url}: simulated must be 0 or 1, got {query['simulated']!r}")
    battery = None
    if "battery" in query:
        try:
            battery = int(query["battery"])
            bp.cmd_battery_threshold(battery)
        except (ValueError, bp.BitalinoCommandError):
            raise SourceError(f"{url}: battery must be 0..63, got {query['battery']!r}") from None
    try:
        timeout = float(query.get("timeout", DEFAULT_TIMEOUT_S))
    except ValueError:
        timeout = -1.0
    if not (math.isfinite(timeout) and timeout > 0):
        raise SourceError(f"{url}: timeout must be a positive number of seconds")
    opts = BitalinoOptions(
        kind=kind, address=address, rate_hz=rate, emg=emg, gonio=gonio, gonio_cal=cal, ttl=ttl,
        simulated=simulated in ("1", "true", "yes"), battery=battery, timeout_s=timeout,
    )  # fmt: skip
    bp.channel_mask(opts.channels)
    return opts


def _two_points(url: str, text: str) -> tuple[tuple[float, float], tuple[float, float]]:
    try:
        pts = tuple(tuple(float(v) for v in p.split(":")) for p in text.split(",") if p.strip())
        if len(pts) != 2 or any(len(p) != 2 for p in pts):
            raise ValueError
        (x0, y0), (x1, y1) = pts
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x0 == x1 or y0 == y1:
            raise ValueError
    except ValueError:
        raise SourceError(
            f"{url}: gonio_cal must be two distinct points RAW0:DEG0,RAW1:DEG1, got {text!r}"
        ) from None
    return (x0, y0), (x1, y1)


def two_point_line(cal) -> tuple[float, float]:
    """``(degrees per raw unit, raw value at 0 degrees)`` of a two-point calibration."""
    (x0, y0), (x1, y1) = cal
    slope = (y1 - y0) / (x1 - x0)
    return slope, x0 - y0 / slope


# ----------------------------------------------------------------------------- transport
class _Port:
    """Bytes to and from the board: a serial port, a TCP socket or an RFCOMM socket."""

    def __init__(self, opts: BitalinoOptions, url: str) -> None:
        self.kind = opts.kind
        self._serial = None
        self._sock = None
        try:
            if opts.kind == "serial":
                import serial

                self._serial = serial.Serial(opts.address, BAUD, timeout=0)
            elif opts.kind == "tcp":
                host, _, port = opts.address.rpartition(":")
                self._sock = socket.create_connection((host, int(port)), timeout=opts.timeout_s)
                self._sock.setblocking(False)
            else:
                family = getattr(socket, "AF_BLUETOOTH", None)
                proto = getattr(socket, "BTPROTO_RFCOMM", None)
                if family is None or proto is None:
                    raise SourceError(
                        f"{url}: Bluetooth RFCOMM sockets are not available in this Python; "
                        "pair the board and record its serial port (bitalino:///dev/rfcomm0)"
                    )
                self._sock = socket.socket(family, socket.SOCK_STREAM, proto)
                self._sock.settimeout(opts.timeout_s)
                self._sock.connect((opts.address, 1))
                self._sock.setblocking(False)
        except SourceError:
            raise
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
            raise SourceNotFoundError(f"{url}: cannot open {opts.address} ({reason})") from None
        except Exception as exc:  # serial.SerialException
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            reason = reason.rsplit("] ", 1)[-1].rstrip("'\"")  # "[Errno 2] No such file..."
            raise SourceNotFoundError(f"{url}: cannot open {opts.address} ({reason})") from None

    def write(self, data: bytes) -> None:
        try:
            if self._serial is not None:
                self._serial.write(data)
                self._serial.flush()
            else:
                self._sock.sendall(data)
        except Exception as exc:
            raise SourceLost(f"the BITalino port failed ({exc})") from None

    def read(self, timeout_s: float) -> bytes:
        """Bytes available within ``timeout_s`` (b"" if none); :class:`SourceLost` if gone."""
        try:
            fd = self._serial.fileno() if self._serial is not None else self._sock
            r, _, _ = select.select([fd], [], [], max(0.0, timeout_s))
            if not r:
                return b""
            if self._serial is not None:
                data = os.read(self._serial.fileno(), 65536)
            else:
                data = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return b""
        except Exception as exc:
            raise SourceLost(f"the BITalino port failed ({exc})") from None
        if not data:
            raise SourceLost("the BITalino port was closed")
        return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._serial is not None:
                self._serial.close()
            if self._sock is not None:
                self._sock.close()
        self._serial = self._sock = None


class BitalinoSource(ConnectingSource):
    """The live board of one ``bitalino://`` URL.

    Parameters
    ----------
    url : str
        ``bitalino://PORT_OR_MAC?...`` (module docstring).

    Notes
    -----
    Capability ``"trigger_output"``: :meth:`trigger` raises O1 for :data:`TRIGGER_PULSE_S`
    (an external stimulator's trigger input), at most :data:`TRIGGER_MAX_RATE_HZ` pulses per
    second and :data:`TRIGGER_MAX_PULSES` per recording; :meth:`stop_triggers` refuses every
    later pulse at once. The intensity is never sent: it stays on the stimulator's dial, which
    the operator sets when prompted.
    """

    scheme = "bitalino"
    capabilities = frozenset({"trigger_output"})

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.options = parse_bitalino_url(url)
        self._port: _Port | None = None
        self._pulses = 0
        self._last_pulse = -math.inf
        self._stopped = False
        self._pending = b""

    # ------------------------------------------------------------------------------ lifecycle
    def make_decoder(self, description: Mapping) -> BitalinoDecoder:
        return BitalinoDecoder(description)

    def close(self) -> None:
        if self._port is not None:
            with contextlib.suppress(Exception):
                self._port.write(bytes([bp.CMD_STOP_ANY]))
            self._port.close()
        self._port = None

    def _ask(self, command: int, n: int | None, what: str) -> bytes:
        """Send one command; read ``n`` bytes (or one ``\\n``-ended line) within the timeout."""
        port = self._port
        port.write(bytes([command]))
        deadline = time.monotonic() + self.options.timeout_s
        buf = b""
        while time.monotonic() < deadline:
            buf += port.read(min(0.05, max(0.0, deadline - time.monotonic())))
            if (n is None and b"\n" in buf) or (n is not None and len(buf) >= n):
                return buf
        raise SourceNotFoundError(
            f"{self.url}: no BITalino answered the {what} command on {self.options.address} "
            f"within {self.options.timeout_s:g} s (is it on, and the right port?)"
        )

    def _connect(self) -> dict:
        opts = self.options
        self._port = _Port(opts, self.url)
        try:
            self._port.write(bytes([bp.CMD_STOP_ANY]))  # idle, whatever it was doing
            time.sleep(0.05)
            with contextlib.suppress(SourceLost):
                while self._port.read(0.05):
                    pass
            line = self._ask(bp.CMD_VERSION, None, "version")
            text = line.split(b"\n", 1)[0].decode("ascii", "replace").strip()
            if not text.startswith("BITalino"):
                raise SourceError(
                    f"{self.url}: the device on {opts.address} is not a BITalino "
                    f"(it answered {text[:40]!r} to the version command)"
                )
            state = None
            if opts.battery is not None:
                self._port.write(bytes([bp.cmd_battery_threshold(opts.battery)]))
            if _is_revolution(text):
                state = bp.decode_state(self._ask(bp.CMD_STATE, bp.STATE_REPLY_BYTES, "state"))
            self._port.write(bytes([bp.cmd_sampling_rate(opts.rate_hz)]))
            self._port.write(bytes([bp.cmd_start(opts.channels, simulated=opts.simulated)]))
        except BaseException:
            self.close()
            raise
        self._pending = b""
        return {
            "url": self.url,
            "options": opts.to_dict(),
            "version": text,
            "state": state,
            "started_host_s": time.monotonic(),
        }

    # ------------------------------------------------------------------------------ reading
    def read(self, timeout_s: float) -> list[Chunk]:
        if self._port is None:
            raise SourceLost("the BITalino port is closed")
        data = self._port.read(timeout_s)
        if not data:
            return []
        arr = np.frombuffer(data, dtype=np.uint8).copy()
        return [Chunk("data", {}, {"bytes": arr}, time.monotonic())]

    # ------------------------------------------------------------------------------ trigger
    def trigger(self, **params) -> int | None:
        """Raise O1 for one pulse (an external stimulator's trigger), within the host limits.

        Returns None: the pulse's sample is the stimulator's TTL edge on I1, when wired.

        Raises
        ------
        acquire.errors.SourceError
            Triggers were stopped, the rate limit or the pulse count would be exceeded.
        """
        if self._stopped:
            raise SourceError(f"{self.url}: stimulator triggers were stopped")
        now = time.monotonic()
        if now - self._last_pulse < 1.0 / TRIGGER_MAX_RATE_HZ:
            raise SourceError(
                f"{self.url}: trigger refused: more than {TRIGGER_MAX_RATE_HZ:g} pulses per "
                "second (host safety limit)"
            )
        if self._pulses >= TRIGGER_MAX_PULSES:
            raise SourceError(
                f"{self.url}: trigger refused: {TRIGGER_MAX_PULSES} pulses already "
                "(host safety limit)"
            )
        if self._port is None:
            raise SourceError(f"{self.url}: the BITalino is not open")
        self._last_pulse = now
        self._pulses += 1
        self._port.write(bytes([bp.cmd_digital_out(1, 0)]))
        time.sleep(TRIGGER_PULSE_S)
        self._port.write(bytes([bp.cmd_digital_out(0, 0)]))
        return None

    def stop_triggers(self) -> None:
        """Immediate stop: O1 low now, and every later :meth:`trigger` is refused."""
        self._stopped = True
        if self._port is not None:
            with contextlib.suppress(SourceLost):
                self._port.write(bytes([bp.cmd_digital_out(0, 0)]))


def _is_revolution(version: str) -> bool:
    m = re.search(r"v(\d+)\.(\d+)", version)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= (4, 2)


# ----------------------------------------------------------------------------- decoder
class BitalinoDecoder(Decoder):
    """Journalled BITalino bytes -> EMG and angle blocks, stimulus events (pure).

    Parameters
    ----------
    description : mapping
        ``{"url", "options" (BitalinoOptions.to_dict()), "version", "state",
        "started_host_s"}`` from :meth:`BitalinoSource.open`.

    Notes
    -----
    Chunks tagged ``data`` hold ``arrays["bytes"]`` (uint8) exactly as read. Sample indices are
    frame numbers from the 4-bit sequence (``index_origin = "counter"``): a jump of ``d`` is
    ``d - 1`` lost frames exactly; when the host clock says more than 15 frames went missing,
    the multiple of 16 nearest to the host's estimate is taken. Corrupt frames (CRC) are
    counted in ``stats``, never raised. Rising edges of the ``ttl`` input are stimulus events
    at exactly that frame (intensity unknown: NaN, filled from the operator's prompt by the
    recorder).
    """

    def __init__(self, description: Mapping) -> None:
        super().__init__(description)
        self.options = BitalinoOptions.from_dict(self.description["options"])
        opts = self.options
        chans = opts.channels
        self._slots_emg = [chans.index(c) for c in opts.emg]
        self._slot_gonio = None if opts.gonio is None else chans.index(opts.gonio)
        channels = []
        for c, slot in zip(opts.emg, self._slots_emg, strict=True):
            scale, offset = bp.emg_uv_scale(bp.SLOT_BITS[slot])
            channels.append(Channel(f"A{c + 1}", "emg", "uV", scale, offset))
        angle_rate = None
        if self._slot_gonio is not None:
            slope, zero = two_point_line(opts.gonio_cal)  # per 10-bit code
            shift = 10 - bp.SLOT_BITS[self._slot_gonio]
            channels.append(
                Channel(f"A{opts.gonio + 1}", "angle", "deg", slope * (1 << shift),
                        zero / (1 << shift))
            )  # fmt: skip
            angle_rate = float(opts.rate_hz)
        version = str(self.description.get("version", ""))
        self.info = SourceInfo(
            channels=tuple(channels),
            emg_rate_hz=float(opts.rate_hz),
            angle_rate_hz=angle_rate,
            device={
                "model": "PLUX BITalino" + (" (simulated signals)" if opts.simulated else ""),
                "device_id": opts.address,
                "firmware_version": version,
                "source_kind": "bitalino",
                "rate_hz": float(opts.rate_hz),
            },
            index_origin="counter",
            details={
                "channels": [f"A{c + 1}" for c in chans],
                "ttl_input": None if opts.ttl is None else f"I{opts.ttl + 1}",
                "state": self.description.get("state"),
                "transfer_function": "EMG(V) = (ADC/2**n - 1/2) * 3.3 / 1009 (PLUX EMG datasheet)",
            },
        )
        self.frames = bp.FrameDecoder(len(chans))
        self._bounds = ArrivalStart(CLOCK_WINDOW_S)
        self._held: dict | None = None
        self._ttl_prev: int | None = None

    @property
    def stats(self) -> bp.DecoderStats:
        """Frames, CRC errors, resyncs, skipped bytes and lost frames seen so far."""
        return self.frames.stats

    def feed(self, chunk: Chunk) -> list[Block | Event]:
        if chunk.tag == OPEN_TAG:
            return []
        if chunk.tag == REOPEN_TAG:
            return self.reopened(chunk.meta)
        if chunk.tag != "data":
            raise SourceError(f"unknown BITalino journal chunk {chunk.tag!r}")
        host = float(chunk.host_time_s)
        data = chunk.arrays["bytes"].tobytes()
        held = self._held
        if held is not None:
            held["data"] += data
            held["min"] = min(held["min"], self._deficit(host, len(held["data"])))
            held["host"] = host
            if host - held["since"] < SETTLE_S:
                return []
            return self._release()
        deficit = self._deficit(host, len(data))
        if deficit is not None and deficit >= CLOCK_GAP_MIN_FRAMES:
            # more than 15 frames may be lost (the sequence cannot say how many multiples of
            # 16): wait SETTLE_S for what the port still holds; a backlog (the host was slow)
            # catches up and the deficit vanishes, a loss keeps it
            self._held = {"data": bytearray(data), "min": deficit, "since": host, "host": host}
            return []
        return self._decode(data, None, host)

    def _deficit(self, host: float, n_bytes: int) -> float | None:
        """Frames the host clock says were sent by ``host`` but not received (None at first)."""
        t0 = self._bounds.start(host)
        if t0 is None:
            return None
        rate = float(self.options.rate_hz)
        return (host - t0) * rate - n_bytes / self.frames.width - self.frames._next_index

    def _release(self) -> list[Block | Event]:
        held, self._held = self._held, None
        expected = held["min"] if held["min"] >= CLOCK_GAP_MIN_FRAMES else None
        return self._decode(bytes(held["data"]), expected, held["host"])

    def _decode(self, data: bytes, expected: float | None, host: float) -> list[Block | Event]:
        got = self.frames.feed(data, expected_lost=expected)
        self._bounds.push(host, host - self.frames._next_index / float(self.options.rate_hz))
        if got.n == 0:
            return []
        return self._items(got, host)

    def finish(self) -> list[Block | Event]:
        return self._release() if self._held is not None else []

    def reopened(self, description: Mapping) -> list[Block | Event]:
        """The board came back: the sequence restarts; frames continue after a clock gap."""
        new = BitalinoOptions.from_dict(description["options"])
        if new.rate_hz != self.options.rate_hz or new.channels != self.options.channels:
            raise SourceError(f"{self.url_text()}: the board came back configured differently")
        host = float(description.get("started_host_s", 0.0))
        rate = float(self.options.rate_hz)
        t0 = self._bounds.start(host) if self._bounds else host
        nxt = max(self.frames._next_index, round((host - t0) * rate))
        self.frames = _continue(self.frames, nxt)
        self._bounds.reset(host, host - nxt / rate)
        return []

    def url_text(self) -> str:
        return str(self.description.get("url", "bitalino://"))

    def _items(self, got: bp.DecodedFrames, host: float) -> list[Block | Event]:
        out: list[Block | Event] = []
        rate = float(self.options.rate_hz)
        index = got.index
        breaks = np.flatnonzero(np.diff(index) != 1) + 1
        for part in np.split(np.arange(index.size), breaks):
            first = int(index[part[0]])
            t_us = round(first / rate * 1e6)
            a = got.analog[part]
            out.append(Block(EMG, first, a[:, self._slots_emg].astype(np.int32), t_us, host))
            if self._slot_gonio is not None:
                g = a[:, [self._slot_gonio]].astype(np.int32)
                out.append(Block(ANGLE, first, g, t_us, host))
        if self.options.ttl is not None:
            ttl = got.digital[:, self.options.ttl].astype(np.int8)
            prev = np.empty_like(ttl)
            prev[1:] = ttl[:-1]
            prev[0] = ttl[0] if self._ttl_prev is None else self._ttl_prev
            self._ttl_prev = int(ttl[-1])
            params = {"timing": "ttl", "input": f"I{self.options.ttl + 1}"}
            for i in np.flatnonzero((ttl == 1) & (prev == 0)):
                out.append(Event("stimulus", int(index[i]), host, pulse_index=0, params=params))
        return out


def _continue(old: bp.FrameDecoder, next_index: int) -> bp.FrameDecoder:
    new = bp.FrameDecoder(old.n_channels, confirm=old.confirm)
    new.stats = old.stats
    new._next_index = int(next_index)
    # the first frame after a restart is numbered next_index (sequence restarts at 0)
    new._last_seq = 15
    return new


SPEC = SourceSpec(
    scheme="bitalino",
    open=BitalinoSource,
    decoder=BitalinoDecoder,
    describe="a PLUX BITalino: bitalino:///dev/ttyUSB0?emg=A1&gonio=A2&gonio_cal=... (docs/cli.md)",
)

__all__ = ["SPEC", "BitalinoDecoder", "BitalinoOptions", "BitalinoSource", "parse_bitalino_url"]
