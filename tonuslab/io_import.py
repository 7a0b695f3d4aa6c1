"""Import EDF/EDF+ and CSV recordings as tonuslab session files.

EDF/EDF+ (pyedflib)
    EMG channels are recognised by their physical dimension (uV, µV, mV or V; stored in uV), the
    goniometer by degrees (deg, degree, °). The EDF digital samples are kept as the raw integer
    counts with ``scale``/``offset`` from the header's physical and digital ranges, so nothing
    is resampled or re-quantised. EDF+ annotations such as ``stim 12.5mA`` (optionally
    ``stim 12.5mA 1000us``; a decimal comma, ``stim 12,5 mA``, is read as a decimal point)
    become stimulus events; every other annotation becomes a marker (with an
    :class:`ImportDataWarning` when it starts with ``stim`` but is not understood). Stimuli
    outside the data (onset before the start or at or after the last EMG sample) are dropped
    with an :class:`ImportDataWarning`; when every stimulus is outside, the file is refused (its
    time base does not match the data). The EDF patient field is never copied (it may hold a
    name): give ``subject_id``.
CSV
    A header row and one column per signal; ``channel_map`` says which column is EMG (and its
    unit) and which is the angle, the sampling rate comes from ``rate_hz`` or a time column.
    Values are quantised to integer counts of 0.01 uV (EMG) and 0.001 deg (angle); a value
    beyond what an int32 count holds (about +/-21.47 V of EMG, +/-2.1e6 deg) is refused with its
    row and column. An optional stimulus column holds the intensity in mA while a pulse is
    delivered and 0 elsewhere: each rising edge (a non-zero row after a zero row, or the first
    row) is one stimulus, with the intensity of that row, however many rows the pulse spans.
"""

from __future__ import annotations

import csv
import math
import pathlib
import re
import warnings

import numpy as np

from tonuslab.errors import UsageError

EMG_UNITS = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1000.0, "v": 1e6}
ANGLE_UNITS = {"deg", "degree", "degrees", "°", "grad"}
_STIM = re.compile(
    r"^\s*stim\w*\s*[:=]?\s*(?P<ma>[-+]?\d+(?:[.,]\d+)?)\s*ma"
    r"(?:\s*[,;]?\s*(?P<us>\d+(?:[.,]\d+)?)\s*us)?",
    re.IGNORECASE,
)
CSV_EMG_SCALE_UV = 0.01
CSV_ANGLE_SCALE_DEG = 0.001
#: Largest magnitude of a stored count (``INT32_MIN`` is the fill value of missing samples).
MAX_COUNT = 2**31 - 1


class ImportFormatError(UsageError):
    """The input file cannot be imported (unknown format, no EMG channel, bad channel map)."""


class ImportDataWarning(UserWarning):
    """Something in the input was left out or read as a marker (``tonuslab import`` prints it)."""


def parse_stim_annotation(text: str) -> dict | None:
    """``"stim 12.5mA"`` -> ``{"intensity_ma": 12.5, "width_us": None}``; None otherwise.

    >>> parse_stim_annotation("stim 12.5mA 200us")
    {'intensity_ma': 12.5, 'width_us': 200.0}
    >>> parse_stim_annotation("stim 12,5 mA")  # decimal comma
    {'intensity_ma': 12.5, 'width_us': None}
    >>> parse_stim_annotation("start of stretch") is None
    True
    """
    m = _STIM.match(text or "")
    if not m:
        return None
    return {
        "intensity_ma": float(m.group("ma").replace(",", ".")),
        "width_us": None if m.group("us") is None else float(m.group("us").replace(",", ".")),
    }


def _unit_key(unit: str) -> str:
    return (unit or "").strip().lower().replace(" ", "")


def _select(labels: list[str], wanted, what: str) -> list[int]:
    """Indices of ``wanted`` (names or integer indices) among ``labels``."""
    out = []
    for w in wanted:
        w = str(w).strip()
        if w.isdigit() and int(w) < len(labels) and w not in labels:
            out.append(int(w))
            continue
        if w not in labels:
            raise ImportFormatError(
                f"no {what} channel '{w}' in the file; channels: {', '.join(labels)}"
            )
        out.append(labels.index(w))
    return out


def _metadata(options: dict) -> dict:
    meta = {
        "subject_id": options.get("subject_id"),
        "muscle": options.get("muscle"),
        "joint": options.get("joint"),
        "side": options.get("side"),
        "stretch_direction_sign": options.get("stretch_direction_sign", 1),
        "passive_range_deg": options.get("passive_range_deg"),
        "protocol": options.get("protocol"),
        "session_label": options.get("session_label"),
    }
    return {k: v for k, v in meta.items() if v is not None}


def import_edf(
    path,
    out,
    *,
    emg_channels=None,
    angle_channel=None,
    overwrite: bool = False,
    **options,
) -> pathlib.Path:
    """Convert an EDF/EDF+ file to a session file.

    Parameters
    ----------
    path, out : path-like
        EDF input and ``.h5`` output.
    emg_channels : list of str or int, optional
        EMG channel labels (default: every channel whose dimension is a voltage).
    angle_channel : str or int, optional
        Goniometer channel (default: the first channel in degrees).
    overwrite : bool
    **options
        ``subject_id``, ``muscle``, ``joint``, ``side``, ``stretch_direction_sign`` (+1/-1),
        ``passive_range_deg``, ``protocol``, ``session_label``, ``emg_rate_hz`` (override the
        header's rate, for files with a wrong header).
    """
    import pyedflib

    from acquire.session_file import write_session

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    try:
        reader = pyedflib.EdfReader(str(path))
    except OSError as exc:
        raise ImportFormatError(f"{path} is not a readable EDF/EDF+ file ({exc})") from exc
    try:
        n = reader.signals_in_file
        labels = [reader.getLabel(i).strip() for i in range(n)]
        units = [_unit_key(reader.getPhysicalDimension(i)) for i in range(n)]
        if emg_channels:
            emg_idx = _select(labels, emg_channels, "EMG")
        else:
            emg_idx = [i for i in range(n) if units[i] in EMG_UNITS]
        if not emg_idx:
            raise ImportFormatError(
                f"{path}: no EMG channel (physical dimension uV or mV); channels: "
                + ", ".join(f"{lab} [{u}]" for lab, u in zip(labels, units, strict=True))
                + " (map one with --emg LABEL)"
            )
        if angle_channel is not None:
            angle_idx = _select(labels, [angle_channel], "angle")[0]
        else:
            angle_idx = next((i for i in range(n) if units[i] in ANGLE_UNITS), None)
        rates = {i: float(reader.getSampleFrequency(i)) for i in range(n)}
        emg_rate = float(options.pop("emg_rate_hz", None) or rates[emg_idx[0]])
        if len({rates[i] for i in emg_idx}) > 1:
            raise ImportFormatError(
                f"{path}: the EMG channels have different sampling rates "
                f"({sorted({rates[i] for i in emg_idx})}); choose channels with --emg"
            )
        channels, emg_cols = [], []
        for i in emg_idx:
            factor = EMG_UNITS.get(units[i])
            if factor is None:
                raise ImportFormatError(f"channel {labels[i]} is in '{units[i]}', not a voltage")
            scale, offset = _edf_scale(reader, i)
            emg_cols.append(reader.readSignal(i, digital=True).astype(np.int32))
            channels.append(
                {
                    "name": labels[i],
                    "kind": "emg",
                    "unit": "uV",
                    "scale": scale * factor,
                    "offset": offset,
                    "highpass_hz": _prefilter(reader.getPrefilter(i), "HP"),
                    "lowpass_hz": _prefilter(reader.getPrefilter(i), "LP"),
                }
            )
        length = min(c.size for c in emg_cols)
        emg_counts = np.stack([c[:length] for c in emg_cols], axis=1)
        angle_counts = angle_rate = None
        if angle_idx is not None:
            scale, offset = _edf_scale(reader, angle_idx)
            angle_counts = reader.readSignal(angle_idx, digital=True).astype(np.int32)[:, None]
            angle_rate = rates[angle_idx]
            channels.append(
                {
                    "name": labels[angle_idx],
                    "kind": "angle",
                    "unit": "deg",
                    "scale": scale,
                    "offset": offset,
                }
            )
        events = []
        onsets, _durations, texts = reader.readAnnotations()
        for onset, text in zip(onsets, texts, strict=True):
            text = str(text)
            stim = parse_stim_annotation(text)
            if stim is None and text.strip().lower().startswith("stim"):
                warnings.warn(
                    f"annotation '{text}' at {float(onset):g} s starts with 'stim' but is not "
                    "'stim <mA>mA [<us>us]': kept as a marker, not a stimulus",
                    ImportDataWarning,
                    stacklevel=2,
                )
            if stim is not None:
                events.append(
                    {
                        "kind": "stimulus",
                        "emg_sample_index": round(float(onset) * emg_rate),
                        "time_s": float(onset),
                        "intensity_ma": stim["intensity_ma"],
                        "width_us": stim["width_us"],
                        "pulse_index": 0,
                        "label": text,
                    }
                )
            else:
                events.append({"kind": "marker", "time_s": float(onset), "label": text})
        start = reader.getStartdatetime()
    finally:
        reader.close()
    events = _drop_stimuli_outside(events, emg_counts.shape[0], emg_rate, path)
    meta = _metadata(options)
    if events and any(e["kind"] == "stimulus" for e in events):
        meta.setdefault("protocol", "hreflex")
    return write_session(
        out,
        emg_counts=emg_counts,
        emg_rate_hz=emg_rate,
        channels=channels,
        angle_counts=angle_counts,
        angle_rate_hz=angle_rate,
        metadata=meta,
        device={"model": "imported", "source_format": "EDF+", "source_file": path.name},
        events=events,
        attrs={"imported_from": path.name, "recording_start": start.isoformat()},
        overwrite=overwrite,
    )


def _drop_stimuli_outside(events: list[dict], n_emg: int, rate_hz: float, path) -> list[dict]:
    """Events without the stimuli that fall outside the EMG rows ``0 .. n_emg - 1``.

    Each dropped stimulus is reported in one :class:`ImportDataWarning`; when every stimulus is
    outside the data, the time base does not match and the import is refused.
    """
    stims = [e for e in events if e["kind"] == "stimulus"]
    outside = [e for e in stims if not 0 <= e["emg_sample_index"] < n_emg]
    if not outside:
        return events
    end_s = n_emg / rate_hz
    if len(outside) == len(stims):
        raise ImportFormatError(
            f"{path}: all {len(stims)} stimulus annotations lie outside the data (0 to "
            f"{end_s:g} s; first at {outside[0]['time_s']:g} s): check the EMG rate (--rate)"
        )
    warnings.warn(
        f"{len(outside)} of {len(stims)} stimulus annotations lie outside the data (0 to "
        f"{end_s:g} s; first at {outside[0]['time_s']:g} s) and were left out",
        ImportDataWarning,
        stacklevel=3,
    )
    drop = {id(e) for e in outside}
    return [e for e in events if id(e) not in drop]


def _to_counts(values: np.ndarray, scale: float, name: str, unit: str) -> np.ndarray:
    """Integer counts of ``scale`` per count; refuses a value an int32 count cannot hold."""
    counts = np.round(np.nan_to_num(values) / scale)
    bad = np.flatnonzero(np.abs(counts) > MAX_COUNT)
    if bad.size:
        i = int(bad[0])
        raise ImportFormatError(
            f"column '{name}', data row {i + 1}: {values[i]:g} {unit} is beyond what a session "
            f"stores (+/-{MAX_COUNT * scale:.6g} {unit} at {scale:g} {unit} per count; "
            f"{bad.size} such value(s)): check the column's unit"
        )
    return counts.astype(np.int32)


def _edf_scale(reader, i: int) -> tuple[float, float]:
    """(scale, offset) with physical = (digital - offset) * scale, from the EDF header."""
    pmin, pmax = reader.getPhysicalMinimum(i), reader.getPhysicalMaximum(i)
    dmin, dmax = reader.getDigitalMinimum(i), reader.getDigitalMaximum(i)
    if dmax == dmin or pmax == pmin:
        raise ImportFormatError(f"channel {reader.getLabel(i)} has an empty physical range")
    scale = (pmax - pmin) / (dmax - dmin)
    offset = dmin - pmin / scale
    return float(scale), float(offset)


def _prefilter(text: str, kind: str) -> float | None:
    m = re.search(kind + r"\s*:?\s*(\d+(?:\.\d+)?)\s*hz", text or "", re.IGNORECASE)
    return float(m.group(1)) if m else None


def _refuse_infinite(values: np.ndarray, name: str) -> None:
    bad = np.flatnonzero(np.isinf(values))
    if bad.size:
        raise ImportFormatError(
            f"column '{name}' holds an infinite value at data row {int(bad[0]) + 1} "
            f"({bad.size} in all); leave a cell empty (or NaN) for a sample that is missing"
        )


def _gap_records(stream: str, missing: np.ndarray) -> list[dict]:
    """One gap record per run of rows with an empty or NaN cell (the whole row is missing)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], missing, [False]]).astype(np.int8)))
    return [
        {
            "stream": stream,
            "start_index": int(a),
            "n_samples": int(b - a),
            "reason": "missing_in_source",
        }
        for a, b in zip(edges[::2], edges[1::2], strict=True)
    ]


def import_csv(
    path,
    out,
    *,
    channel_map: dict,
    rate_hz: float | None = None,
    overwrite: bool = False,
    **options,
) -> pathlib.Path:
    """Convert a CSV file to a session file.

    Parameters
    ----------
    channel_map : dict
        ``{"emg": {"COLUMN": "uV"|"mV"|"V", ...}, "angle": "COLUMN", "time": "COLUMN",
        "stim": "COLUMN"}``; ``emg`` is required.
    rate_hz : float, optional
        Sampling rate of the rows (needed without a time column).

    Notes
    -----
    An empty or NaN cell marks a missing sample: its row becomes a gap of that stream (a gap
    record with reason ``"missing_in_source"``; the whole row reads as NaN, as a sample never
    received does in a recording). An infinite value, or one beyond what an int32 count holds
    (about +/-21.47 V of EMG, +/-2.1e6 deg), is refused (:class:`ImportFormatError`, naming the
    row and column). In the stimulus column each rising edge (a non-zero row after a zero row, or
    the first row) is one stimulus with that row's intensity; the rows that follow while the
    value stays non-zero belong to the same pulse.
    """
    from acquire.session_file import write_session

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ImportFormatError(f"{path} is empty") from None
        rows = [r for r in reader if r]
    if not channel_map.get("emg"):
        raise ImportFormatError("the channel map names no EMG column (use --emg COLUMN[:UNIT])")

    def column(name):
        if name not in header:
            raise ImportFormatError(f"no column '{name}' in {path}; columns: {', '.join(header)}")
        j = header.index(name)
        try:
            return np.array([float(r[j]) if r[j].strip() else math.nan for r in rows])
        except (ValueError, IndexError) as exc:
            raise ImportFormatError(f"column '{name}' of {path} is not numeric ({exc})") from exc

    if rate_hz is None:
        if not channel_map.get("time"):
            raise ImportFormatError("give the sampling rate (--rate HZ) or a time column")
        t = column(channel_map["time"])
        dt = np.diff(t)
        if t.size < 2 or not np.all(dt > 0) or np.ptp(dt) > 1e-3 * np.median(dt):
            raise ImportFormatError("the time column is not uniformly increasing; give --rate")
        rate_hz = 1.0 / float(np.median(dt))
    if not rate_hz > 0:
        raise ImportFormatError(f"the sampling rate must be positive, got {rate_hz}")
    channels, cols = [], []
    for name, unit in channel_map["emg"].items():
        factor = EMG_UNITS.get(_unit_key(unit or "uV"))
        if factor is None:
            raise ImportFormatError(f"EMG unit '{unit}' of column {name}: use uV, mV or V")
        values = column(name) * factor
        _refuse_infinite(values, name)
        cols.append(values)
        channels.append(
            {"name": name, "kind": "emg", "unit": "uV", "scale": CSV_EMG_SCALE_UV, "offset": 0.0}
        )
    emg_uv = np.stack(cols, axis=1)
    gaps = _gap_records("emg", np.isnan(emg_uv).any(axis=1))
    emg_counts = np.stack(
        [
            _to_counts(emg_uv[:, j], CSV_EMG_SCALE_UV, name, "uV")
            for j, name in enumerate(channel_map["emg"])
        ],
        axis=1,
    )
    angle_counts = None
    if channel_map.get("angle"):
        a = column(channel_map["angle"])
        _refuse_infinite(a, channel_map["angle"])
        gaps += _gap_records("angle", np.isnan(a))
        angle_counts = _to_counts(a, CSV_ANGLE_SCALE_DEG, channel_map["angle"], "deg")[:, None]
        channels.append(
            {
                "name": channel_map["angle"],
                "kind": "angle",
                "unit": "deg",
                "scale": CSV_ANGLE_SCALE_DEG,
                "offset": 0.0,
            }
        )
    events = []
    if channel_map.get("stim"):
        s = np.nan_to_num(column(channel_map["stim"]))
        on = s > 0
        rising = on & ~np.concatenate([[False], on[:-1]])  # one pulse per run of non-zero rows
        for i in np.flatnonzero(rising):
            events.append(
                {
                    "kind": "stimulus",
                    "emg_sample_index": int(i),
                    "intensity_ma": float(s[i]),
                    "pulse_index": 0,
                }
            )
    return write_session(
        out,
        emg_counts=emg_counts,
        emg_rate_hz=float(rate_hz),
        channels=channels,
        angle_counts=angle_counts,
        angle_rate_hz=None if angle_counts is None else float(rate_hz),
        metadata=_metadata(options),
        device={"model": "imported", "source_format": "CSV", "source_file": path.name},
        events=events,
        gaps=gaps,
        attrs={"imported_from": path.name},
        overwrite=overwrite,
    )
