"""EDF/EDF+ (pyedflib) reader of ``tonuslab import``.

EMG channels are recognised by their physical dimension (uV, µV, mV or V; stored in uV), the
goniometer by degrees (deg, degree, °). The ``:UNIT`` suffix of ``--emg LABEL:UNIT`` overrides
the header's dimension (a channel labelled ``EMG`` with dimension ``mV`` that really holds uV,
or one with no dimension at all). The EDF digital samples are kept as the raw integer counts
with ``scale``/``offset`` from the header's physical and digital ranges, so nothing is
resampled or re-quantised; a header whose physical range is not a real range (for example a
physical maximum of 9.9e307, which would read as all-NaN) is refused, naming the channel.
EDF+ annotations such as ``stim 12.5mA`` (optionally ``stim 12.5mA 1000us``; a decimal comma,
``stim 12,5 mA``, is read as a decimal point) become stimulus events; every other annotation
becomes a marker (with an :class:`ImportDataWarning` when it starts with ``stim`` but is not
understood). Stimuli outside the data (onset before the start or at or after the last EMG
sample) are dropped with an :class:`ImportDataWarning`; when every stimulus is outside, the file
is refused (its time base does not match the data). The EDF patient field is never copied (it
may hold a name): give ``subject_id``.
"""

from __future__ import annotations

import math
import pathlib
import re
import warnings

import numpy as np

from tonuslab.io_import._common import (
    ANGLE_UNITS,
    EMG_UNITS,
    ImportDataWarning,
    ImportFormatError,
    drop_stimuli_outside,
    emg_factor,
    metadata,
    needs_emg,
    parse_stim_annotation,
    select,
    split_unit,
    unit_key,
)

#: Largest physical limit accepted in an EDF header (beyond it the header is damaged).
MAX_PHYSICAL = 1e15


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
        EMG channel labels (default: every channel whose dimension is a voltage); a label may
        end in ``:UNIT`` (``"EMG L:mV"``) to override the header's physical dimension.
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
        units = [unit_key(reader.getPhysicalDimension(i)) for i in range(n)]
        if emg_channels:
            specs = [split_unit(str(c)) for c in emg_channels]
            for name, unit in specs:
                head, sep, tail = name.rpartition(":")
                if unit is None and sep and name not in labels and head in labels:
                    raise ImportFormatError(
                        f"--emg {name}: unknown unit '{tail}' for channel '{head}' "
                        f"(use one of uV, mV, V)"
                    )
            emg_idx = select(labels, [name for name, _ in specs], "EMG")
            for i, (_, unit) in zip(emg_idx, specs, strict=True):
                if unit is not None:
                    units[i] = unit_key(unit)  # the user's unit wins over the header's
        else:
            emg_idx = [i for i in range(n) if units[i] in EMG_UNITS]
        if angle_channel is not None:
            angle_idx = select(labels, [angle_channel], "angle")[0]
        else:
            angle_idx = next((i for i in range(n) if units[i] in ANGLE_UNITS), None)
        if not emg_idx:
            if angle_idx is None:
                raise ImportFormatError(
                    f"{path}: no EMG channel (physical dimension uV or mV) and no goniometer "
                    "(deg); channels: "
                    + ", ".join(f"{lab} [{u}]" for lab, u in zip(labels, units, strict=True))
                    + " (map one with --emg LABEL[:UNIT])"
                )
            needs_emg(path, "the EDF file")
        rates = {i: float(reader.getSampleFrequency(i)) for i in range(n)}
        emg_rate = float(options.pop("emg_rate_hz", None) or rates[emg_idx[0]])
        if len({rates[i] for i in emg_idx}) > 1:
            raise ImportFormatError(
                f"{path}: the EMG channels have different sampling rates "
                f"({sorted({rates[i] for i in emg_idx})}); choose channels with --emg"
            )
        channels, emg_cols = [], []
        for i in emg_idx:
            factor = emg_factor(units[i], f"channel {labels[i]}")
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
    events = drop_stimuli_outside(events, emg_counts.shape[0], emg_rate, path)
    meta = metadata(options)
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


def _edf_scale(reader, i: int) -> tuple[float, float]:
    """(scale, offset) with physical = (digital - offset) * scale, from the EDF header."""
    pmin, pmax = reader.getPhysicalMinimum(i), reader.getPhysicalMaximum(i)
    dmin, dmax = reader.getDigitalMinimum(i), reader.getDigitalMaximum(i)
    label = reader.getLabel(i).strip()
    if not all(math.isfinite(v) and abs(v) <= MAX_PHYSICAL for v in (pmin, pmax)):
        raise ImportFormatError(
            f"channel '{label}': the header's physical range {pmin:g} to {pmax:g} "
            f"{reader.getPhysicalDimension(i).strip()} is not a real range (damaged header?); "
            "fix the header or leave the channel out"
        )
    if dmax == dmin or pmax == pmin:
        raise ImportFormatError(f"channel '{label}' has an empty physical range")
    scale = (pmax - pmin) / (dmax - dmin)
    if not (math.isfinite(scale) and scale != 0):
        raise ImportFormatError(f"channel '{label}': physical range gives no finite scale")
    offset = dmin - pmin / scale
    return float(scale), float(offset)


def _prefilter(text: str, kind: str) -> float | None:
    m = re.search(kind + r"\s*:?\s*(\d+(?:\.\d+)?)\s*hz", text or "", re.IGNORECASE)
    return float(m.group(1)) if m else None
