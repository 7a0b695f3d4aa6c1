"""C3D (motion-lab) reader of ``tonuslab import``, with ezc3d (the ``tonuslab[c3d]`` extra).

- EMG: analog channels, by label (``emg=["L_SOL", ...]``, a label may end in ``:UNIT``) or by
  default every analog channel whose label contains ``EMG``; units come from the ANALOG:UNITS
  parameter (V, mV, uV; ezc3d has already applied the ANALOG scale and offset). A channel
  without a voltage unit is refused unless its unit is given.
- Angle: an analog channel in degrees or radians (``angle="Gonio"``), or a point component
  (``angle="LKneeAngles:X"``, component X, Y or Z, default X): model outputs such as Plug-in
  Gait's ``*Angles`` points hold joint angles in degrees. Default: the first analog channel in
  deg/rad, else the first point whose label ends in ``Angles``.
- Events (EVENT:TIMES, LABELS, CONTEXTS) become markers ``"CONTEXT LABEL"``; a label that reads
  ``stim 12.5mA`` becomes a stimulus at the EMG sample of its time.
- Frames whose point residual is negative (ezc3d reads them as NaN) are gaps of the angle.
- A file ezc3d cannot read is refused in one line.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from tonuslab.io_import._common import (
    ANGLE_FACTORS,
    ANGLE_SCALE_DEG,
    EMG_SCALE_UV,
    ImportFormatError,
    emg_factor,
    gap_records,
    metadata,
    needs_emg,
    split_unit,
    stimulus_or_marker,
    to_counts,
    unit_key,
)

EXTRA_HINT = "C3D import needs ezc3d: pip install 'tonuslab[c3d]'"


def _param(c, group: str, name: str, default=None):
    try:
        return c["parameters"][group][name]["value"]
    except KeyError:
        return default


def _labels(values) -> list[str]:
    return [] if values is None else [str(v).strip() for v in values]


def import_c3d(
    path,
    out,
    *,
    emg=None,
    angle: str | None = None,
    overwrite: bool = False,
    **options,
) -> pathlib.Path:
    """Convert a C3D file to a session file (see the module docstring).

    Parameters
    ----------
    path, out : path-like
    emg : list of str, optional
        Analog channel labels (``LABEL[:UNIT]``); default: those whose label contains EMG.
    angle : str, optional
        ``ANALOG_LABEL`` or ``POINT_LABEL[:X|Y|Z]``.
    overwrite : bool
    **options
        Session metadata.
    """
    try:
        import ezc3d
    except ImportError:
        raise ImportFormatError(EXTRA_HINT) from None
    from acquire.session_file import write_session

    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    try:
        c = ezc3d.c3d(str(path))
    except Exception as exc:  # ezc3d raises RuntimeError/IOError/IndexError on bad files
        raise ImportFormatError(
            f"{path} is not a readable C3D file ({str(exc).splitlines()[0] if str(exc) else exc})"
        ) from None
    a_labels = _labels(_param(c, "ANALOG", "LABELS", []))
    a_units = _labels(_param(c, "ANALOG", "UNITS", [])) + [""] * len(a_labels)
    a_rate = float((_param(c, "ANALOG", "RATE", [0]) or [0])[0])
    p_labels = _labels(_param(c, "POINT", "LABELS", []))
    p_rate = float((_param(c, "POINT", "RATE", [0]) or [0])[0])
    analogs = np.asarray(c["data"]["analogs"])  # (1, n_analog, n_analog_samples)
    analogs = analogs[0] if analogs.ndim == 3 and analogs.shape[0] == 1 else analogs
    points = np.asarray(c["data"]["points"])  # (4, n_points, n_frames)

    def analog_index(label):
        if label in a_labels:
            return a_labels.index(label)
        raise ImportFormatError(
            f"no analog channel '{label}' in {path}; analog channels: {', '.join(a_labels)}"
        )

    if emg:
        specs = [split_unit(str(e)) for e in emg]
    else:
        specs = [(lab, None) for lab in a_labels if "emg" in lab.lower()]
    channels, cols = [], []
    for label, unit in specs:
        j = analog_index(label)
        factor = emg_factor(unit or a_units[j], f"analog channel '{label}'")
        cols.append(to_counts(analogs[j] * factor, EMG_SCALE_UV, label, "uV"))
        channels.append({"name": label, "kind": "emg", "unit": "uV", "scale": EMG_SCALE_UV,
                         "offset": 0.0})  # fmt: skip
    angle_deg, angle_rate, angle_name = _angle(angle, a_labels, a_units, analogs, a_rate,
                                               p_labels, points, p_rate, path)  # fmt: skip
    if not cols:
        if angle_deg is None:
            raise ImportFormatError(
                f"{path}: no EMG analog channel (label with 'EMG') and no angle; analog "
                f"channels: {', '.join(a_labels) or 'none'} (choose with --emg LABEL[:UNIT])"
            )
        needs_emg(path, "the C3D file")
    emg_counts = np.stack(cols, axis=1)
    gaps, angle_counts = [], None
    if angle_deg is not None:
        gaps = gap_records("angle", np.isnan(angle_deg))
        angle_counts = to_counts(angle_deg, ANGLE_SCALE_DEG, angle_name, "deg")[:, None]
        channels.append({"name": angle_name, "kind": "angle", "unit": "deg",
                         "scale": ANGLE_SCALE_DEG, "offset": 0.0})  # fmt: skip
    events = []
    raw_times = _param(c, "EVENT", "TIMES", None)
    times = np.asarray([] if raw_times is None else raw_times, dtype=float)
    labels = _labels(_param(c, "EVENT", "LABELS", []))
    contexts = _labels(_param(c, "EVENT", "CONTEXTS", [])) + [""] * len(labels)
    if times.size and labels:
        times = times.reshape(2, -1) if times.ndim == 2 or times.size == 2 * len(labels) else times
        start = np.asarray(_param(c, "TRIAL", "ACTUAL_START_FIELD", [1]), dtype=float).ravel()
        first_frame = int(start[0]) if start.size else 1
        t0 = (first_frame - 1) / p_rate if p_rate > 0 else 0.0
        for k, label in enumerate(labels):
            t = float(times[0, k] * 60.0 + times[1, k]) - t0
            text = label if label.lower().startswith("stim") else f"{contexts[k]} {label}".strip()
            ev = stimulus_or_marker(text, time_s=t, emg_sample_index=round(t * a_rate))
            if ev["kind"] == "stimulus" and not 0 <= ev["emg_sample_index"] < emg_counts.shape[0]:
                continue
            events.append(ev)
    meta = metadata(options)
    if any(e["kind"] == "stimulus" for e in events):
        meta.setdefault("protocol", "hreflex")
    return write_session(
        out,
        emg_counts=emg_counts,
        emg_rate_hz=a_rate,
        channels=channels,
        angle_counts=angle_counts,
        angle_rate_hz=angle_rate,
        metadata=meta,
        device={"model": "imported", "source_format": "C3D", "source_file": path.name},
        events=events,
        gaps=gaps,
        attrs={"imported_from": path.name},
        overwrite=overwrite,
    )


def _angle(spec, a_labels, a_units, analogs, a_rate, p_labels, points, p_rate, path):
    """(angle in degrees, shape (n,); its rate; its name) or (None, None, None)."""
    comp = {"x": 0, "y": 1, "z": 2}
    if spec is None:
        j = next((i for i, u in enumerate(a_units[: len(a_labels)])
                  if unit_key(u) in ANGLE_FACTORS), None)  # fmt: skip
        if j is not None:
            spec = a_labels[j]
        else:
            spec = next((p for p in p_labels if p.lower().endswith("angles")), None)
            if spec is None:
                return None, None, None
    if spec in a_labels:
        j = a_labels.index(spec)
        u = unit_key(a_units[j])
        if u not in ANGLE_FACTORS:
            raise ImportFormatError(f"analog channel '{spec}' is in '{a_units[j]}', not deg or rad")
        return analogs[j] * ANGLE_FACTORS[u], a_rate, spec
    label, _, axis = spec.rpartition(":") if ":" in spec else (spec, "", "x")
    if label not in p_labels or axis.lower() not in comp:
        raise ImportFormatError(
            f"no angle '{spec}' in {path}: give an analog channel ({', '.join(a_labels)}) or "
            f"POINT[:X|Y|Z] ({', '.join(p_labels)})"
        )
    if not (p_rate > 0 and math.isfinite(p_rate)):
        raise ImportFormatError(f"{path}: POINT:RATE is {p_rate}")
    values = np.asarray(points[comp[axis.lower()], p_labels.index(label)], dtype=float)
    return values, p_rate, f"{label}:{axis.upper()}"
