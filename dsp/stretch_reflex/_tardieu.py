"""Stages 6-7 of the stretch-reflex analysis: Tardieu angles, range and grade; EMG gain.

:func:`tardieu` reads R1 (catch angle of the fast stretches), R2 (end angle of the slow ones),
the passive range and the Tardieu grade; :func:`emg_gain` compares the stretch RMS of the slow
and fast stretches. Definitions: docs/stretch-reflex.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dsp.stretch_reflex._fit import ols
from dsp.stretch_reflex._fit_stage import LineFit
from dsp.stretch_reflex._result import StretchRecord
from dsp.stretch_reflex._settings import StretchReflexSettings
from dsp.stretch_reflex._stretches import REASON_ACTIVE, REASON_GAP, REASON_IRREGULAR


@dataclass(frozen=True)
class Tardieu:
    """Tardieu angles, the range, and the slow/fast stretch groups.

    Attributes
    ----------
    slow, fast : list of StretchRecord
        Stretches at or below the 20th / at or above the 80th percentile of peak velocity.
    r1_angle, r2_angle : float
        Tardieu R1 and R2, deg (NaN when not measurable).
    range_deg : (float, float)
        Passive range, deg; ``range_source`` says where it came from.
    inside : bool
        TSRT of a velocity-dependent reflex inside the range.
    grade : int
        Median Tardieu grade of the fast stretches (0-4).
    quality : dict
        ``slow_stretches_not_slow``, ``slow_stretches_reflexive``.
    warnings : tuple of str
    """

    slow: list
    fast: list
    r1_angle: float
    r2_angle: float
    range_deg: tuple
    range_source: str
    inside: bool
    grade: int
    quality: dict
    warnings: tuple[str, ...]


def tardieu(records: list, line: LineFit, settings: StretchReflexSettings) -> Tardieu:
    """Tardieu angles, range and grade (see the module docstring)."""
    pr, passive_range_deg = settings.passive_range_deg, settings.passive_range_deg
    velocity_dependent, tsrt = line.velocity_dependent, line.tsrt
    slow_max_velocity_deg_s = settings.slow_max_velocity_deg_s
    quality: dict = {}
    warnings: list[str] = []
    ok = [r for r in records if REASON_GAP not in r.exclusion_reasons]
    if ok:
        peaks = np.array([r.peak_velocity_deg_s for r in ok])
        slow = [r for r in ok if r.peak_velocity_deg_s <= np.percentile(peaks, 20)]
        fast = [r for r in ok if r.peak_velocity_deg_s >= np.percentile(peaks, 80)]
    else:
        slow, fast = [], []
    r2_angle = float(np.median([r.end_angle_deg for r in slow])) if slow else math.nan
    catches = [r.catch_angle_deg for r in fast if r.catch_detected]
    r1_angle = float(np.median(catches)) if len(catches) * 2 >= max(len(fast), 1) else math.nan
    if passive_range_deg is not None:
        range_deg, range_source = (pr[0], pr[1]), "given"
    elif ok:
        range_deg = (float(min(r.start_angle_deg for r in ok)), r2_angle)
        range_source = "slow stretches"
    else:
        range_deg, range_source = (math.nan, math.nan), "slow stretches"
    inside = bool(velocity_dependent and range_deg[0] <= tsrt <= range_deg[1])
    # R2 and the estimated range come from the slowest stretches: they must be slow (Tardieu
    # V1) and not cut short by the reflex
    quality["slow_stretches_not_slow"] = False
    quality["slow_stretches_reflexive"] = False
    if slow:
        slow_v = float(np.median([r.peak_velocity_deg_s for r in slow]))
        if slow_v > slow_max_velocity_deg_s:
            quality["slow_stretches_not_slow"] = True
            warnings.append(
                f"the slowest stretches reached {slow_v:.0f} deg/s (median peak, > "
                f"{slow_max_velocity_deg_s:g} deg/s): R2 (passive range) may be cut short by "
                "the stretch reflex; add slow stretches (Tardieu V1)"
            )
        resisted = [r for r in slow if r.catch_detected or r.clonus]
        if resisted:
            quality["slow_stretches_reflexive"] = True
            warnings.append(
                f"{len(resisted)} of the {len(slow)} slowest stretches show a catch or clonus: "
                "R2 (passive range) may be limited by the reflex; stretch more slowly"
            )
    grades = sorted(_stretch_grade(r) for r in fast)
    grade = int(grades[(len(grades) - 1) // 2]) if grades else 0

    return Tardieu(
        slow,
        fast,
        r1_angle,
        r2_angle,
        range_deg,
        range_source,
        inside,
        grade,
        quality,
        tuple(warnings),
    )


def emg_gain(records: list, td: Tardieu) -> dict:
    """Velocity-dependent EMG gain: stretch RMS of the fast over the slow stretches."""
    slow, fast = td.slow, td.fast

    def clean(rec: StretchRecord) -> bool:  # the gain needs no onset: outliers stay in
        return not ({REASON_GAP, REASON_ACTIVE, REASON_IRREGULAR} & set(rec.exclusion_reasons))

    lo_rms = [r.stretch_rms_uv for r in slow if clean(r)]
    hi_rms = [r.stretch_rms_uv for r in fast if clean(r)]
    lo_v = float(np.mean(lo_rms)) if lo_rms else math.nan
    hi_v = float(np.mean(hi_rms)) if hi_rms else math.nan
    amp = [(r.onset_velocity_deg_s, r.burst_rms_uv) for r in records if r.used_in_fit]
    slope = ols(*map(np.array, zip(*amp, strict=True)))[1] if len(amp) >= 3 else math.nan
    gain = {
        "low_velocity_rms_uv": lo_v,
        "high_velocity_rms_uv": hi_v,
        "difference_uv": hi_v - lo_v,
        "ratio": hi_v / lo_v if lo_v > 0 else math.nan,
        "amplitude_slope_uv_per_deg_s": slope,
        "n_low": len(lo_rms),
        "n_high": len(hi_rms),
    }

    return gain


def _stretch_grade(r: StretchRecord) -> int:
    """Instrumented Tardieu quality grade of one stretch (0-4)."""
    if not r.reflex:
        return 0
    if r.clonus:
        return 4 if r.clonus_duration_s >= 10.0 else 3
    if r.catch_detected and r.release:
        return 2
    return 1  # EMG response without a catch, or a catch that is not released
