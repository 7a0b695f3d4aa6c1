"""What every reader of :mod:`tonuslab.io_import` shares: errors, units, selection, gap records."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np

from tonuslab.errors import UsageError

#: EMG unit spellings -> factor to microvolts.
EMG_UNITS = {
    "uv": 1.0,
    "µv": 1.0,
    "μv": 1.0,
    "microvolt": 1.0,
    "microvolts": 1.0,
    "mv": 1000.0,
    "millivolt": 1000.0,
    "millivolts": 1000.0,
    "v": 1e6,
    "volt": 1e6,
    "volts": 1e6,
}
#: Angle unit spellings -> factor to degrees.
ANGLE_FACTORS = {
    "deg": 1.0,
    "degree": 1.0,
    "degrees": 1.0,
    "°": 1.0,
    "grad": 1.0,  # kept as degrees, as before (some EDF writers spell degrees this way)
    "rad": 180.0 / math.pi,
    "radian": 180.0 / math.pi,
    "radians": 180.0 / math.pi,
}
ANGLE_UNITS = {k for k, v in ANGLE_FACTORS.items() if v == 1.0}
#: Counts of EMG (uV) and angle (deg) written for floating-point sources.
EMG_SCALE_UV = 0.01
ANGLE_SCALE_DEG = 0.001
#: Largest magnitude of a stored count (``INT32_MIN`` is the fill value of missing samples).
MAX_COUNT = 2**31 - 1

_STIM = re.compile(
    r"^\s*stim\w*\s*[:=]?\s*(?P<ma>[-+]?\d+(?:[.,]\d+)?)\s*ma"
    r"(?:\s*[,;]?\s*(?P<us>\d+(?:[.,]\d+)?)\s*us)?",
    re.IGNORECASE,
)


class ImportFormatError(UsageError):
    """The input file cannot be imported (unknown format, no EMG channel, bad channel map)."""


class ImportDataWarning(UserWarning):
    """Something in the input was left out or read as a marker (``tonuslab import`` prints it)."""


def parse_stim_annotation(text: str) -> dict | None:
    """``"stim 12.5mA"`` -> ``{"intensity_ma": 12.5, "width_us": None}``; None otherwise.

    The rule of EDF+ annotations, also used for XDF marker strings and C3D event labels.
    """
    m = _STIM.match(text or "")
    if not m:
        return None
    return {
        "intensity_ma": float(m.group("ma").replace(",", ".")),
        "width_us": None if m.group("us") is None else float(m.group("us").replace(",", ".")),
    }


def unit_key(unit: str) -> str:
    """Lower-case unit spelling without spaces (``" µV "`` -> ``"µv"``)."""
    return (unit or "").strip().lower().replace(" ", "")


def emg_factor(unit: str, where: str) -> float:
    """Factor from ``unit`` to microvolts; :class:`ImportFormatError` naming ``where`` if none."""
    factor = EMG_UNITS.get(unit_key(unit))
    if factor is None:
        raise ImportFormatError(
            f"{where} is in '{unit}', not a voltage: give its unit (e.g. --emg NAME:uV)"
        )
    return factor


def split_unit(spec: str) -> tuple[str, str | None]:
    """``"EMG L:mV"`` -> ``("EMG L", "mV")``; ``"EMG L"`` -> ``("EMG L", None)``.

    Only a known unit after the last ``:`` is split off, so labels with colons stay whole.
    """
    head, sep, tail = str(spec).rpartition(":")
    if sep and unit_key(tail) in EMG_UNITS:
        return head, tail
    return str(spec), None


def select(labels: list[str], wanted, what: str) -> list[int]:
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


def metadata(options: dict) -> dict:
    """Session metadata from the importer's keyword options (None values left out)."""
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


def to_counts(values: np.ndarray, scale: float, name: str, unit: str) -> np.ndarray:
    """Integer counts of ``scale`` per count; refuses a value an int32 count cannot hold.

    NaN becomes 0 here (its row is a gap, written as the fill value).
    """
    counts = np.round(np.nan_to_num(values, nan=0.0, posinf=np.inf, neginf=-np.inf) / scale)
    bad = np.flatnonzero(~(np.abs(counts) <= MAX_COUNT))
    if bad.size:
        i = int(bad[0])
        raise ImportFormatError(
            f"column '{name}', data row {i + 1}: {values[i]:g} {unit} is beyond what a session "
            f"stores (+/-{MAX_COUNT * scale:.6g} {unit} at {scale:g} {unit} per count; "
            f"{bad.size} such value(s)): check the column's unit"
        )
    return counts.astype(np.int32)


def gap_records(stream: str, missing: np.ndarray, reason: str = "missing_in_source") -> list:
    """One gap record per run of True in ``missing`` (shape (n,), one flag per row)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], missing, [False]]).astype(np.int8)))
    return [
        {"stream": stream, "start_index": int(a), "n_samples": int(b - a), "reason": reason}
        for a, b in zip(edges[::2], edges[1::2], strict=True)
    ]


def rising_edges(values: np.ndarray, threshold: float) -> np.ndarray:
    """Rows where ``values`` crosses above ``threshold`` (the first row counts if above it)."""
    on = np.nan_to_num(values, nan=-np.inf) > threshold
    return np.flatnonzero(on & ~np.concatenate([[False], on[:-1]]))


def drop_stimuli_outside(events: list[dict], n_emg: int, rate_hz: float, path) -> list[dict]:
    """Events without the stimuli that fall outside the EMG rows ``0 .. n_emg - 1``.

    Each dropped stimulus is reported in one :class:`ImportDataWarning`; when every stimulus is
    outside the data, the time base does not match and the import is refused.
    """
    stims = [e for e in events if e["kind"] == "stimulus"]
    outside = [e for e in stims if not 0 <= e["emg_sample_index"] < n_emg]
    if not outside:
        return events
    end_s = n_emg / rate_hz
    first = outside[0].get("time_s", outside[0]["emg_sample_index"] / rate_hz)
    if len(outside) == len(stims):
        raise ImportFormatError(
            f"{path}: all {len(stims)} stimulus annotations lie outside the data (0 to "
            f"{end_s:g} s; first at {first:g} s): check the EMG rate (--rate)"
        )
    warnings.warn(
        f"{len(outside)} of {len(stims)} stimulus annotations lie outside the data (0 to "
        f"{end_s:g} s; first at {first:g} s) and were left out",
        ImportDataWarning,
        stacklevel=3,
    )
    drop = {id(e) for e in outside}
    return [e for e in events if id(e) not in drop]


def stimulus_or_marker(text: str, *, time_s: float, emg_sample_index: int) -> dict:
    """An event dict from a marker text: a stimulus if it parses as ``stim <mA>mA``."""
    stim = parse_stim_annotation(text)
    if stim is None and text.strip().lower().startswith("stim"):
        warnings.warn(
            f"marker '{text}' at {time_s:g} s starts with 'stim' but is not "
            "'stim <mA>mA [<us>us]': kept as a marker, not a stimulus",
            ImportDataWarning,
            stacklevel=3,
        )
    if stim is None:
        return {"kind": "marker", "time_s": float(time_s), "label": text}
    return {
        "kind": "stimulus",
        "emg_sample_index": int(emg_sample_index),
        "time_s": float(time_s),
        "intensity_ma": stim["intensity_ma"],
        "width_us": stim["width_us"],
        "pulse_index": 0,
        "label": text,
    }


def needs_emg(path, what: str) -> None:
    """Refuse an import without EMG in one line (the session format needs an EMG stream)."""
    raise ImportFormatError(
        f"{path}: {what} has no EMG channel; a session file still needs at least one EMG "
        "channel (angle-only sessions come with the EMG-free session format): map one with "
        "--emg"
    )
