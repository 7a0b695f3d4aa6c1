"""Compare sessions of one subject and muscle over time (e.g. an intrathecal baclofen test bolus).

Every metric is followed against the baseline (the earliest session). A change counts as *beyond
the smallest real difference* only where the literature gives an SRD for that metric and joint
(:data:`tonuslab.profile.SRD_TABLE`, or one given by the user); elsewhere the change is shown but
never flagged.

Effect duration and responder criterion
---------------------------------------
For the criterion metric (default ``tsrt_deg``) and direction (default ``"increase"``: baclofen
raises the TSRT as it lowers reflex excitability), the *effect* is the longest run of consecutive
post-baseline sessions whose change is beyond the SRD in that direction. Its duration is the time
from the first to the last session of the run (observed at the sampled time points, so a lower
bound). A subject is a *responder* when that duration is at least ``min_duration_h`` (default 4 h,
after the clinical rule of an effect sustained for 4 h). No SRD -> no decision (``None``) with the
reason.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass

from tonuslab.errors import UsageError
from tonuslab.profile import SRD_TABLE, joint_of_muscle

#: Metrics followed over time: summary key -> (label, unit).
METRICS = {
    "tsrt_deg": ("TSRT", "deg"),
    "mu_s": ("mu", "s"),
    "tardieu_grade": ("Tardieu grade", ""),
    "tardieu_r2_minus_r1_deg": ("Tardieu R2 - R1", "deg"),
    "emg_gain": ("EMG gain", ""),
    "hmax_mmax": ("Hmax/Mmax", ""),
    "h_latency_ms": ("H latency", "ms"),
}


@dataclass
class ResponderCriterion:
    """Configurable responder rule (see the module docstring)."""

    metric: str = "tsrt_deg"
    direction: str = "increase"  # "increase", "decrease" or "any"
    min_duration_h: float = 4.0
    srd: float | None = None  # override of the literature SRD

    def __post_init__(self):
        if self.metric not in METRICS:
            raise UsageError(
                f"unknown responder metric '{self.metric}': choose one of {', '.join(METRICS)}"
            )
        if self.direction not in ("increase", "decrease", "any"):
            raise UsageError(f"direction must be increase, decrease or any, not {self.direction}")
        if not self.min_duration_h >= 0:
            raise UsageError("the minimum effect duration must be >= 0 h")
        if self.srd is not None and not (math.isfinite(float(self.srd)) and self.srd > 0):
            raise UsageError(
                f"--srd must be a positive number (a difference in the metric's unit), "
                f"got {self.srd:g}"
            )


def _start_time(summary):
    s = summary.get("session_start")
    if not s:
        return None
    try:
        t = _dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def check_times(times_h) -> list[float]:
    """``times_h`` as floats; refuses a non-finite or negative time (hours after baseline).

    Raises
    ------
    UsageError
        A value is not finite or is below 0.
    """
    out = [float(t) for t in times_h]
    for i, t in enumerate(out):
        if not math.isfinite(t) or t < 0:
            raise UsageError(
                f"--times value {i + 1} is {t:g}: times are hours after the baseline, finite and "
                ">= 0"
            )
    return out


def timepoints_h(summaries: list[dict], times_h: list[float] | None = None) -> list[float]:
    """Time of each session in hours after the baseline session.

    From ``times_h`` when given, else each summary's ``timepoint_h`` (metadata), else the
    sessions' start times.
    """
    if times_h is not None:
        if len(times_h) != len(summaries):
            raise UsageError(f"--times has {len(times_h)} values for {len(summaries)} files")
        return check_times(times_h)
    if all(s.get("timepoint_h") is not None for s in summaries):
        return [float(s["timepoint_h"]) for s in summaries]
    starts = [_start_time(s) for s in summaries]
    if all(starts):
        t0 = min(starts)
        return [(t - t0).total_seconds() / 3600.0 for t in starts]
    raise UsageError(
        "cannot tell when each session was recorded: give --times (hours after baseline)"
    )


def _num(v):
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def compare(
    summaries: list[dict],
    *,
    times_h: list[float] | None = None,
    criterion: ResponderCriterion | None = None,
) -> dict:
    """Compare analysis summaries of one subject and muscle over time.

    Parameters
    ----------
    summaries : list of dict
        Analysis summaries (:func:`tonuslab.analysis.analyze_session`), at least two.
    times_h : list of float, optional
        Hours after baseline for each summary (default: from metadata or start times).
    criterion : ResponderCriterion, optional

    Returns
    -------
    dict
        ``muscle``, ``joint``, ``subject``, ``sessions`` (file and ``time_h``, in time order),
        ``metrics`` (per key: ``label``, ``unit``, ``srd``, ``values``, ``changes``,
        ``beyond_srd``), ``warnings`` (e.g. sessions analysed with different parameters), and
        ``responder`` (``metric``, ``direction``, ``srd``,
        ``min_duration_h``, ``effect_start_h``, ``effect_end_h``, ``effect_duration_h``,
        ``responder``, ``reason``).
    """
    if len(summaries) < 2:
        raise UsageError("compare needs at least two sessions (a baseline and a follow-up)")
    criterion = criterion or ResponderCriterion()
    muscles = {s.get("muscle") for s in summaries if s.get("muscle")}
    if len(muscles) > 1:
        raise UsageError(f"the sessions are of different muscles ({', '.join(sorted(muscles))})")
    subjects = {s.get("subject") for s in summaries if s.get("subject")}
    if len(subjects) > 1:
        raise UsageError(
            f"the sessions are of different subjects ({', '.join(map(str, sorted(subjects)))})"
        )
    times = timepoints_h(summaries, times_h)
    order = sorted(range(len(summaries)), key=lambda i: times[i])
    summaries = [summaries[i] for i in order]
    times = [times[i] for i in order]
    muscle = next(iter(muscles), None)
    joint = next((s.get("joint") for s in summaries if s.get("joint")), None) or joint_of_muscle(
        muscle
    )
    metrics = {}
    for key, (label, unit) in METRICS.items():
        values = [_num(s.get(key)) for s in summaries]
        if all(v is None for v in values):
            continue
        srd_entry = SRD_TABLE.get((key, joint or ""))
        srd = srd_entry["srd"] if srd_entry else None
        if key == criterion.metric and criterion.srd is not None:
            srd = float(criterion.srd)
        base = values[0]
        changes = [None if (v is None or base is None) else v - base for v in values]
        beyond = [None if (c is None or srd is None) else abs(c) > srd for c in changes]
        metrics[key] = {
            "label": label,
            "unit": unit,
            "srd": None if srd is None else round(srd, 3),
            "values": values,
            "changes": changes,
            "beyond_srd": beyond,
        }
    # depression ratios by frequency
    freqs = sorted(
        {f for s in summaries for f in (s.get("rate_dependent_depression") or {})}, key=float
    )
    for f in freqs:
        values = [_num((s.get("rate_dependent_depression") or {}).get(f)) for s in summaries]
        base = values[0]
        metrics[f"depression_{f}hz"] = {
            "label": f"H2/H1 at {f} Hz",
            "unit": "",
            "srd": None,
            "values": values,
            "changes": [None if (v is None or base is None) else v - base for v in values],
            "beyond_srd": [None] * len(values),
        }
    warnings = []
    methods = [_method(s) for s in summaries]
    differing = sorted(
        {k for m in methods for k in m if len({json.dumps(x.get(k)) for x in methods}) > 1}
    )
    if differing:
        warnings.append(
            f"the sessions were analysed with different analysis parameters "
            f"({', '.join(differing)}): changes may come from the method, not the patient "
            "(re-run 'tonuslab analyze' on all files with the same options)"
        )
    if len({str(s.get("software_version")) for s in summaries}) > 1:
        warnings.append(
            "the sessions were analysed with different software versions: changes may come "
            "from the method, not the patient (re-run 'tonuslab analyze' on all files)"
        )
    return {
        "muscle": muscle,
        "joint": joint,
        "subject": next(iter(subjects), None),
        "warnings": warnings,
        "sessions": [
            {"file": s.get("file"), "time_h": t} for s, t in zip(summaries, times, strict=True)
        ],
        "metrics": metrics,
        "responder": _responder(metrics, times, criterion),
    }


#: Analysis parameters that change what is measured (not the context, such as the passive range
#: or the muscle name): sessions compared over time should share them.
METHOD_PARAMETERS = (
    "detector",
    "channel",
    "analyses",
    "background_band_uv",
    "m_window_ms",
    "h_window_ms",
    "test_m_fraction",
)


def _method(summary: dict) -> dict:
    """The analysis method of a summary (:data:`METHOD_PARAMETERS`; absent = default)."""
    p = summary.get("parameters") or {}
    return {k: p.get(k) for k in METHOD_PARAMETERS}


def _responder(metrics: dict, times: list[float], c: ResponderCriterion) -> dict:
    out = {
        "metric": c.metric,
        "direction": c.direction,
        "min_duration_h": c.min_duration_h,
        "srd": None,
        "effect_start_h": None,
        "effect_end_h": None,
        "effect_duration_h": None,
        "responder": None,
        "reason": "",
    }
    m = metrics.get(c.metric)
    if m is None:
        out["reason"] = f"{c.metric} was not measured"
        return out
    out["srd"] = m["srd"]
    if m["srd"] is None:
        out["reason"] = f"no smallest real difference is known for {c.metric} here (give --srd)"
        return out
    if m["values"][0] is None:
        out["reason"] = f"{c.metric} is missing at baseline"
        return out

    def hit(change):
        if change is None:
            return False
        if c.direction == "increase":
            return change > m["srd"]
        if c.direction == "decrease":
            return change < -m["srd"]
        return abs(change) > m["srd"]

    best, run = None, []
    for i in range(1, len(times)):
        if hit(m["changes"][i]):
            run.append(i)
            span = times[run[-1]] - times[run[0]]
            if best is None or span > best[2]:
                best = (run[0], run[-1], span)
        else:
            run = []
    if best is None:
        out["responder"] = False
        out["effect_duration_h"] = 0.0
        out["reason"] = f"no follow-up {c.metric} change beyond the SRD ({m['srd']:.3g})"
        return out
    out["effect_start_h"], out["effect_end_h"] = times[best[0]], times[best[1]]
    out["effect_duration_h"] = best[2]
    out["responder"] = best[2] >= c.min_duration_h
    out["reason"] = (
        f"{c.metric} beyond the SRD from {times[best[0]]:g} h to {times[best[1]]:g} h "
        f"({best[2]:g} h {'>=' if out['responder'] else '<'} {c.min_duration_h:g} h)"
    )
    return out


def format_comparison(result: dict) -> str:
    """The comparison as a readable table."""
    sessions = result["sessions"]
    head = ["metric"] + [f"{s['time_h']:g} h" for s in sessions] + ["SRD"]
    rows = [head]
    for m in result["metrics"].values():
        cells = [f"{m['label']} ({m['unit']})" if m["unit"] else m["label"]]
        for i, v in enumerate(m["values"]):
            if v is None:
                cells.append("-")
                continue
            text = f"{v:.3g}"
            if i > 0 and m["changes"][i] is not None:
                text += f" ({m['changes'][i]:+.3g}{'*' if m['beyond_srd'][i] else ''})"
            cells.append(text)
        cells.append("-" if m["srd"] is None else f"{m['srd']:.3g}")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        f"Subject {result.get('subject') or '?'}, muscle {result.get('muscle') or '?'} "
        f"(joint {result.get('joint') or '?'}); baseline {sessions[0]['file']}",
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append("(* change beyond the smallest real difference; '-' SRD: none published)")
    lines.extend(f"Warning: {w}" for w in result.get("warnings") or [])
    r = result["responder"]
    verdict = {True: "RESPONDER", False: "not a responder", None: "no decision"}[r["responder"]]
    lines.append(
        f"Responder criterion: {r['metric']} {r['direction']} beyond SRD for >= "
        f"{r['min_duration_h']:g} h -> {verdict}: {r['reason']}"
    )
    return "\n".join(lines)
