"""The analysis pipeline: run every analysis a session supports, then store the summary.

``analyze_session(session)`` runs the stretch-reflex analysis (:mod:`dsp.stretch_reflex`) when the
session holds a joint angle that moves, and the H-reflex analysis (:mod:`dsp.hreflex`) when it
holds stimulus events, and merges their ``to_dict()`` output into one *summary* whose top-level
keys are stable (:data:`SUMMARY_KEYS`, documented in ``docs/cli.md``). ``analyze_file`` opens a
file, analyses it and stores the summary through the results store (:mod:`tonuslab.results`:
``/results/<run>``, crash-safe). The store's names (``write_results``, ``read_results``,
``input_sha256``...) are still importable from here for one release; import them from
:mod:`tonuslab.results`.
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np

from acquire.jsonable import json_default
from acquire.session_file.stimuli import stimulus_arrays
from dsp.errors import SignalError
from tonuslab._version import __version__
from tonuslab.errors import SessionFileError, UsageError
from tonuslab.profile import joint_of_muscle
from tonuslab.results import (  # noqa: F401  (deprecated here: import from tonuslab.results)
    DEFAULT_RUN,
    HASH_EXCLUDED_ROOT_ATTRS,
    LOCK_TIMEOUT_S,
    RESULTS_GROUP,
    SCHEMA,
    SCHEMA_VERSION,
    check_run_name,
    input_sha256,
    read_results,
    write_results,
)

#: Top-level keys of every summary (value None when not measured).
SUMMARY_KEYS = (
    "tsrt_deg",
    "tsrt_ci_deg",
    "mu_s",
    "r2",
    "n_stretches",
    "tsrt_inside_range",
    "tardieu_r1_deg",
    "tardieu_r2_deg",
    "tardieu_grade",
    "emg_gain",
    "hmax_mmax",
    "hmax_mmax_ci",
    "m_latency_ms",
    "h_latency_ms",
    "rate_dependent_depression",
)

#: Columns shown in the readable tables and the report (all columns are in --json).
STRETCH_COLUMNS = (
    "index",
    "peak_velocity_deg_s",
    "reflex",
    "onset_s",
    "dsrt_deg",
    "onset_velocity_deg_s",
    "catch_angle_deg",
    "clonus_duration_s",
    "used_in_fit",
    "exclusion_reasons",
)
STIMULUS_COLUMNS = (
    "stimulus",
    "intensity_ma",
    "pulse_index",
    "rate_hz",
    "background_uv",
    "m_p2p_uv",
    "h_p2p_uv",
    "included",
    "exclusion",
)


#: Analysis parameters and their defaults (all stored with each run).
DEFAULT_PARAMETERS = {
    "channel": 0,
    "detector": "threshold",
    "passive_range_deg": None,
    "muscle": None,
    "analyses": "auto",
    # H-reflex (None: the analysis's own defaults, see dsp.hreflex.analyze_hreflex)
    "background_band_uv": None,
    "m_window_ms": None,
    "h_window_ms": None,
    "test_m_fraction": None,
}


class NoAnalysableDataError(SessionFileError):
    """The session holds nothing any analysis can use (no moving angle, no stimuli)."""


# ----------------------------------------------------------------------------------------------
def _angle_moves(session) -> bool:
    angle = session.angle_deg
    return bool(
        angle is not None
        and angle.size > 10
        and np.any(np.isfinite(angle))
        and np.nanmax(angle) - np.nanmin(angle) > 5.0
    )


def _has_emg_samples(emg_uv: np.ndarray) -> bool:
    """True when the EMG holds any finite sample."""
    return bool(emg_uv.size and np.isfinite(emg_uv).any())


def _emg_varies(emg_uv: np.ndarray) -> bool:
    """True when some EMG channel holds finite samples that are not all one value."""
    if emg_uv.shape[0] < 2:
        return False
    finite = np.isfinite(emg_uv)
    for c in range(emg_uv.shape[1]):
        col = emg_uv[finite[:, c], c]
        if col.size > 1 and col.max() > col.min():
            return True
    return False


def supported_analyses(session) -> list[str]:
    """Names of the analyses the session's data supports.

    ``"stretch_reflex"`` when the joint angle moves, ``"hreflex"`` when there are stimuli;
    without either, ``"emg_bursts"`` (a burst table per channel) when there is EMG. A moving
    angle whose EMG cannot be analysed falls back to ``"movements"`` (see
    :func:`analyze_session`).
    """
    names = []
    if _angle_moves(session):
        names.append("stretch_reflex")
    if len(session.stimuli) > 0:
        names.append("hreflex")
    if not names and _emg_varies(session.emg_uv):
        names.append("emg_bursts")
    return names


def _result_dict(result) -> dict:
    d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    return json.loads(json.dumps(d, default=json_default))


def analyze_session(session, parameters: dict | None = None) -> dict:
    """Run every supported analysis on ``session`` and return the summary.

    Parameters
    ----------
    session : tonuslab.Session
    parameters : dict, optional
        Overrides of :data:`DEFAULT_PARAMETERS`.

    Returns
    -------
    dict
        The summary (keys in :data:`SUMMARY_KEYS` plus ``stretches``, ``stimuli``,
        ``quality_flags``, ``stretch_reflex``, ``hreflex``, ``parameters``, ...).

    Raises
    ------
    NoAnalysableDataError
        Nothing in the session can be analysed.
    UsageError
        A parameter is invalid (e.g. channel out of range).
    """
    params = dict(DEFAULT_PARAMETERS)
    unknown = set(parameters or {}) - set(params)
    if unknown:
        raise UsageError(f"unknown analysis parameter(s): {', '.join(sorted(unknown))}")
    params.update({k: v for k, v in (parameters or {}).items() if v is not None})
    meta = session.metadata
    n_channels = session.emg_uv.shape[1]
    channel = int(params["channel"])
    if not 0 <= channel < n_channels:
        raise UsageError(f"--channel {channel} is out of range: the session has {n_channels} EMG")
    muscle = params["muscle"] or meta.get("muscle")
    passive_range = params["passive_range_deg"] or meta.get("passive_range_deg")
    if passive_range is not None:
        passive_range = [float(passive_range[0]), float(passive_range[1])]
    available = supported_analyses(session)
    wanted = available if params["analyses"] == "auto" else list(params["analyses"])
    missing = [a for a in wanted if a not in available]
    if missing:
        raise NoAnalysableDataError(
            f"the session has no data for: {', '.join(missing)} (it supports "
            f"{', '.join(available) or 'nothing'})"
        )
    if not wanted and session.emg_uv.shape[0] == 0:
        raise NoAnalysableDataError(
            "no analysable data: the session holds no samples (an empty recording); record "
            "again, or run 'tonuslab recover' if the recorder was killed at the start"
        )
    if not wanted:
        raise NoAnalysableDataError(
            "no analysable data: the session has neither a moving joint angle, nor stimuli, "
            "nor EMG that varies (flat or absent channels)"
        )
    flags: list[str] = []
    n_nan = int(np.isnan(session.emg_uv[:, channel]).sum())
    if session.gaps or n_nan:
        flags.append(
            f"data: {len(session.gaps)} gap(s), {n_nan} missing EMG samples; "
            "analyses exclude what touches them"
        )
    runners = {
        "stretch_reflex": lambda: _run_stretch(session, channel, passive_range, params["detector"]),
        "hreflex": lambda: _run_hreflex(session, channel, muscle, params, flags),
        "emg_bursts": lambda: _run_bursts(session, params["detector"], flags),
        "movements": lambda: _run_movements(session),
    }
    results: dict[str, dict] = {}
    for name in wanted:
        try:
            results[name] = runners[name]()
        except SignalError as exc:  # one analysis refusing the data does not sink the other
            if name == "stretch_reflex" and not _has_emg_samples(session.emg_uv):
                # a goniometer without EMG samples (electrodes not recorded): the movements
                # can still be described (a flat or saturated EMG is an error, E09)
                flags.append(f"{name}: not analysed: {str(exc).splitlines()[0]}")
                results["movements"] = runners["movements"]()
                continue
            if len(wanted) == 1:
                raise
            flags.append(f"{name}: not analysed: {str(exc).splitlines()[0]}")
    if not results:
        raise NoAnalysableDataError("no analysis could use the data: " + "; ".join(flags))
    stretch, hreflex = results.get("stretch_reflex"), results.get("hreflex")
    summary = summarize(stretch, hreflex, flags=flags)
    for name, key in (("emg_bursts", "bursts"), ("movements", "movements")):
        if name in results:
            summary[key] = _clean(results[name]["rows"])
            summary["analyses"] = [*summary["analyses"], name]
    recording = (hreflex or {}).get("recording") or {}
    if recording.get("time_compressed"):
        # intervals shrunk for a test or demo: the depression figures are not physiology
        summary["depression_not_interpretable"] = TIME_COMPRESSED_NOTE
        summary["rate_dependent_depression"] = {}
        summary["rate_dependent_depression_ci"] = {}
    summary.update(
        {
            "muscle": muscle,
            "joint": joint_of_muscle(muscle) or meta.get("joint"),
            "subject": meta.get("subject_id") or meta.get("subject"),
            "session_label": meta.get("session_label"),
            "passive_range_deg": passive_range,
            "emg_channel": session.emg_channel_names[channel],
            "parameters": {**params, "muscle": muscle, "passive_range_deg": passive_range},
            "software_version": __version__,
            "session_start": getattr(session, "start_time_utc", None),
            "timepoint_h": _float_or_none(
                meta.get("timepoint_h", (meta.get("extra") or {}).get("timepoint_h"))
            ),
        }
    )
    return summary


def _run_stretch(session, channel: int, passive_range, detector: str) -> dict:
    from dsp.stretch_reflex import analyze_stretch_reflex

    result = analyze_stretch_reflex(
        session.emg_uv,
        session.emg_rate_hz,
        session.angle_deg,
        session.angle_rate_hz,
        channel=channel,
        passive_range_deg=None if passive_range is None else tuple(passive_range),
        detector=detector,
        prompt_times_s=getattr(session, "prompt_times_s", None) or None,
    )
    return _result_dict(result)


def _run_bursts(session, detector: str, flags: list[str]) -> dict:
    """Burst table of every EMG channel (recordings without a reflex test)."""
    from dsp.activity import burst_table
    from dsp.quality import channel_quality

    emg, rate = session.emg_uv, session.emg_rate_hz
    names = session.emg_channel_names
    for q in channel_quality(emg, rate):
        for problem in q.problems:
            flags.append(f"emg channel {names[q.channel]}: {problem}")
    rows = burst_table(emg, rate, method=detector)
    for r in rows:
        r["channel_name"] = names[r["channel"]]
    if not rows:
        flags.append("emg_bursts: no burst above the quietest-second threshold on any channel")
    return {"rows": rows}


def _run_movements(session) -> dict:
    """Movement table of the joint angle (no analysable EMG)."""
    from dsp.activity import movement_table

    return {"rows": movement_table(session.angle_deg, session.angle_rate_hz)}


def _pair_or_none(value, name: str, *, unit: str) -> tuple[float, float] | None:
    """A validated ``(low, high)`` pair of finite numbers, or None."""
    if value is None:
        return None
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be two numbers ({unit}), got {value!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and 0 <= low < high):
        raise UsageError(f"{name} must satisfy 0 <= low < high ({unit}), got [{low:g}, {high:g}]")
    return (low, high)


#: Why the depression figures of a time-compressed session are withheld from the summary.
TIME_COMPRESSED_NOTE = (
    "time-compressed session (a test or demo on the emulated device): the intervals between "
    "pulses were shrunk, so rate-dependent and paired-pulse depression (and H amplitudes, "
    "conditioned by the short intervals) are not interpretable; the depression figures are "
    "withheld from the summary, profile and report (the raw numbers stay under 'hreflex')"
)


def _recorded_hreflex(session) -> dict:
    """What the recorder's ``hreflex`` protocol saved in the session's notes.

    Parsed by the protocol's own notes module (:func:`acquire.protocols.hreflex.notes.read_notes`,
    the one parser of what its runner writes); ``{}`` for a session without them.
    """
    from acquire.protocols.hreflex.notes import read_notes

    return read_notes(session.events, session.metadata)


def _hreflex_preset(muscle, flags: list[str]) -> str:
    """Preset for the session's muscle.

    Named muscles map directly (:func:`dsp.hreflex.presets.preset_for_muscle`); another muscle
    of the wrist or the ankle gets that joint's preset (FCR, soleus) and a flag; anything else
    gets soleus and a flag.
    """
    from dsp.hreflex.presets import preset_for_muscle

    preset = preset_for_muscle(muscle)
    if preset is not None:
        return preset
    joint = joint_of_muscle(muscle)
    preset = {"wrist": "fcr", "ankle": "soleus"}.get(joint, "soleus")
    what = f"muscle {muscle!r} has no H-reflex preset" if muscle else "no muscle recorded"
    why = f" (a {joint} muscle)" if joint in ("wrist", "ankle") else ""
    flags.append(
        f"hreflex: {what}: the {preset} M/H search ranges were used{why} (presets: soleus, "
        "gastrocnemius, flexor carpi radialis); set --muscle or --m-window/--h-window"
    )
    return preset


def _run_hreflex(session, channel: int, muscle, params: dict, flags: list[str]) -> dict:
    """Run :func:`dsp.hreflex.analyze_hreflex` on the session, with what the recorder saved.

    From the recorder's notes (:func:`_recorded_hreflex`): the nominal rate of each rate-block
    pulse (NaN for recruitment and pairs), the gate band as the default background band (the
    ``--background-band`` option wins), and time compression (recruitment interval rule scaled
    by the time scale; depression flagged as not interpretable). Quality flags go to ``flags``.
    """
    from dsp.hreflex import analyze_hreflex

    options = {
        "background_band_uv": _pair_or_none(
            params.get("background_band_uv"), "--background-band", unit="uV"
        ),
        "m_window_ms": _pair_or_none(params.get("m_window_ms"), "--m-window", unit="ms"),
        "h_window_ms": _pair_or_none(params.get("h_window_ms"), "--h-window", unit="ms"),
    }
    fraction = params.get("test_m_fraction")
    if fraction is not None:
        fraction = float(fraction)
        if not 0.0 < fraction < 1.0:
            raise UsageError(f"--test-m-fraction must be between 0 and 1, got {fraction:g}")
        options["test_m_fraction"] = fraction
    options = {k: v for k, v in options.items() if v is not None}
    preset = _hreflex_preset(muscle, flags)
    stims = session.stimuli
    widths = [s.width_us for s in stims]
    recorded = _recorded_hreflex(session)
    band_source = None
    if recorded:
        band = recorded["gate_band_uv"]
        if "background_band_uv" not in options and band is not None:
            if recorded["gate_channel"] == channel:
                options["background_band_uv"] = _pair_or_none(band, "gate band", unit="uV")
                band_source = "recorded gate band (protocol note)"
            else:
                flags.append(
                    f"hreflex: the recorder gated on EMG channel {recorded['gate_channel']}, not "
                    f"the analysed channel {channel}: its gate band was not used"
                )
        if recorded["pulses"]:
            options["stim_rate_hz"] = np.array(
                [_recorded_rate(recorded["pulses"].get(int(s.emg_sample_index))) for s in stims]
            )
        if recorded["n_skipped_background"]:
            flags.append(
                f"hreflex: the recorder skipped {recorded['n_skipped_background']} planned "
                "pulse(s): background EMG outside the gate band"
            )
        if recorded["time_compressed"]:
            scale = recorded["time_scale"]
            options["recruitment_interval_s"] = (
                (0.0, 60.0) if not scale else (8.0 * scale, 15.0 * scale)
            )
            flags.append(f"hreflex: {TIME_COMPRESSED_NOTE}")
    arrays = stimulus_arrays(stims)
    result = analyze_hreflex(
        session.emg_uv,
        session.emg_rate_hz,
        arrays["stim_sample_index"],
        arrays["stim_intensity_ma"],
        stim_width_us=None if any(w is None for w in widths) else arrays["stim_width_us"],
        pulse_index=arrays["pulse_index"],
        muscle=preset,
        channel=channel,
        **options,
    )
    out = _result_dict(result)
    if band_source is not None:
        out["parameters"]["background_band_source"] = band_source
    if recorded:
        out["recording"] = {
            "time_compressed": recorded["time_compressed"],
            "time_scale": recorded["time_scale"],
            "gate_band_uv": recorded["gate_band_uv"],
            "gate_channel": recorded["gate_channel"],
            "n_pulse_notes": recorded["n_pulse_notes"],
            "n_skipped_background": recorded["n_skipped_background"],
            "stim_rate_source": "recorder notes" if recorded["pulses"] else "intervals",
        }
    return out


def _recorded_rate(note: dict | None) -> float:
    """Nominal rate (Hz, device time) of a rate-block pulse from its note; NaN otherwise."""
    if not note or not str(note.get("block", "")).startswith("rate_"):
        return float("nan")
    try:
        return float(note.get("rate_hz"))
    except (TypeError, ValueError):
        return float("nan")


def _float_or_none(v):
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _pick(d: dict | None, *names):
    if not d:
        return None
    for n in names:
        if n in d:
            return d[n]
    return None


def summarize(stretch: dict | None, hreflex: dict | None, *, flags=()) -> dict:
    """Merge the two analyses' ``to_dict()`` outputs into one summary with stable keys."""
    out = {k: None for k in SUMMARY_KEYS}
    for k in SUMMARY_KEYS:
        v = _pick(stretch, k)
        if v is None:
            v = _pick(hreflex, k)
        out[k] = v
    if stretch is not None and out["n_stretches"] is None:
        table = _pick(stretch, "stretches", "per_stretch")
        out["n_stretches"] = None if table is None else len(table)
    if isinstance(out["emg_gain"], dict):  # dsp gives the detail; the headline is the ratio
        out["emg_gain_detail"] = out["emg_gain"]
        out["emg_gain"] = out["emg_gain"].get("ratio")
    for extra in ("mu_ci_s", "tardieu_r2_minus_r1_deg", "range_deg", "detector", "n_valid"):
        if _pick(stretch, extra) is not None:
            out[extra] = _pick(stretch, extra)
    if stretch is not None:  # R1, R2, R2 - R1 and gain intervals (bootstrap over stretches)
        from tonuslab.stretch_uncertainty import stretch_intervals

        for key, value in stretch_intervals(stretch).items():
            own = _pick(stretch, key)  # dsp's own interval, when it gives one, wins
            out[key] = value if own is None else own
    out["rate_dependent_depression"] = _depression(out["rate_dependent_depression"])
    if _pick(hreflex, "rate_dependent_depression_ci") is not None:
        out["rate_dependent_depression_ci"] = _depression(
            _pick(hreflex, "rate_dependent_depression_ci")
        )
    out["stretches"] = _rows(_pick(stretch, "stretches", "per_stretch"))
    out["stimuli"] = _rows(_pick(hreflex, "stimuli", "per_stimulus", "trials"))
    quality = list(flags)
    for name, d in (("stretch", stretch), ("hreflex", hreflex)):
        for f in _pick(d, "quality_flags", "flags", "warnings") or []:
            quality.append(f"{name}: {f}" if isinstance(f, str) else f"{name}: {json.dumps(f)}")
        qdict = _pick(d, "quality")
        if isinstance(qdict, dict):
            quality.extend(f"{name}: {k}" for k, v in qdict.items() if v is True)
    out["quality_flags"] = quality
    out["analyses"] = [n for n, d in (("stretch_reflex", stretch), ("hreflex", hreflex)) if d]
    out["stretch_reflex"] = stretch
    out["hreflex"] = hreflex
    if stretch is not None and out["tsrt_deg"] is None:
        out["stretch_reason"] = _pick(stretch, "reason", "message") or "no TSRT could be fitted"
    return _clean(out)


def _depression(value):
    """Frequency (Hz, as a string key) to H2/H1 ratio."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(_num_key(k)): v for k, v in value.items()}
    rows = list(value)
    out = {}
    for row in rows:
        if isinstance(row, dict):
            f = _pick(row, "frequency_hz", "rate_hz", "hz")
            r = _pick(row, "ratio", "h2_h1", "mean_ratio")
        else:
            f, r = row[0], row[1]
        out[str(_num_key(f))] = r
    return out


def _num_key(k):
    try:
        f = float(k)
    except (TypeError, ValueError):
        return k
    return int(f) if f.is_integer() else f


def _rows(table) -> list[dict]:
    """A table as a list of row dicts (accepts a list of dicts or a dict of columns)."""
    if table is None:
        return []
    if isinstance(table, dict):
        cols = list(table)
        n = len(table[cols[0]]) if cols else 0
        return [{c: table[c][i] for c in cols} for i in range(n)]
    return [dict(r) for r in table]


def _clean(obj):
    """Replace NaN/inf with None so the summary is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


def analyze_file(
    path, *, run: str = DEFAULT_RUN, parameters=None, write: bool = True, replace: bool = False
) -> dict:
    """Open ``path``, analyse it, store the results (unless ``write=False``); return the summary.

    A stored run of the same name made with other parameters is not overwritten silently: that
    raises :class:`UsageError` unless ``replace=True`` (CLI ``--replace``); choose another
    ``run`` (``--run NAME``) to keep both. The same parameters again (e.g. after an upgrade)
    replace the run.
    """
    from tonuslab.session import open_session

    path = pathlib.Path(path)
    session = open_session(path)
    try:
        state = getattr(session.reader, "state", "complete")
        if write and state == "recording":
            raise SessionFileError(
                f"{path} is still being recorded, or its recorder stopped without closing it: "
                f"wait for the end, run 'tonuslab recover {path}', or use --no-write"
            )
        summary = analyze_session(session, parameters)
    finally:
        session.close()
    summary["file"] = str(path)
    digest = input_sha256(path)
    summary["input_sha256"] = digest
    if write:
        check_run_name(run)
        if not replace:
            _refuse_silent_replacement(path, run, summary)
        summary = write_results(path, summary, run=run, input_hash=digest)
    return summary


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=json_default)


def _refuse_silent_replacement(path, run: str, summary: dict) -> None:
    """UsageError when ``run`` is stored with parameters other than ``summary``'s."""
    stored = read_results(path).get(run)
    if stored is None:
        return
    old, new = stored.get("parameters") or {}, summary.get("parameters") or {}
    if _canonical(old) == _canonical(new):
        return
    changed = sorted(
        k for k in set(old) | set(new) if _canonical(old.get(k)) != _canonical(new.get(k))
    )
    shown = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:3])
    raise UsageError(
        f"{path} already holds run '{run}' made with other parameters ({shown}"
        f"{', ...' if len(changed) > 3 else ''}): use --run NAME to keep both, or --replace"
    )
