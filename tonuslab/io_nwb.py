"""Export a session to NWB (Neurodata Without Borders) with pynwb.

What goes where:

- ``acquisition/EMG``: :class:`pynwb.TimeSeries`, raw int32 counts ``(n, n_channels)`` with
  ``unit="volts"``, ``conversion = scale * 1e-6`` and ``offset = -offset_counts * scale * 1e-6``
  (NWB: value = data * conversion + offset), so NWB readers get volts from the integers. Samples
  never received keep the session's fill value; they are listed in ``intervals/gaps``.
- ``acquisition/joint_angle``: :class:`pynwb.TimeSeries` of the goniometer counts in degrees,
  sign-corrected (``conversion`` carries ``stretch_direction_sign``), so the angle increases as
  the muscle lengthens (tonuslab's convention).
- ``events/stimuli`` (NWB ``EventsTable``): one row per stimulus with ``intensity_ma``,
  ``width_us`` and ``pulse_index``; ``events/markers`` for other events.
- ``intervals/stretches``: :class:`pynwb.epoch.TimeIntervals` with one row per analysed stretch
  (start, end, peak velocity, reflex, DSRT, onset velocity, used in fit).
- ``intervals/gaps``: missing-sample intervals.
"""

from __future__ import annotations

import datetime as _dt
import pathlib
import re
import uuid
import warnings

import numpy as np

from tonuslab import __version__
from tonuslab.errors import UsageError


def _nan(v) -> float:
    return float("nan") if v is None else float(v)


def nwb_age(value) -> str | None:
    """An age for NWB's ``Subject.age``: ISO 8601 duration text.

    ``45`` or ``"45"`` (years) becomes ``"P45Y"``; ``"P45Y"``, ``"P6M"``... pass as they are;
    ``"unknown"`` is kept as the explicit statement that the age is not known; None is None.

    Raises
    ------
    UsageError
        Anything else (one line).
    """
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() == "unknown":
        return "unknown"
    if re.fullmatch(r"\d{1,3}(\.\d+)?", text) and 0 < float(text) < 150:
        return f"P{text}Y"
    if re.fullmatch(r"P(?=\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?", text):
        return text
    raise UsageError(
        f"subject age {value!r}: give years (45), an ISO 8601 duration (P45Y, P6M) or 'unknown'"
    )


#: NWB's sex codes; "unknown" is accepted for U.
NWB_SEX = {"M": "M", "F": "F", "O": "O", "U": "U", "UNKNOWN": "U"}


def nwb_sex(value) -> str | None:
    """``M``, ``F``, ``O`` or ``U`` (``unknown``); None is None; anything else UsageError."""
    if value is None:
        return None
    code = NWB_SEX.get(str(value).strip().upper())
    if code is None:
        raise UsageError(f"subject sex {value!r}: give M, F, O (other) or U/unknown")
    return code


def export_nwb(
    session_path,
    out,
    *,
    summary: dict | None = None,
    overwrite: bool = False,
    subject_age=None,
    subject_sex=None,
    experimenter=None,
    institution: str | None = None,
):
    """Write ``session_path`` as an NWB file ``out``; returns the output path.

    Parameters
    ----------
    session_path : path-like
        tonuslab session file.
    out : path-like
        NWB file to write (``.nwb``).
    summary : dict, optional
        Analysis summary for the stretch intervals (default: the stored ``default`` run, else a
        fresh analysis when the session holds a moving angle).
    overwrite : bool
        Replace an existing ``out``.
    subject_age : int, str, optional
        Age (years, an ISO 8601 duration, or ``"unknown"``); see :func:`nwb_age`.
    subject_sex : str, optional
        ``M``, ``F``, ``O`` or ``U``/``unknown``.
    experimenter : str or list of str, optional
        Who recorded the session.
    institution : str, optional
        Where it was recorded.

    NWB's inspector treats a subject without age and sex as critical; pass ``"unknown"`` to
    say so explicitly rather than leave them out.
    """
    age, sex = nwb_age(subject_age), nwb_sex(subject_sex)
    if isinstance(experimenter, str):
        experimenter = [experimenter]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pynwb import NWBHDF5IO, NWBFile, TimeSeries
        from pynwb.epoch import TimeIntervals
        from pynwb.event import EventsTable
        from pynwb.file import Subject

    from tonuslab.analysis import analyze_session, supported_analyses
    from tonuslab.results import read_results
    from tonuslab.session import open_session

    out = pathlib.Path(out)
    if out.exists() and not overwrite:
        raise UsageError(f"{out} exists; choose another name (or remove it)")
    with open_session(session_path) as s:
        reader = s.reader
        meta = s.metadata
        if summary is None:
            summary = read_results(reader.file).get("default")
        if summary is None and "stretch_reflex" in supported_analyses(s):
            summary = analyze_session(s, {"analyses": ["stretch_reflex"]})
        known = s.start_time_utc  # the source's recording start for imported sessions
        start = _dt.datetime.now(_dt.UTC) if known is None else _dt.datetime.fromisoformat(known)
        nwb = NWBFile(
            session_description=f"tonuslab session: {meta.get('protocol') or 'recording'}, "
            f"muscle {meta.get('muscle') or 'unknown'}",
            identifier=str(uuid.uuid4()),
            session_start_time=start,
            session_id=meta.get("session_label") or None,
            source_script=f"tonuslab {__version__} (tonuslab export --nwb)",
            source_script_file_name="tonuslab/io_nwb.py",
            notes=f"exported from {pathlib.Path(session_path).name}",
            experimenter=list(experimenter) if experimenter else None,
            institution=institution or None,
        )
        if meta.get("subject_id") or age is not None or sex is not None:
            nwb.subject = Subject(
                subject_id=str(meta.get("subject_id") or "unknown"),
                species="Homo sapiens",
                age=age,
                sex=sex,
            )
        emg = reader.emg
        scale_v = emg.scale * 1e-6
        if not np.allclose(scale_v, scale_v[0]) or not np.allclose(emg.offset, emg.offset[0]):
            raise UsageError(
                "the EMG channels have different scales or offsets; NWB needs one conversion "
                "per TimeSeries (export channels separately is not supported yet)"
            )
        nwb.add_acquisition(
            TimeSeries(
                name="EMG",
                description="surface EMG, channels: "
                + ", ".join(emg.channel_names)
                + f"; fill value {emg.fill_value} marks samples never received",
                data=emg.counts[()],
                unit="volts",
                conversion=float(scale_v[0]),
                offset=float(-emg.offset[0] * scale_v[0]),
                rate=float(emg.rate_hz),
                starting_time=float(emg.t0_s),
            )
        )
        angle = reader.angle
        if angle is not None:
            sign = int(meta.get("stretch_direction_sign", 1))
            conv = float(angle.scale[0]) * sign
            nwb.add_acquisition(
                TimeSeries(
                    name="joint_angle",
                    description="goniometer angle, sign-corrected to increase as the tested "
                    f"muscle lengthens (stretch_direction_sign {sign})",
                    data=angle.counts[()][:, 0],
                    unit="degrees",
                    conversion=conv,
                    offset=float(-angle.offset[0] * conv),
                    rate=float(angle.rate_hz),
                    starting_time=float(angle.t0_s),
                )
            )
        stims = s.stimuli
        if stims:
            table = EventsTable(name="stimuli", description="electrical stimulus pulses")
            table.add_column("intensity_ma", "stimulus intensity, mA")
            table.add_column("width_us", "pulse width, microseconds (NaN if unknown)")
            table.add_column("pulse_index", "0 single or first of a pair, 1 second of a pair")
            for st in stims:
                table.add_row(
                    timestamp=float(st.time_s),
                    intensity_ma=float(st.intensity_ma),
                    width_us=_nan(st.width_us),
                    pulse_index=int(st.pulse_index),
                )
            nwb.add_events_table(table)
        others = [
            e for e in s.events if e.get("kind") != "stimulus" and e.get("time_s") is not None
        ]
        if others:
            table = EventsTable(name="markers", description="prompts, markers, notes, status")
            table.add_column("kind", "event kind")
            table.add_column("label", "event label")
            for e in others:
                table.add_row(
                    timestamp=float(e["time_s"]), kind=str(e["kind"]), label=str(e.get("label"))
                )
            nwb.add_events_table(table)
        stretches = (summary or {}).get("stretches") or []
        if stretches:
            ti = TimeIntervals(name="stretches", description="passive stretches (tonuslab)")
            for col, desc in (
                ("peak_velocity_deg_s", "peak lengthening velocity, deg/s"),
                ("reflex", "EMG reflex onset found"),
                ("dsrt_deg", "dynamic stretch reflex threshold, deg (NaN if none)"),
                ("onset_velocity_deg_s", "velocity at onset, deg/s (NaN if none)"),
                ("used_in_fit", "DSRT entered the TSRT regression"),
            ):
                ti.add_column(col, desc)
            t0 = s.t0_s
            for r in stretches:
                ti.add_row(
                    start_time=_nan(r.get("start_s")) + t0,
                    stop_time=_nan(r.get("end_s")) + t0,
                    peak_velocity_deg_s=_nan(r.get("peak_velocity_deg_s")),
                    reflex=bool(r.get("reflex")),
                    dsrt_deg=_nan(r.get("dsrt_deg")),
                    onset_velocity_deg_s=_nan(r.get("onset_velocity_deg_s")),
                    used_in_fit=bool(r.get("used_in_fit")),
                )
            nwb.add_time_intervals(ti)
        if s.gaps:
            gi = TimeIntervals(name="gaps", description="samples never received")
            gi.add_column("stream", "emg or angle")
            gi.add_column("reason", "why the samples are missing")
            for g in s.gaps:
                stream = reader.stream(g["stream"])
                a = stream.t0_s + g["start_index"] / stream.rate_hz
                gi.add_row(
                    start_time=a,
                    stop_time=a + g["n_samples"] / stream.rate_hz,
                    stream=str(g["stream"]),
                    reason=str(g.get("reason", "")),
                )
            nwb.add_time_intervals(gi)
        from tonuslab.output import atomic_output

        with atomic_output(out) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with NWBHDF5IO(str(tmp), "w") as io:
                io.write(nwb)
    return out


def validate_nwb(path) -> list[str]:
    """Read ``path`` back with pynwb and run pynwb's validator; returns the problems found."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pynwb import NWBHDF5IO, validate

        problems: list[str] = []
        with NWBHDF5IO(str(path), "r") as io:
            io.read()
        try:
            result = validate(path=str(path))
        except TypeError:  # older signature
            with NWBHDF5IO(str(path), "r") as io:
                result = validate(io=io)
        if isinstance(result, tuple):
            result = result[0]
        problems.extend(str(e) for e in (result or []))
    return problems
