"""XDF (LabRecorder / Lab Streaming Layer) reader of ``tonuslab import``.

What goes where
    ``emg="STREAM[:CH,CH...][:UNIT]"``, ``angle="STREAM[:CH]"`` and ``stim="STREAM[:CH]"`` pick
    streams by name and channels by label or 0-based index. Without them the EMG stream is the
    first of type ``EMG`` (its channels whose unit is a voltage or whose type is EMG, else all),
    the angle the first stream of type ``Angle``/``Goniometer`` (its first channel) and the
    stimuli the first string stream of type ``Markers``. ``stim`` naming a numeric channel is a
    TTL trigger: each rising edge past the midpoint of its range (or ``ttl_threshold``) is one
    stimulus at that exact sample; a ``stim <mA>mA`` marker within 0.5 s gives its intensity.
    Marker strings follow the rules of EDF+ annotations (``stim 12.5mA [200us]``); the others
    are kept as markers.
Clocks
    Each stream's ClockOffset chunks are fitted with a line (robust to a delayed measurement,
    see :func:`~tonuslab.io_import._xdf_reader.clock_fit`) and added to its stamps, so streams
    recorded on two machines align. Session time 0 is the first EMG sample; the angle stream's
    ``t0_s`` is its first corrected stamp minus that. Marker stamps go through the same
    correction and are placed on the EMG row the EMG stamps put at that time (a line through
    the chunk stamps, so a rate that differs from the nominal one by some ppm does not drift).
Rates and gaps
    Each stream keeps its nominal rate, stored as it is (2148.1481 Hz stays 2148.1481 Hz). The
    sample count is the index. The stamps are never dejittered: a step between two consecutive
    stamps larger than ``1.5 / rate + jitter`` (``jitter_ms``, default 5 ms) is a gap of exactly
    ``round(dt * rate) - 1`` samples (reason ``timestamp_gap``); smaller steps, the jitter of
    host-stamped chunks, are not. A stream whose stamps advance at a rate more than 2 % away
    from its nominal rate over a stretch of the recording (a rate changed mid-recording) is
    refused.
Damaged files
    A file that ends inside a chunk (a recorder that crashed) imports every complete sample
    before that point, says so in an :class:`ImportDataWarning`, and the session's state is
    ``recovered``. Corrupt structure (a bad chunk length or tag, a header that does not parse)
    is refused in one line.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import pathlib
import warnings

import numpy as np

from tonuslab.io_import import _xdf_reader as xr
from tonuslab.io_import._common import (
    ANGLE_FACTORS,
    ANGLE_SCALE_DEG,
    EMG_SCALE_UV,
    EMG_UNITS,
    MAX_COUNT,
    ImportDataWarning,
    ImportFormatError,
    emg_factor,
    metadata,
    needs_emg,
    rising_edges,
    split_unit,
    stimulus_or_marker,
    unit_key,
)

ANGLE_TYPES = {"angle", "goniometer", "gonio", "jointangle", "joint_angle"}
DEFAULT_JITTER_MS = 5.0
#: Largest departure of a stream's stamped rate from its nominal rate before it is refused.
RATE_TOLERANCE = 0.02


def _find_stream(layout: xr.XdfLayout, name: str, what: str) -> xr.XdfStream:
    streams = list(layout.streams.values())
    for key in (lambda s: s.name == name, lambda s: s.name.lower() == name.lower(),
                lambda s: str(s.stream_id) == name):  # fmt: skip
        hit = [s for s in streams if key(s)]
        if hit:
            return hit[0]
    raise ImportFormatError(
        f"no {what} stream '{name}' in {layout.path}; streams: "
        + ", ".join(s.describe() for s in streams)
    )


def _parse_spec(layout, spec: str, what: str):
    """(stream, channel indices or None, unit or None) of ``STREAM[:CH,CH...][:UNIT]``."""
    spec, unit = split_unit(spec)
    names = {s.name for s in layout.streams.values()}
    if spec in names or ":" not in spec:
        stream, chans = _find_stream(layout, spec, what), None
    else:
        head, _, tail = spec.rpartition(":")
        stream = _find_stream(layout, head, what)
        labels = stream.labels
        chans = []
        for c in tail.split(","):
            c = c.strip()
            if c in labels:
                chans.append(labels.index(c))
            elif c.isdigit() and int(c) < stream.channel_count:
                chans.append(int(c))
            else:
                raise ImportFormatError(
                    f"no channel '{c}' in {what} stream '{stream.name}' (channels "
                    f"0 to {stream.channel_count - 1}: {', '.join(labels)})"
                )
    return stream, chans, unit


def _by_type(layout, types: set[str], numeric: bool = True):
    for s in layout.streams.values():
        if unit_key(s.type).replace("-", "") in types and (s.dtype is not None) == numeric:
            return s
    return None


class _Target:
    """One destination stream of the session (emg or angle) fed from one XDF stream."""

    def __init__(self, kind: str, stream: xr.XdfStream, cols: list[int], factors: list[float]):
        self.kind, self.stream, self.cols, self.factors = kind, stream, cols, factors
        self.integer = stream.dtype.kind == "i"
        base = EMG_SCALE_UV if kind == "emg" else ANGLE_SCALE_DEG
        self.scales = [f if self.integer else base for f in factors]

    def counts(self, vals: np.ndarray) -> np.ndarray:
        sub = vals[:, self.cols]
        if self.integer:
            if sub.dtype.itemsize > 4 and np.any(np.abs(sub) > MAX_COUNT):
                raise ImportFormatError(
                    f"stream '{self.stream.name}' holds integers beyond an int32 count"
                )
            return sub.astype(np.int32)
        x = sub.astype(np.float64) * (np.asarray(self.factors) / np.asarray(self.scales))
        bad = ~(np.abs(x) <= MAX_COUNT)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ImportFormatError(
                f"stream '{self.stream.name}', channel {self.stream.labels[self.cols[j]]}: "
                f"value {sub[i, j]:g} is {'not finite' if not np.isfinite(sub[i, j]) else ''}"
                f"{'' if not np.isfinite(sub[i, j]) else 'beyond what a session stores'}"
            )
        return np.rint(x).astype(np.int32)


def _emg_target(layout, spec, path) -> _Target | None:
    if spec:
        stream, chans, unit = _parse_spec(layout, spec, "EMG")
    else:
        stream, chans, unit = _by_type(layout, {"emg"}), None, None
        if stream is None:
            return None
    if stream.dtype is None:
        raise ImportFormatError(f"EMG stream '{stream.name}' holds strings, not samples")
    if chans is None:
        chans = [
            i
            for i, c in enumerate(stream.channels)
            if unit_key(c.unit) in EMG_UNITS or c.type.lower() == "emg"
        ] or list(range(stream.channel_count))
    factors = []
    for i in chans:
        u = unit or stream.channels[i].unit
        if not u:
            raise ImportFormatError(
                f"EMG stream '{stream.name}', channel {stream.labels[i]}: no unit in the stream "
                f"description; give it: --emg '{stream.name}:{stream.labels[i]}:uV' (or mV, V)"
            )
        factors.append(emg_factor(u, f"EMG stream '{stream.name}', channel {stream.labels[i]}"))
    return _Target("emg", stream, chans, factors)


def _angle_target(layout, spec) -> _Target | None:
    if spec:
        stream, chans, _ = _parse_spec(layout, spec, "angle")
    else:
        stream, chans = _by_type(layout, ANGLE_TYPES), None
        if stream is None:
            return None
    if stream.dtype is None:
        raise ImportFormatError(f"angle stream '{stream.name}' holds strings, not samples")
    if chans is None:
        chans = [
            next(
                (i for i, c in enumerate(stream.channels) if unit_key(c.unit) in ANGLE_FACTORS),
                0,
            )
        ]
    i = chans[0]
    u = unit_key(stream.channels[i].unit)
    if not u:
        warnings.warn(
            f"angle stream '{stream.name}', channel {stream.labels[i]} has no unit: read as "
            "degrees",
            ImportDataWarning,
            stacklevel=3,
        )
        u = "deg"
    if u not in ANGLE_FACTORS:
        raise ImportFormatError(
            f"angle stream '{stream.name}', channel {stream.labels[i]} is in '{u}', not an angle "
            "(deg or rad)"
        )
    return _Target("angle", stream, [i], [ANGLE_FACTORS[u]])


def _check_rate(stream: xr.XdfStream, anchors: np.ndarray, path) -> float:
    """Effective rate from (row, corrected stamp) anchors; refuses a rate that moved."""
    rate = stream.nominal_srate
    if anchors.shape[0] < 3 or anchors[-1, 1] - anchors[0, 1] <= 0:
        return rate
    rows, ts = anchors[:, 0], anchors[:, 1]
    eff = float((rows[-1] - rows[0]) / (ts[-1] - ts[0]))
    span = ts[-1] - ts[0]
    win = max(span / 10, 2.0)
    edges = np.arange(ts[0], ts[-1] - win / 2, win)
    for a in edges:
        sel = np.flatnonzero((ts >= a) & (ts <= a + win))
        if sel.size < 2 or ts[sel[-1]] - ts[sel[0]] < win / 2:
            continue
        r = (rows[sel[-1]] - rows[sel[0]]) / (ts[sel[-1]] - ts[sel[0]])
        if abs(r / rate - 1) > RATE_TOLERANCE:
            raise ImportFormatError(
                f"{path}: stream '{stream.name}' runs at {r:.6g} Hz from {a - ts[0]:.1f} s on, "
                f"not its nominal {rate:g} Hz (its rate changed mid-recording); "
                "split the recording or export each part"
            )
    return eff


def _feed(writer, target_list, stream, data, fit, gap_s, path, ttl=None):
    """Decode every chunk of ``stream`` into the writer; returns anchors and TTL samples."""
    rate = stream.nominal_srate
    last_raw = 0.0
    row = 0
    first_ts = prev = None
    anchors = []
    ttl_vals = []
    intercept, slope = fit
    for chunk in stream.chunks:
        try:
            ts, vals = xr.read_samples(data, stream, chunk, last_raw)
        except ValueError as exc:
            raise ImportFormatError(f"{path}: corrupt XDF ({exc})") from None
        if ts.size == 0:
            continue
        corr = ts + intercept + slope * ts
        if first_ts is None:
            first_ts = float(corr[0])
            steps = np.diff(corr)
            brk = np.flatnonzero(steps > 1.5 / rate + gap_s) + 1
            missing = np.rint(steps[brk - 1] * rate).astype(np.int64) - 1
        else:
            steps = np.diff(np.concatenate([[prev], corr]))
            brk = np.flatnonzero(steps > 1.5 / rate + gap_s)
            missing = np.rint(steps[brk] * rate).astype(np.int64) - 1
        gap_before = dict(zip(brk.tolist(), missing.tolist(), strict=True))
        bounds = sorted({0, *gap_before, corr.size})
        for a, b in itertools.pairwise(bounds):
            row += max(gap_before.get(a, 0), 0)
            anchors.append((row, corr[a]))
            block = vals[a:b]
            for tgt in target_list:
                writer.append(tgt.kind, tgt.counts(block), start_index=row,
                              gap_reason="timestamp_gap")  # fmt: skip
            if ttl is not None:
                ttl_vals.append((row, np.asarray(block[:, ttl], dtype=float)))
            row += b - a
        prev = float(corr[-1])
        last_raw = float(ts[-1])
    if first_ts is not None:
        anchors.append((row - 1, prev))
    return np.asarray(anchors, dtype=float).reshape(-1, 2), first_ts, row, ttl_vals


def _read_other(data, stream, path):
    """(corrected stamps, values) of a whole small stream (markers, a TTL stream)."""
    intercept, slope, _ = xr.clock_fit(stream)
    all_ts, all_vals, last = [], [], 0.0
    for chunk in stream.chunks:
        try:
            ts, vals = xr.read_samples(data, stream, chunk, last)
        except ValueError as exc:
            raise ImportFormatError(f"{path}: corrupt XDF ({exc})") from None
        if ts.size:
            last = float(ts[-1])
            all_ts.append(ts + intercept + slope * ts)
            all_vals.extend(vals) if isinstance(vals, list) else all_vals.append(vals)
    ts = np.concatenate(all_ts) if all_ts else np.zeros(0)
    return ts, all_vals


def import_xdf(
    path,
    out,
    *,
    emg: str | None = None,
    angle: str | None = None,
    stim: str | None = None,
    jitter_ms: float = DEFAULT_JITTER_MS,
    ttl_threshold: float | None = None,
    overwrite: bool = False,
    **options,
) -> pathlib.Path:
    """Convert an XDF file to a session file (see the module docstring for every rule).

    Parameters
    ----------
    path, out : path-like
        ``.xdf`` (or ``.xdfz``) input and ``.h5`` output.
    emg, angle, stim : str, optional
        ``STREAM[:CHANNEL,...][:UNIT]`` choices (default: by stream type).
    jitter_ms : float
        Jitter margin of the gap rule, in ms.
    ttl_threshold : float, optional
        Level of a TTL ``stim`` channel's rising edge (default: midpoint of its range).
    overwrite : bool
    **options
        Session metadata (``subject_id``, ``muscle``, ...).

    Returns
    -------
    pathlib.Path
        The session file, written to a temporary name and renamed when complete.
    """
    from acquire.session_file import SessionWriter

    path, out = pathlib.Path(path), pathlib.Path(out)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    if out.exists() and not overwrite:
        raise ImportFormatError(f"{out} exists; choose another name or --overwrite")
    if not (jitter_ms >= 0 and math.isfinite(jitter_ms)):
        raise ImportFormatError(f"the jitter margin must be >= 0 ms, got {jitter_ms}")
    data = xr.open_data(path)
    layout = xr.scan(path, data)
    if not layout.streams:
        raise ImportFormatError(f"{path}: no stream header in the file")
    emg_t = _emg_target(layout, emg, path)
    angle_t = _angle_target(layout, angle)
    for t in (emg_t, angle_t):
        if t is not None and not t.stream.nominal_srate > 0:
            raise ImportFormatError(
                f"stream '{t.stream.name}' is irregular (nominal_srate 0), not sampled"
            )
    if emg_t is None:
        if angle_t is None:
            raise ImportFormatError(
                f"{path}: no EMG stream (type EMG) and no angle stream; streams: "
                + ", ".join(s.describe() for s in layout.streams.values())
                + " (choose with --emg STREAM[:CHANNEL])"
            )
        needs_emg(path, "the XDF file")
    stim_stream, stim_col = None, None
    if stim:
        stim_stream, cols, _ = _parse_spec(layout, stim, "stimulus")
        if stim_stream.dtype is not None:
            stim_col = (cols or [0])[0]
    else:
        stim_stream = _by_type(layout, {"markers", "marker", "events"}, numeric=False)
    if layout.note:
        warnings.warn(
            f"{path.name}: {layout.note}; every complete sample before it was imported",
            ImportDataWarning,
            stacklevel=2,
        )
    channels = [
        {
            "name": emg_t.stream.labels[i],
            "kind": "emg",
            "unit": "uV",
            "scale": s,
            "offset": 0.0,
        }
        for i, s in zip(emg_t.cols, emg_t.scales, strict=True)
    ]
    if angle_t is not None:
        channels.append(
            {
                "name": angle_t.stream.labels[angle_t.cols[0]],
                "kind": "angle",
                "unit": "deg",
                "scale": angle_t.scales[0],
                "offset": 0.0,
            }
        )
    tmp = out.with_name(out.name + ".partial")
    gap_s = jitter_ms / 1000.0
    summary = {}
    try:
        writer = SessionWriter(
            tmp,
            channels=channels,
            emg_rate_hz=emg_t.stream.nominal_srate,
            angle_rate_hz=None if angle_t is None else angle_t.stream.nominal_srate,
            metadata=metadata(options),
            device={
                "model": "imported",
                "source_format": "XDF",
                "source_file": path.name,
                "emg_stream": emg_t.stream.name,
                "hostname": emg_t.stream.hostname,
            },
            overwrite=True,
        )
        try:
            same = angle_t is not None and angle_t.stream is emg_t.stream
            ttl_here = stim_col if stim_stream is emg_t.stream else None
            emg_fit = xr.clock_fit(emg_t.stream)
            targets = [emg_t, angle_t] if same else [emg_t]
            anchors, emg0, n_emg, ttl_vals = _feed(
                writer, targets, emg_t.stream, data, emg_fit[:2], gap_s, path, ttl_here
            )
            if emg0 is None:
                raise ImportFormatError(f"{path}: EMG stream '{emg_t.stream.name}' has no samples")
            eff = _check_rate(emg_t.stream, anchors, path)
            summary["emg"] = _stream_summary(emg_t.stream, emg_fit, n_emg, eff)
            writer.set_stream_origin("emg", first_device_sample=0, device_time_us_row0=0, t0_s=0.0)
            # row of the EMG stream at a corrected time: a line through the chunk anchors
            if anchors.shape[0] >= 2 and np.ptp(anchors[:, 1]) > 0:
                slope, icpt = np.polyfit(anchors[:, 1] - emg0, anchors[:, 0], 1)
            else:
                slope, icpt = emg_t.stream.nominal_srate, 0.0

            def row_at(t_session):
                return np.rint(icpt + slope * np.asarray(t_session)).astype(np.int64)

            if angle_t is not None:
                if same:
                    writer.set_stream_origin("angle", first_device_sample=0,
                                             device_time_us_row0=0, t0_s=0.0)  # fmt: skip
                else:
                    a_fit = xr.clock_fit(angle_t.stream)
                    a_anchors, a0, n_a, _ = _feed(
                        writer, [angle_t], angle_t.stream, data, a_fit[:2], gap_s, path
                    )
                    if a0 is None:
                        raise ImportFormatError(
                            f"{path}: angle stream '{angle_t.stream.name}' has no samples"
                        )
                    a_eff = _check_rate(angle_t.stream, a_anchors, path)
                    summary["angle"] = _stream_summary(angle_t.stream, a_fit, n_a, a_eff)
                    writer.set_stream_origin(
                        "angle",
                        first_device_sample=0,
                        device_time_us_row0=round((a0 - emg0) * 1e6),
                        t0_s=a0 - emg0,
                    )
            events = _events(
                data, layout, stim_stream, stim_col, ttl_vals, ttl_threshold, emg0, row_at, path
            )
            events = _keep_inside(events, n_emg, emg_t.stream.nominal_srate)
            for ev in events:
                ev = dict(ev)
                writer.add_event(ev.pop("kind"), **ev)
            writer.set_attrs(
                imported_from=path.name,
                xdf_streams=json.dumps(summary),
                xdf_jitter_margin_ms=float(jitter_ms),
                **({"import_note": layout.note} if layout.note else {}),
            )
            writer.close("recovered" if layout.truncated_at is not None else "complete")
        except BaseException:
            writer.close("recovered")
            raise
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        del data
    return out


def _stream_summary(stream, fit, n_rows, eff) -> dict:
    return {
        "name": stream.name,
        "type": stream.type,
        "hostname": stream.hostname,
        "source_id": stream.source_id,
        "nominal_srate_hz": stream.nominal_srate,
        "effective_srate_hz": eff,
        "n_rows": int(n_rows),
        "clock_offset_intercept_s": fit[0],
        "clock_offset_slope": fit[1],
        "clock_offset_residual_max_s": fit[2],
        "n_clock_offsets": len(stream.clock_times),
    }


def _events(data, layout, stim_stream, stim_col, ttl_vals, threshold, emg0, row_at, path):
    events = []
    marker_stims = []
    for s in layout.streams.values():
        if s.dtype is not None or (s is stim_stream and stim_col is not None):
            continue
        if stim_stream is not None and s is not stim_stream and stim_col is None:
            continue
        ts, vals = _read_other(data, s, path)
        t_session = ts - emg0
        rows = row_at(t_session) if ts.size else []
        for t, r, v in zip(t_session, rows, vals, strict=True):
            text = " ".join(str(x) for x in v).strip()
            ev = stimulus_or_marker(text, time_s=float(t), emg_sample_index=int(r))
            if ev["kind"] == "stimulus" and stim_col is not None:
                marker_stims.append(ev)  # a TTL gives the time; the marker its intensity
                events.append({"kind": "marker", "time_s": float(t), "label": text})
            else:
                events.append(ev)
    if stim_col is None:
        return events
    if ttl_vals:  # TTL channel of the EMG stream: exact rows
        rows = np.concatenate([r + np.arange(v.size) for r, v in ttl_vals])
        vals = np.concatenate([v for _, v in ttl_vals])
    else:
        ts, vals_list = _read_other(data, stim_stream, path)
        vals = np.concatenate(vals_list)[:, stim_col].astype(float) if vals_list else np.zeros(0)
        rows = row_at(ts - emg0)
    if vals.size == 0:
        return events
    half_s_rows = 0.5 * (row_at(1.0) - row_at(0.0))
    level = threshold if threshold is not None else 0.5 * (np.nanmin(vals) + np.nanmax(vals))
    for k in rising_edges(vals, level):
        r = int(rows[k])
        near = [m for m in marker_stims if abs(m["emg_sample_index"] - r) <= half_s_rows]
        ev = {"kind": "stimulus", "emg_sample_index": r, "pulse_index": 0, "label": "TTL"}
        if near:
            m = min(near, key=lambda m: abs(m["emg_sample_index"] - r))
            ev.update(intensity_ma=m["intensity_ma"], width_us=m["width_us"], label=m["label"])
        events.append(ev)
    return events


def _keep_inside(events, n_emg, rate):
    inside = [e for e in events if e["kind"] != "stimulus" or 0 <= e["emg_sample_index"] < n_emg]
    if len(inside) < len(events):
        warnings.warn(
            f"{len(events) - len(inside)} stimulus marker(s) lie outside the EMG data (0 to "
            f"{n_emg / rate:g} s) and were left out",
            ImportDataWarning,
            stacklevel=3,
        )
    return inside
