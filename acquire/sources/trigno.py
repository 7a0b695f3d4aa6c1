"""``trigno://HOST[:PORT]``: record a Delsys Trigno through the Trigno Control Utility's TCP SDK.

The TCU (on the lab's Windows PC, or the emulator :mod:`firmware_iface.emulator.trigno`) is
asked over its ASCII command port (default 50040) for its version, the sensors paired in each
slot and their types, the mode (backwards compatibility, upsampling), the EMG rate, the frame
interval and the samples per frame; tonuslab then connects the EMG and auxiliary data ports
(50043/50044, or 50041/50042 in backwards compatibility) and sends ``START``. The wire format
is :mod:`firmware_iface.foreign.trigno`.

URL options (docs/cli.md): ``emg=1,2`` (EMG sensor slots 1..16; default every paired EMG
sensor), ``gonio=3`` and ``gonio_cal=V0:DEG0,V1:DEG1`` (a goniometer adapter's slot and the
two-point calibration of its first auxiliary channel, volts to degrees), ``mode=avanti|legacy``
(``legacy`` = ``BACKWARDS COMPATIBILITY ON``: EMG at 2000 Hz), ``upsample=on|off`` (Avanti mode:
2148.1 Hz with, 1111.1 Hz without), ``timeout=S``.

Rates are stored as the TCU reports them (``RATE?``; the auxiliary rate is ``MAX SAMPLES AUX?``
per ``FRAME INTERVAL?``, about 148.1 Hz). EMG volts become microvolts quantised at
:data:`~acquire.sources.base.EMG_RESOLUTION_UV`; goniometer degrees at
:data:`~acquire.sources.base.ANGLE_RESOLUTION_DEG`.

**The stream carries no sample counter**, so samples are numbered in arrival order and checked
against the host clock (``index_origin = "clock"``): data that arrive at least
:data:`STALL_MIN_S` later than the samples received so far account for, after a short settling
time (the TCU sends what it held back in a burst after a pause), are a stall whose lost samples
are estimated from the host clock, rounded to whole TCU frames (13.5 ms). The estimate is only
as good as the host clock and the network delay: a loss shorter than :data:`STALL_MIN_S` is not
seen (those samples close up), a loss is known to about one frame, and a burst delayed longer
than :data:`SETTLE_S` after a stall may be counted as lost. A corrupt sample (a NaN or a value
beyond 1 kV) is counted and not stored (a one-sample gap), never raised.
"""

from __future__ import annotations

import contextlib
import math
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
    ANGLE_RESOLUTION_DEG,
    EMG,
    EMG_RESOLUTION_UV,
    OPEN_TAG,
    REOPEN_TAG,
    Block,
    Channel,
    Chunk,
    ConnectingSource,
    Decoder,
    SourceInfo,
    SourceLost,
    SourceSpec,
    quantise,
)
from acquire.sources.bitalino import _two_points, two_point_line
from acquire.sources.hostclock import ArrivalStart
from firmware_iface.foreign import trigno as tp

DEFAULT_TIMEOUT_S = 3.0
#: A lateness of the data beyond this many seconds is a stall (a gap with its best estimate).
STALL_MIN_S = 0.1
#: Seconds after a stall during which arriving data still count as the same burst (the loss
#: is the smallest lateness seen meanwhile: a backlog read late catches up, a loss does not).
SETTLE_S = 0.25
#: Seconds of arrival times that date the start of the stream (longer windows let drift in).
CLOCK_WINDOW_S = 10.0
OPTIONS = ("emg", "gonio", "gonio_cal", "mode", "upsample", "timeout")


@dataclass(frozen=True)
class TrignoOptions:
    """The parsed ``trigno://`` URL (see the module docstring)."""

    host: str
    port: int = tp.COMMAND_PORT
    emg: tuple[int, ...] | None = None
    gonio: int | None = None
    gonio_cal: tuple[tuple[float, float], tuple[float, float]] | None = None
    mode: str = "avanti"
    upsample: bool = True
    timeout_s: float = DEFAULT_TIMEOUT_S

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> TrignoOptions:
        d = dict(d)
        if d.get("emg") is not None:
            d["emg"] = tuple(d["emg"])
        if d.get("gonio_cal") is not None:
            d["gonio_cal"] = tuple(tuple(p) for p in d["gonio_cal"])
        return cls(**d)


def _slot(url: str, key: str, text: str) -> int:
    t = text.strip()
    if not t.isdigit() or not 1 <= int(t) <= tp.N_SENSORS:
        raise SourceChannelError(f"{url}: {key}={text}: Trigno sensor slots are 1..16")
    return int(t)


def parse_trigno_url(url: str) -> TrignoOptions:
    """Parse ``trigno://HOST[:PORT]?...``.

    Raises
    ------
    acquire.errors.SourceError
        Not a ``trigno://`` URL, an unknown option or a bad value (one line).
    acquire.errors.SourceChannelError
        A slot outside 1..16, or one given twice.
    """
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme.lower() != "trigno":
        raise SourceError(f"not a Trigno URL: {url!r} (expected trigno://HOST[:PORT])")
    query: dict[str, str] = {}
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key in query:
            raise SourceError(f"{url}: option {key!r} is given twice")
        query[key] = value
    unknown = sorted(set(query) - set(OPTIONS))
    if unknown:
        raise SourceError(f"{url}: unknown option {unknown[0]!r}; known: {', '.join(OPTIONS)}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise SourceError(f"{url}: the port must be a number 1..65535") from None
    if not host:
        raise SourceError(f"{url}: give the TCU's host: trigno://HOST[:PORT]")
    emg = None
    if query.get("emg"):
        emg = tuple(_slot(url, "emg", c) for c in query["emg"].split(",") if c.strip())
        if len(set(emg)) != len(emg):
            raise SourceChannelError(f"{url}: emg= lists a slot twice")
    gonio = _slot(url, "gonio", query["gonio"]) if query.get("gonio") else None
    if gonio is not None and emg and gonio in emg:
        raise SourceChannelError(f"{url}: slot {gonio} is given both as EMG and as goniometer")
    cal = None
    if gonio is not None:
        if "gonio_cal" not in query:
            raise SourceError(
                f"{url}: gonio={gonio} needs its two-point calibration: gonio_cal=V0:DEG0,V1:DEG1"
            )
        cal = _two_points(url, query["gonio_cal"])
    elif "gonio_cal" in query:
        raise SourceError(f"{url}: gonio_cal= without gonio=SLOT")
    mode = query.get("mode", "avanti").strip().lower()
    if mode not in ("avanti", "legacy"):
        raise SourceError(f"{url}: mode must be avanti or legacy, got {query['mode']!r}")
    up = query.get("upsample", "on").strip().lower()
    if up not in ("on", "off"):
        raise SourceError(f"{url}: upsample must be on or off, got {query['upsample']!r}")
    if mode == "legacy" and "upsample" in query:
        raise SourceError(f"{url}: upsample= applies to mode=avanti only (legacy is 2000 Hz)")
    try:
        timeout = float(query.get("timeout", DEFAULT_TIMEOUT_S))
    except ValueError:
        timeout = -1.0
    if not (math.isfinite(timeout) and timeout > 0):
        raise SourceError(f"{url}: timeout must be a positive number of seconds")
    return TrignoOptions(
        host=host, port=port or tp.COMMAND_PORT, emg=emg, gonio=gonio, gonio_cal=cal,
        mode=mode, upsample=up == "on", timeout_s=timeout,
    )  # fmt: skip


class TrignoSource(ConnectingSource):
    """The live TCU of one ``trigno://`` URL: command port, EMG and auxiliary data ports.

    Parameters
    ----------
    url : str
        ``trigno://HOST[:PORT]?...`` (module docstring).
    """

    scheme = "trigno"
    capabilities = frozenset()

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.options = parse_trigno_url(url)
        self._cmd: socket.socket | None = None
        self._replies = tp.ReplySplitter()
        self._data: dict[str, socket.socket] = {}

    # ------------------------------------------------------------------------------ commands
    def _where(self) -> str:
        return f"{self.options.host}:{self.options.port}"

    def _reply(self) -> str:
        deadline = time.monotonic() + self.options.timeout_s
        while time.monotonic() < deadline:
            if self._pending_replies:
                return self._pending_replies.pop(0)
            r, _, _ = select.select([self._cmd], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                break
            try:
                data = self._cmd.recv(4096)
            except OSError as exc:
                raise SourceNotFoundError(
                    f"{self.url}: the TCU closed the command port ({exc})"
                ) from None
            if not data:
                raise SourceNotFoundError(f"{self.url}: the TCU at {self._where()} hung up")
            self._pending_replies += self._replies.feed(data)
            if self._replies.overflows:
                break
        raise SourceNotFoundError(
            f"{self.url}: no Trigno Control Utility answers on {self._where()} "
            f"within {self.options.timeout_s:g} s (wrong host or port?)"
        )

    def _ask(self, command: str) -> str:
        try:
            self._cmd.sendall(tp.encode_command(command))
        except OSError as exc:
            raise SourceNotFoundError(f"{self.url}: the TCU command port failed ({exc})") from None
        return self._reply()

    def _ok(self, command: str) -> None:
        reply = self._ask(command)
        if reply.upper() != "OK":
            raise SourceError(f"{self.url}: the TCU refused {command!r} (it answered {reply!r})")

    def _number(self, command: str) -> float:
        reply = self._ask(command)
        try:
            return float(reply.split()[-1])
        except (ValueError, IndexError):
            raise SourceError(
                f"{self.url}: the TCU answered {reply!r} to {command!r}, not a number"
            ) from None

    # ------------------------------------------------------------------------------ lifecycle
    def make_decoder(self, description: Mapping) -> TrignoDecoder:
        return TrignoDecoder(description)

    def close(self) -> None:
        if self._cmd is not None:
            with contextlib.suppress(OSError):
                self._cmd.sendall(tp.encode_command("STOP"))
            with contextlib.suppress(OSError):
                self._cmd.close()
        for s in self._data.values():
            with contextlib.suppress(OSError):
                s.close()
        self._cmd, self._data = None, {}

    def _connect(self) -> dict:
        opts = self.options
        self._replies = tp.ReplySplitter(max_bytes=4096)
        self._pending_replies: list[str] = []
        try:
            self._cmd = socket.create_connection((opts.host, opts.port), timeout=opts.timeout_s)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SourceNotFoundError(
                f"{self.url}: cannot connect to the Trigno Control Utility at {self._where()} "
                f"({reason})"
            ) from None
        try:
            greeting = self._reply()
            if not greeting.startswith(tp.GREETING_PREFIX):
                raise SourceError(
                    f"{self.url}: the server at {self._where()} is not a Trigno Control Utility "
                    f"(it greeted {greeting[:40]!r})"
                )
            version = self._ask("VERSION?")
            legacy = opts.mode == "legacy"
            self._ok(f"BACKWARDS COMPATIBILITY {'ON' if legacy else 'OFF'}")
            if not legacy:
                self._ok(f"UPSAMPLE {'ON' if opts.upsample else 'OFF'}")
            sensors = {}
            for slot in range(1, tp.N_SENSORS + 1):
                if self._ask(f"SENSOR {slot} PAIRED?").upper() == "YES":
                    sensors[slot] = {
                        "type": self._ask(f"SENSOR {slot} TYPE?"),
                        "mode": self._ask(f"SENSOR {slot} MODE?"),
                        "serial": self._ask(f"SENSOR {slot} SERIAL?"),
                    }
            rate = self._number("RATE?")
            frame_s = self._number("FRAME INTERVAL?")
            emg_per_frame = int(self._number("MAX SAMPLES EMG?"))
            aux_per_frame = int(self._number("MAX SAMPLES AUX?"))
            big = self._ask("ENDIANNESS?").upper().startswith("BIG")
            description = {
                "url": self.url,
                "options": opts.to_dict(),
                "version": version,
                "greeting": greeting,
                "sensors": {str(k): v for k, v in sensors.items()},
                "emg_rate_hz": rate,
                "frame_interval_s": frame_s,
                "emg_per_frame": emg_per_frame,
                "aux_per_frame": aux_per_frame,
                "big_endian": big,
                "backwards_compatibility": legacy,
            }
            TrignoDecoder(description)  # refuse bad slots before starting
            self._data = {}
            keys = ("emg_legacy", "aux_legacy") if legacy else ("emg", "aux")
            for role, key in zip(("emg", "aux"), keys, strict=True):
                s = socket.create_connection(
                    (opts.host, opts.port + tp.PORT_OFFSETS[key]), timeout=opts.timeout_s
                )
                s.setblocking(False)
                self._data[role] = s
            self._ok("START")
        except OSError as exc:
            self.close()
            raise SourceNotFoundError(
                f"{self.url}: the TCU data ports at {opts.host} cannot be opened "
                f"({exc.strerror or exc})"
            ) from None
        except BaseException:
            self.close()
            raise
        description["started_host_s"] = time.monotonic()
        return description

    # ------------------------------------------------------------------------------ reading
    def read(self, timeout_s: float) -> list[Chunk]:
        if not self._data:
            raise SourceLost("the TCU connection is closed")
        socks = [*self._data.values(), self._cmd]
        r, _, _ = select.select(socks, [], [], max(0.0, timeout_s))
        out = []
        for role, s in self._data.items():
            if s not in r:
                continue
            try:
                data = s.recv(1 << 18)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                raise SourceLost(f"the TCU {role} port failed ({exc})") from None
            if not data:
                raise SourceLost(f"the TCU closed its {role} data port")
            arr = np.frombuffer(data, dtype=np.uint8).copy()
            out.append(Chunk("data", {"port": role}, {"bytes": arr}, time.monotonic()))
        if self._cmd in r:  # nothing is expected there while streaming; EOF is a loss
            try:
                data = self._cmd.recv(4096, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError as exc:
                raise SourceLost(f"the TCU command port failed ({exc})") from None
            if data == b"":
                raise SourceLost("the TCU closed its command port")
        return out


class _ClockCounter:
    """Number samples that carry no counter, against the host clock (see the module docstring).

    Deterministic: it reads only the journalled arrival times.
    """

    def __init__(self, rate_hz: float, per_frame: int) -> None:
        self.rate = float(rate_hz)
        self.per_frame = int(per_frame)
        self.next_index = 0
        self.bounds = ArrivalStart(CLOCK_WINDOW_S)
        self.last_host: float | None = None
        self.settle_until: float | None = None
        self.settle_first: int | None = None
        self.min_deficit = math.inf
        self.gaps: list[tuple[int, int]] = []

    def number(self, n: int, host: float) -> int:
        """The index of the first of ``n`` samples that arrived at ``host`` seconds."""
        bounds = self.bounds
        first = self.next_index
        if bounds:
            t0 = bounds.start(host)
            late_s = host - t0 - (self.next_index + n) / self.rate
            silent = self.last_host is not None and host - self.last_host >= STALL_MIN_S
            if silent and late_s >= STALL_MIN_S and self.settle_until is None:
                # a stall: wait SETTLE_S for the rest of the burst before deciding its size
                self.settle_until = host + SETTLE_S
                self.settle_first = self.next_index
                self.min_deficit = math.inf
            if self.settle_until is not None:
                # a backlog catches up (the deficit falls to about 0), a loss does not
                self.min_deficit = min(self.min_deficit, late_s * self.rate)
        self.next_index += n
        self.last_host = host
        bounds.push(host, host - self.next_index / self.rate)
        return first

    def resolve(self, host: float) -> int:
        """Samples lost in the stall being settled, when it is over (0 if none)."""
        if self.settle_until is None or host < self.settle_until:
            return 0
        self.settle_until = None
        deficit = self.min_deficit
        frames = round(deficit / self.per_frame)
        if frames <= 0:
            return 0
        lost = frames * self.per_frame
        self.gaps.append((self.settle_first, lost))
        return lost


class TrignoDecoder(Decoder):
    """Journalled TCU data-port bytes -> EMG (uV) and goniometer (deg) blocks (pure).

    Parameters
    ----------
    description : mapping
        From :meth:`TrignoSource.open`: ``options``, ``sensors`` (slot -> type, mode, serial),
        ``emg_rate_hz``, ``frame_interval_s``, ``emg_per_frame``, ``aux_per_frame``,
        ``big_endian``, ``backwards_compatibility``, ``started_host_s``.

    Raises
    ------
    acquire.errors.SourceChannelError
        A slot of the URL has no sensor, or a sensor of the wrong type.
    acquire.errors.SourceError
        No EMG sensor is paired.
    """

    def __init__(self, description: Mapping) -> None:
        super().__init__(description)
        d = self.description
        self.options = TrignoOptions.from_dict(d["options"])
        opts = self.options
        url = d.get("url", "trigno://")
        sensors = {int(k): v for k, v in d["sensors"].items()}
        kinds = {k: tp.SENSOR_KINDS.get(str(v["type"]).strip().upper(), "?") for k, v in
                 sensors.items()}  # fmt: skip
        if opts.gonio is not None:
            if opts.gonio not in sensors:
                raise SourceChannelError(
                    f"{url}: gonio={opts.gonio}: no sensor is paired in slot {opts.gonio}"
                )
            if kinds[opts.gonio] != "goniometer":
                raise SourceChannelError(
                    f"{url}: gonio={opts.gonio}: slot {opts.gonio} holds a sensor of type "
                    f"{sensors[opts.gonio]['type']!r}, not a goniometer adapter"
                )
        if opts.emg is None:
            emg = tuple(k for k in sorted(sensors) if kinds[k] == "emg" and k != opts.gonio)
            if not emg:
                raise SourceError(f"{url}: no EMG sensor is paired with the Trigno base")
        else:
            emg = opts.emg
            for slot in emg:
                if slot not in sensors:
                    raise SourceChannelError(
                        f"{url}: emg={slot}: no sensor is paired in slot {slot}"
                    )
                if kinds[slot] != "emg":
                    raise SourceChannelError(
                        f"{url}: emg={slot}: slot {slot} holds a sensor of type "
                        f"{sensors[slot]['type']!r}, not an EMG sensor"
                    )
        self._emg_cols = [s - 1 for s in emg]
        frame_s = float(d["frame_interval_s"])
        self.emg_rate = float(d["emg_rate_hz"])
        self.aux_rate = int(d["aux_per_frame"]) / frame_s
        legacy = bool(d["backwards_compatibility"])
        self.aux_per_sensor = tp.AUX_PER_SENSOR_LEGACY if legacy else tp.AUX_PER_SENSOR
        channels = [
            Channel(f"slot{s}", "emg", "uV", EMG_RESOLUTION_UV, 0.0, 20.0, 450.0) for s in emg
        ]
        angle_rate = None
        self._gonio_col = None
        if opts.gonio is not None:
            self._gonio_col = (opts.gonio - 1) * self.aux_per_sensor  # its first aux channel
            self._deg_per_v, self._v_at_0 = two_point_line(opts.gonio_cal)
            channels.append(Channel(f"slot{opts.gonio}", "angle", "deg", ANGLE_RESOLUTION_DEG))
            angle_rate = self.aux_rate
        big = bool(d["big_endian"])
        self._emg = tp.FloatFrameDecoder(tp.N_SENSORS, big_endian=big)
        self._aux = tp.FloatFrameDecoder(tp.N_SENSORS * self.aux_per_sensor, big_endian=big)
        self._clock = {
            "emg": _ClockCounter(self.emg_rate, int(d["emg_per_frame"])),
            "aux": _ClockCounter(self.aux_rate, int(d["aux_per_frame"])),
        }
        self._held: dict[str, list] = {"emg": [], "aux": []}
        self.info = SourceInfo(
            channels=tuple(channels),
            emg_rate_hz=self.emg_rate,
            angle_rate_hz=angle_rate,
            device={
                "model": "Delsys Trigno (Trigno Control Utility SDK)",
                "device_id": f"{opts.host}:{opts.port}",
                "firmware_version": str(d.get("version", "")),
                "source_kind": "trigno",
                "rate_hz": self.emg_rate,
                "trigno_mode": "backwards compatibility"
                if legacy
                else ("avanti, upsampling " + ("on" if opts.upsample else "off")),
            },
            index_origin="clock",
            details={
                "sensors": {str(k): v for k, v in sensors.items()},
                "emg_slots": list(emg),
                "gonio_slot": opts.gonio,
                "gonio_cal": opts.gonio_cal,
                "frame_interval_s": frame_s,
                "aux_rate_hz": self.aux_rate,
                "stall_min_s": STALL_MIN_S,
            },
        )

    @property
    def stats(self) -> dict:
        """Bytes, samples, invalid samples and estimated gaps of each data port."""
        return {
            "emg": {**asdict(self._emg.stats), "gaps": list(self._clock["emg"].gaps)},
            "aux": {**asdict(self._aux.stats), "gaps": list(self._clock["aux"].gaps)},
        }

    def feed(self, chunk: Chunk) -> list[Block]:
        if chunk.tag == OPEN_TAG:
            return []
        if chunk.tag == REOPEN_TAG:
            return self.reopened(chunk.meta)
        if chunk.tag != "data":
            raise SourceError(f"unknown Trigno journal chunk {chunk.tag!r}")
        role = chunk.meta["port"]
        host = float(chunk.host_time_s)
        dec = self._emg if role == "emg" else self._aux
        values, invalid = dec.feed(chunk.arrays["bytes"].tobytes())
        clock = self._clock[role]
        out = self._release(role, host)
        if values.shape[0] == 0:
            return out
        first = clock.number(values.shape[0], host)
        self._held[role].append((first, values, invalid, host))
        if clock.settle_until is None:
            out += self._release(role, host)
        return out

    def _release(self, role: str, host: float) -> list[Block]:
        clock = self._clock[role]
        if clock.settle_until is not None:
            lost = clock.resolve(host)
            if clock.settle_until is not None:
                return []
            if lost:  # everything numbered since the stall moves up by the lost samples
                start = clock.gaps[-1][0]
                clock.next_index += lost
                clock.bounds.push(clock.last_host, clock.last_host - clock.next_index / clock.rate)
                self._held[role] = [
                    (f + lost if f >= start else f, v, i, h) for f, v, i, h in self._held[role]
                ]
        held, self._held[role] = self._held[role], []
        out: list[Block] = []
        for first, values, invalid, h in held:
            out += self._blocks(role, first, values, invalid, h)
        return out

    def _blocks(self, role, first, values, invalid, host) -> list[Block]:
        if role == "emg":
            phys = values[:, self._emg_cols].astype(np.float64) * 1e6
            stream, rate, res = EMG, self.emg_rate, EMG_RESOLUTION_UV
        else:
            if self._gonio_col is None:
                return []
            v = values[:, [self._gonio_col]].astype(np.float64)
            phys = (v - self._v_at_0) * self._deg_per_v
            stream, rate, res = ANGLE, self.aux_rate, ANGLE_RESOLUTION_DEG
        keep = ~invalid
        out = []
        rows = np.flatnonzero(keep)
        if rows.size == 0:
            return out
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for part in np.split(rows, breaks):
            idx = first + int(part[0])
            t_us = round(idx / rate * 1e6)
            out.append(Block(stream, idx, quantise(phys[part], res), t_us, host))
        return out

    def reopened(self, description: Mapping) -> list[Block]:
        """The TCU came back: same rates and sensors, numbering continues after a clock gap."""
        if float(description["emg_rate_hz"]) != self.emg_rate:
            from acquire.errors import SourceRateChangedError

            raise SourceRateChangedError(
                f"the Trigno came back at {description['emg_rate_hz']} Hz instead of "
                f"{self.emg_rate:g} Hz; the data so far is saved: record a new session"
            )
        out = []
        host = float(description.get("started_host_s", 0.0))
        for role, clock in self._clock.items():
            clock.settle_until = None
            out += self._release(role, host)
            t0 = clock.bounds.start(host) if clock.bounds else host
            clock.next_index = max(clock.next_index, round((host - t0) * clock.rate))
            clock.bounds.reset(host, host - clock.next_index / clock.rate)
            clock.last_host = host
        self._emg = tp.FloatFrameDecoder(
            self._emg.n_values, big_endian=self._emg.dtype.str[0] == ">"
        )
        self._aux = tp.FloatFrameDecoder(
            self._aux.n_values, big_endian=self._aux.dtype.str[0] == ">"
        )
        return out

    def finish(self) -> list[Block]:
        out = []
        for role, clock in self._clock.items():
            if clock.settle_until is not None:
                clock.settle_until = clock.last_host  # resolve with what arrived
                out += self._release(role, clock.last_host)
            else:
                out += self._release(role, clock.last_host or 0.0)
        return out


SPEC = SourceSpec(
    scheme="trigno",
    open=TrignoSource,
    decoder=TrignoDecoder,
    describe="a Delsys Trigno via its TCU SDK: trigno://HOST[:PORT]?emg=1,2&gonio=3 (docs/cli.md)",
)

__all__ = ["SPEC", "TrignoDecoder", "TrignoOptions", "TrignoSource", "parse_trigno_url"]
