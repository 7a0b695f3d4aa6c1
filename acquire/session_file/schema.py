"""Session-file schema: format constants, record dtypes, metadata and channel-table rules.

The layout itself is documented in ``docs/session-format.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import h5py
import numpy as np

from acquire.errors import (
    MetadataError,
    PersonalDataError,
    SessionFileError,
)

#: Value of the root attribute ``tonuslab_format`` that marks a session file.
FORMAT_NAME = "tonuslab-session"
#: Schema version written by this module ("MAJOR.MINOR"); readers refuse a newer MAJOR.
FORMAT_VERSION = "1.0"
_MAJOR = 1
#: Fill value of every counts dataset: a sample never received (no ADC produces it).
FILL_VALUE = np.iinfo(np.int32).min
#: Sample streams a session may hold, in channel-table order.
STREAMS = ("emg", "angle")
#: Session states stored in the root attribute ``state``.
STATES = ("recording", "complete", "recovered", "stopped_disk_full", "stopped_link_lost")

_STR = h5py.string_dtype("utf-8")
CHANNEL_DTYPE = np.dtype(
    [
        ("name", _STR),
        ("stream", _STR),
        ("column", np.int32),
        ("kind", _STR),
        ("unit", _STR),
        ("scale", np.float64),
        ("offset", np.float64),
        ("highpass_hz", np.float64),
        ("lowpass_hz", np.float64),
    ]
)
EVENT_DTYPE = np.dtype(
    [
        ("kind", _STR),
        ("time_s", np.float64),
        ("emg_sample_index", np.int64),
        ("device_time_us", np.int64),
        ("host_time_s", np.float64),
        ("intensity_ma", np.float64),
        ("width_us", np.float64),
        ("pulse_index", np.int32),
        ("label", _STR),
        ("params", _STR),
    ]
)
GAP_DTYPE = np.dtype(
    [
        ("stream", _STR),
        ("start_index", np.int64),
        ("n_samples", np.int64),
        ("reason", _STR),
        ("host_time_s", np.float64),
    ]
)
ANCHOR_DTYPE = np.dtype([("device_time_us", np.int64), ("host_time_s", np.float64)])
PING_DTYPE = np.dtype(
    [("device_time_us", np.int64), ("host_send_s", np.float64), ("host_recv_s", np.float64)]
)
EVENT_KINDS = ("stimulus", "marker", "prompt", "note", "status", "link", "quarantine")

# ---------------------------------------------------------------------------------- metadata
METADATA_FIELDS = {
    "subject_id": "pseudonymous subject code, e.g. 'S014' (letters, digits, '.', '_', '-')",
    "muscle": "tested muscle, e.g. 'biceps_brachii', 'soleus'",
    "side": "'left', 'right' or 'bilateral'",
    "joint": "joint moved, e.g. 'elbow', 'ankle', 'wrist'",
    "stretch_direction_sign": "+1 or -1: angle_deg = sign * goniometer_deg",
    "passive_range_deg": "[min, max] passive range of motion in degrees, if known",
    "protocol": "'stretch', 'hreflex', 'free' (or another protocol name)",
    "operator": "operator code or initials",
    "notes": "free text (never identifying information)",
    "session_label": "free label, e.g. 'baseline', 'post-baclofen 4h'",
    "extra": "mapping of further lab-specific fields (same personal-data rules)",
}
_PERSONAL = re.compile(
    r"(^|_)(name|first_?name|last_?name|surname|given_?name|full_?name|patient|birth|dob|"
    r"birthdate|date_of_birth|address|street|phone|email|e_mail|ssn|social_security|insurance|"
    r"mrn|medical_record|record_number|passport|national_id)($|_)",
    re.IGNORECASE,
)
_SUBJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def validate_metadata(metadata: Mapping | None) -> dict:
    """Check session metadata and return a normalised copy.

    Parameters
    ----------
    metadata : mapping or None
        Keys from :data:`METADATA_FIELDS`. ``stretch_direction_sign`` defaults to +1.

    Returns
    -------
    dict
        Normalised metadata (``passive_range_deg`` as a list of two floats or absent).

    Raises
    ------
    PersonalDataError
        A key names identifying personal data (name, birth date, address, ...), or the
        subject id is not a pseudonymous code.
    MetadataError
        An unknown key or a value of the wrong type or range.
    """
    out: dict = {"stretch_direction_sign": 1}
    for key, value in dict(metadata or {}).items():
        key = str(key)
        if _PERSONAL.search(key):
            raise PersonalDataError(
                f"metadata field '{key}' would store identifying personal data; "
                "use a pseudonymous subject_id instead"
            )
        if key not in METADATA_FIELDS:
            raise MetadataError(
                f"unknown metadata field '{key}'; allowed: {', '.join(METADATA_FIELDS)} "
                "(put lab-specific fields under 'extra')"
            )
        if value is None:
            continue
        if key == "subject_id":
            value = str(value)
            if not _SUBJECT_ID.match(value):
                raise PersonalDataError(
                    f"subject_id {value!r} is not a pseudonymous code: use letters, digits, "
                    "'.', '_' or '-' only (no spaces, no names), e.g. 'S014'"
                )
        elif key == "stretch_direction_sign":
            try:
                value = int(value)
            except (TypeError, ValueError):
                value = 0
            if value not in (1, -1):
                raise MetadataError("stretch_direction_sign must be +1 or -1")
        elif key == "passive_range_deg":
            try:
                lo, hi = (float(v) for v in value)
            except (TypeError, ValueError) as exc:
                raise MetadataError("passive_range_deg must be two numbers [min, max]") from exc
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise MetadataError("passive_range_deg must be finite with min < max")
            value = [lo, hi]
        elif key == "side":
            value = str(value).lower()
            if value not in ("left", "right", "bilateral"):
                raise MetadataError("side must be 'left', 'right' or 'bilateral'")
        elif key == "extra":
            if not isinstance(value, Mapping):
                raise MetadataError("extra must be a mapping of field names to values")
            for k, v in value.items():
                if _PERSONAL.search(str(k)):
                    raise PersonalDataError(
                        f"metadata field 'extra.{k}' would store identifying personal data"
                    )
                if not isinstance(v, str | int | float | bool):
                    raise MetadataError(f"extra.{k} must be a string or a number")
            value = {str(k): v for k, v in value.items()}
        else:
            value = str(value)
        out[key] = value
    return out


# ---------------------------------------------------------------------------------- channels
def _validate_channels(channels: Sequence[Mapping]) -> dict[str, list[dict]]:
    by_stream: dict[str, list[dict]] = {s: [] for s in STREAMS}
    for ch in channels:
        try:
            kind = str(ch["kind"])
            entry = {
                "name": str(ch["name"]),
                "kind": kind,
                "unit": str(ch["unit"]),
                "scale": float(ch["scale"]),
                "offset": float(ch.get("offset", 0.0) or 0.0),
                "highpass_hz": _float_or_nan(ch.get("highpass_hz")),
                "lowpass_hz": _float_or_nan(ch.get("lowpass_hz")),
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise SessionFileError(
                f"channel description {dict(ch)!r} needs name, kind, unit, scale (and offset)"
            ) from exc
        stream = str(ch.get("stream", kind))
        if stream not in by_stream:
            raise SessionFileError(f"channel {entry['name']!r}: stream must be one of {STREAMS}")
        if not (math.isfinite(entry["scale"]) and entry["scale"] != 0):
            raise SessionFileError(f"channel {entry['name']!r}: scale must be finite and non-zero")
        by_stream[stream].append(entry)
    if not by_stream["emg"]:
        raise SessionFileError("a session needs at least one EMG channel")
    return by_stream


def _float_or_nan(v) -> float:
    return float("nan") if v is None else float(v)
