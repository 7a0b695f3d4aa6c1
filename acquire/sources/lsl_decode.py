"""The ``lsl://`` decoder (pure): journalled LSL chunks -> sample blocks, gaps and pulses.

Built from the description :meth:`acquire.sources.lsl.LslSource.open` returned (the streams'
metadata and the URL's options), it picks the channels, converts units and numbers samples; it
reads no clock and no network, so ``tonuslab replay``/``recover`` rebuild a recording bit for bit
from the journalled chunks.

Chunks (:class:`acquire.sources.base.Chunk`):

``data``
    ``meta["stream"]`` is ``"emg"`` (the main stream), ``"angle"`` (the second stream of
    ``angle_stream=``) or ``"markers"``; ``arrays["stamps"]`` are the LSL timestamps (s, the
    sending machine's clock); ``arrays["values"]`` the samples ``(n, channel_count)`` in the
    stream's own format (a marker chunk has ``meta["texts"]`` instead).
``stream_lost``
    ``meta["stream"]``: the marker stream vanished (a ``note`` event; the recording goes on).
``clock``
    ``meta["stream"]`` and ``meta["offset_s"]``: the stream's ``time_correction()`` (seconds to
    add to its stamps to get this machine's LSL clock), journalled at open and whenever it
    changes. Every stream is mapped onto this machine's clock before numbering, so a goniometer
    on another computer lines up with the EMG.

Units: EMG in microvolts quantised at :data:`~acquire.sources.base.EMG_RESOLUTION_UV` per
count, angles in degrees at :data:`~acquire.sources.base.ANGLE_RESOLUTION_DEG`. Sample numbers
come from the timestamps (:mod:`acquire.sources.lsl_clock`; ``index_origin = "clock"``), or from
a sequence-counter channel when the URL names one (``seq=K``, ``seq_modulo=N``;
``index_origin = "counter"``). A row with NaN in a stored channel is not stored: it is a
one-sample gap.

Pulses: ``ttl=K`` (each rising edge through ``ttl_threshold`` is one stimulus at exactly that
sample) and ``markers=NAME`` (``stim 12.5mA`` names the nearest edge, or without a TTL channel is
the stimulus, moved onto its artifact): :mod:`acquire.sources.lsl_pulses`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from acquire.errors import SourceChannelError, SourceError, SourceRateChangedError, SourceUnitError
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
    Decoder,
    Event,
    SourceInfo,
    quantise,
)
from acquire.sources.lsl_clock import CounterClock, StreamClock
from acquire.sources.lsl_pulses import PulseTracker
from acquire.sources.lsl_url import LslOptions
from acquire.sources.units import angle_factor_deg, emg_factor_uv

#: Channel formats that carry numbers.
NUMERIC_FORMATS = ("float32", "double64", "int8", "int16", "int32", "int64")


class LslDecoder(Decoder):
    """Decode the chunks of one ``lsl://`` recording (see the module docstring).

    Parameters
    ----------
    description : mapping
        ``{"url", "options" (LslOptions.to_dict()), "streams": {"emg": info, "angle": info or
        None, "markers": info or None}}``; each info has ``name``, ``type``, ``source_id``,
        ``hostname``, ``uid``, ``rate_hz``, ``channel_count``, ``channel_format`` and
        ``channels`` (``label``, ``unit``, ``type`` each).

    Raises
    ------
    acquire.errors.SourceChannelError
        A channel of the URL is not in the stream.
    acquire.errors.SourceUnitError
        A stored channel has no convertible unit and the URL gives none.
    acquire.errors.SourceError
        The stream cannot be recorded (irregular rate, strings).
    """

    def __init__(self, description: Mapping) -> None:
        super().__init__(description)
        self.options = LslOptions.from_dict(self.description["options"])
        streams = self.description["streams"]
        self._streams = {k: v for k, v in streams.items() if v is not None}
        main = self._streams["emg"]
        _check_numeric(main, "the EMG stream")
        opts = self.options
        labels = _labels(main)
        self._angle_col = None
        self._ttl_col = None
        if opts.angle is not None:
            self._angle_col = _channel(opts.angle, labels, main, "angle")
        if opts.ttl is not None:
            self._ttl_col = _channel(opts.ttl, labels, main, "ttl")
        self._seq_col = None if opts.seq is None else _channel(opts.seq, labels, main, "seq")
        taken = {self._angle_col, self._ttl_col, self._seq_col} - {None}
        if opts.emg is not None:
            self._emg_cols = [_channel(c, labels, main, "emg") for c in opts.emg]
            both = taken & set(self._emg_cols)
            if both:
                raise SourceChannelError(
                    f"channel {sorted(both)[0]} of LSL stream {main['name']!r} is given both "
                    "as EMG and as angle/ttl"
                )
        else:
            self._emg_cols = [
                i
                for i, ch in enumerate(main["channels"])
                if i not in taken
                and (emg_factor_uv(ch.get("unit")) is not None or _is_emg_type(ch.get("type")))
            ]
            if not self._emg_cols:
                raise SourceChannelError(
                    f"LSL stream {main['name']!r} describes no EMG channel (no voltage unit, "
                    f"no type EMG); pick them with emg=I,J (channels: {_listing(labels)})"
                )
        self._emg_factor = np.array([self._emg_unit(main, i) for i in self._emg_cols])
        channels = [
            Channel(labels[i] or f"EMG{k + 1}", "emg", "uV", EMG_RESOLUTION_UV)
            for k, i in enumerate(self._emg_cols)
        ]
        angle_rate = None
        self._angle_factor = 1.0
        self._angle_stream_col = None
        if self._angle_col is not None:
            self._angle_factor = self._angle_unit(main, self._angle_col)
            angle_rate = float(main["rate_hz"])
            channels.append(
                Channel(labels[self._angle_col] or "angle", "angle", "deg", ANGLE_RESOLUTION_DEG)
            )
        elif "angle" in self._streams:
            second = self._streams["angle"]
            _check_numeric(second, "the angle stream")
            col = _channel(opts.angle_stream_channel, _labels(second), second, "angle_stream")
            self._angle_stream_col = col
            self._angle_factor = self._angle_unit(second, col)
            angle_rate = float(second["rate_hz"])
            label = _labels(second)[col] or "angle"
            channels.append(Channel(label, "angle", "deg", ANGLE_RESOLUTION_DEG))
        self.info = SourceInfo(
            channels=tuple(channels),
            emg_rate_hz=float(main["rate_hz"]),
            angle_rate_hz=angle_rate,
            device=_device(main),
            index_origin="clock" if self._seq_col is None else "counter",
            details={
                "lsl_streams": {k: _summary(v) for k, v in self._streams.items()},
                "emg_columns": self._emg_cols,
                "angle_column": self._angle_col,
                "angle_stream_column": self._angle_stream_col,
                "ttl_column": self._ttl_col,
                "seq_column": self._seq_col,
                "seq_modulo": opts.seq_modulo,
                "ttl_threshold": opts.ttl_threshold,
                "jitter_ms": opts.jitter_ms,
            },
        )
        self._clocks = {
            "emg": CounterClock(
                main["rate_hz"], opts.jitter_ms, main["name"], modulo=opts.seq_modulo
            ),
        }
        if "angle" in self._streams:
            second = self._streams["angle"]
            self._clocks["angle"] = StreamClock(second["rate_hz"], opts.jitter_ms, second["name"])
        self._offset = {name: 0.0 for name in self._streams}
        refine = "markers" in self._streams and self._ttl_col is None and opts.refine == "artifact"
        self._pulses = PulseTracker(
            self._clocks["emg"], float(main["rate_hz"]),
            None if self._ttl_col is None else opts.ttl_threshold,
            refine=refine, n_emg=len(self._emg_cols),
        )  # fmt: skip

    # ------------------------------------------------------------------------------ units
    def _emg_unit(self, stream: Mapping, col: int) -> float:
        opts = self.options
        if opts.emg_scale is not None:
            return float(opts.emg_scale)
        if opts.emg_unit is not None:
            return float(emg_factor_uv(opts.emg_unit))
        unit = stream["channels"][col].get("unit") if col < len(stream["channels"]) else None
        factor = emg_factor_uv(unit)
        if factor is None:
            raise SourceUnitError(
                f"EMG channel {col} ({_labels(stream)[col] or 'no label'}) of LSL stream "
                f"{stream['name']!r} is in {unit or 'no unit'!r}, not a voltage: add "
                "emg_unit=uV|mV|V or emg_scale=MICROVOLTS_PER_UNIT to the URL"
            )
        return factor

    def _angle_unit(self, stream: Mapping, col: int) -> float:
        if self.options.angle_unit is not None:
            return float(angle_factor_deg(self.options.angle_unit))
        unit = stream["channels"][col].get("unit") if col < len(stream["channels"]) else None
        factor = angle_factor_deg(unit)
        if factor is None:
            raise SourceUnitError(
                f"angle channel {col} ({_labels(stream)[col] or 'no label'}) of LSL stream "
                f"{stream['name']!r} is in {unit or 'no unit'!r}, not degrees: add "
                "angle_unit=deg or angle_unit=rad to the URL"
            )
        return factor

    # ------------------------------------------------------------------------------ feeding
    def feed(self, chunk: Chunk) -> list[Block | Event]:
        if chunk.tag in (OPEN_TAG,):
            return []
        if chunk.tag == REOPEN_TAG:
            return self.reopened(chunk.meta)
        if chunk.tag == "clock":
            self._offset[chunk.meta["stream"]] = float(chunk.meta["offset_s"])
            return []
        if chunk.tag == "stream_lost":  # a secondary stream (markers) vanished: recording goes on
            name = self._streams.get(chunk.meta["stream"], {}).get("name", chunk.meta["stream"])
            label = f"LSL stream {name} lost: recording continues without it"
            at = self._clocks["emg"].last_index  # the newest EMG sample (None before any)
            return [Event("note", at, chunk.host_time_s, label=label, params=dict(chunk.meta))]
        if chunk.tag != "data":
            raise SourceError(f"unknown LSL journal chunk {chunk.tag!r}")
        stream = chunk.meta["stream"]
        stamps = np.asarray(chunk.arrays["stamps"], dtype=np.float64) + self._offset[stream]
        if stream == "markers":
            out = self._pulses.markers(list(chunk.meta["texts"]), stamps, chunk.host_time_s)
        elif stream == "emg":
            out = self._main(chunk.arrays["values"], stamps, chunk.host_time_s)
        else:
            out = self._second(chunk.arrays["values"], stamps, chunk.host_time_s)
        out += self._pulses.resolve()
        return out

    def reopened(self, description: Mapping) -> list[Block | Event]:
        """Check that the streams that came back are the same kind; keep numbering."""
        for name, new in description["streams"].items():
            old = self._streams.get(name)
            if old is None or new is None:
                continue
            if float(new["rate_hz"]) != float(old["rate_hz"]):
                raise SourceRateChangedError(
                    f"LSL stream {old['name']!r} came back at {new['rate_hz']:g} Hz instead of "
                    f"{old['rate_hz']:g} Hz; the data so far is saved: record a new session"
                )
            if int(new["channel_count"]) != int(old["channel_count"]) or (
                new["channel_format"] != old["channel_format"]
            ):
                raise SourceError(
                    f"LSL stream {old['name']!r} came back with {new['channel_count']} "
                    f"{new['channel_format']} channels instead of {old['channel_count']} "
                    f"{old['channel_format']}; the data so far is saved"
                )
            self._streams[name] = dict(new)
        for clock in self._clocks.values():
            clock.restart_check()
        return []

    def finish(self) -> list[Block | Event]:
        return self._pulses.resolve(final=True)

    # ------------------------------------------------------------------------------ streams
    def _main(self, values, stamps, host_s: float) -> list[Block | Event]:
        values = np.asarray(values)
        if values.shape[0] == 0:
            return []
        x = values.astype(np.float64, copy=False)
        counter = None if self._seq_col is None else x[:, self._seq_col]
        index = self._clocks["emg"].number(stamps, counter)
        emg = x[:, self._emg_cols] * self._emg_factor
        out: list[Block | Event] = []
        angle = None
        keep = ~np.isnan(emg).any(axis=1)
        if self._angle_col is not None:
            angle = x[:, [self._angle_col]] * self._angle_factor
            keep &= ~np.isnan(angle[:, 0])
        for sl in _runs(index, keep):
            first = int(index[sl][0])
            t_us = round(float(stamps[sl][0]) * 1e6)
            out.append(Block(EMG, first, quantise(emg[sl], EMG_RESOLUTION_UV), t_us, host_s))
            if angle is not None:
                counts = quantise(angle[sl], ANGLE_RESOLUTION_DEG)
                out.append(Block(ANGLE, first, counts, t_us, host_s))
        # events after the blocks: the recorder knows the EMG origin by then
        ttl = None if self._ttl_col is None else x[:, self._ttl_col]
        out += self._pulses.emg(index, ttl, keep, emg, host_s)
        return out

    def _second(self, values, stamps, host_s: float) -> list[Block | Event]:
        values = np.asarray(values)
        if values.shape[0] == 0:
            return []
        index = self._clocks["angle"].number(stamps)
        angle = values[:, [self._angle_stream_col]].astype(np.float64) * self._angle_factor
        out: list[Block | Event] = []
        for sl in _runs(index, ~np.isnan(angle[:, 0])):
            t_us = round(float(stamps[sl][0]) * 1e6)
            counts = quantise(angle[sl], ANGLE_RESOLUTION_DEG)
            out.append(Block(ANGLE, int(index[sl][0]), counts, t_us, host_s))
        return out


# ---------------------------------------------------------------------------------- helpers
def _runs(index: np.ndarray, keep: np.ndarray) -> list[slice]:
    """Slices of consecutive kept rows whose indices follow each other (each one a block)."""
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        return []
    if rows.size == index.size and (index.size < 2 or index[-1] - index[0] == index.size - 1):
        return [slice(0, index.size)]
    breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(index[rows]) != 1)) + 1
    out = []
    for part in np.split(rows, breaks):
        out.append(slice(int(part[0]), int(part[-1]) + 1))
    return out


def _labels(stream: Mapping) -> list[str]:
    chans = list(stream.get("channels") or [])
    n = int(stream["channel_count"])
    return [str((chans[i].get("label") if i < len(chans) else "") or "") for i in range(n)]


def _listing(labels: list[str]) -> str:
    return ", ".join(f"{i}={lab or '?'}" for i, lab in enumerate(labels)) or "none"


def _channel(spec: str, labels: list[str], stream: Mapping, what: str) -> int:
    spec = str(spec).strip()
    n = len(labels)
    if spec.lstrip("-").isdigit():
        i = int(spec)
        if not 0 <= i < n:
            raise SourceChannelError(
                f"{what}={spec}: LSL stream {stream['name']!r} has {n} channels (0 to {n - 1}: "
                f"{_listing(labels)})"
            )
        return i
    matches = [i for i, lab in enumerate(labels) if lab == spec]
    if not matches:
        matches = [i for i, lab in enumerate(labels) if lab.lower() == spec.lower()]
    if len(matches) != 1:
        how = "no" if not matches else "more than one"
        raise SourceChannelError(
            f"{what}={spec}: {how} channel of LSL stream {stream['name']!r} has that label "
            f"(channels: {_listing(labels)})"
        )
    return matches[0]


def _is_emg_type(kind) -> bool:
    return str(kind or "").strip().upper() == "EMG"


def _check_numeric(stream: Mapping, what: str) -> None:
    if not float(stream["rate_hz"]) > 0:
        raise SourceError(
            f"LSL stream {stream['name']!r} has an irregular rate (0 Hz): it cannot be {what}"
        )
    if stream["channel_format"] not in NUMERIC_FORMATS:
        raise SourceError(
            f"LSL stream {stream['name']!r} carries {stream['channel_format']} values: it "
            f"cannot be {what}"
        )


def _summary(stream: Mapping) -> dict:
    keys = ("name", "type", "source_id", "hostname", "uid", "rate_hz", "channel_count",
            "channel_format")  # fmt: skip
    return {k: stream.get(k) for k in keys}


def _device(main: Mapping) -> dict:
    return {
        "model": f"LSL stream {main['name']}"
        + (f" ({main['manufacturer']})" if main.get("manufacturer") else ""),
        "device_id": main.get("source_id") or main.get("uid") or main["name"],
        "firmware_version": "",
        "source_kind": "lsl",
        "lsl_name": main["name"],
        "lsl_type": main.get("type", ""),
        "lsl_source_id": main.get("source_id", ""),
        "lsl_hostname": main.get("hostname", ""),
        "lsl_channel_format": main["channel_format"],
        "rate_hz": float(main["rate_hz"]),
    }
