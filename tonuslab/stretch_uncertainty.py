"""Uncertainty of the Tardieu angles and the EMG gain, from the per-stretch table.

:func:`dsp.stretch_reflex.analyze_stretch_reflex` gives R1, R2, R2 - R1 and the EMG gain ratio as
point estimates. Their 95 % intervals are computed here from the per-stretch table (the
``stretches`` of its ``to_dict()``), by a percentile bootstrap over stretches that repeats the
estimator of ``dsp`` on each resample:

- the stretches that do not touch a gap are split by peak velocity: *slow* at or below the 20th
  percentile, *fast* at or above the 80th;
- R2 = median of the slow stretches' end angle (``end_angle_deg``);
- R1 = median catch angle (``catch_angle_deg``) of the fast stretches with a detected catch, only
  when at least half of the fast stretches have one (else no R1);
- EMG gain ratio = mean ``stretch_rms_uv`` of the fast stretches / that of the slow stretches,
  over the stretches without a gap, pre-stretch activity or an irregular velocity profile.

The slow and the fast stretches are resampled with replacement, each group on its own (the
groups are fixed by the design: slow and fast stretches are asked for), ``N_RESAMPLES`` times
with a fixed seed, so the interval is reproducible. A group of fewer than ``MIN_PER_GROUP``
stretches gives no interval (a median of two values has no useful bootstrap). The interval is
given only when the table reproduces ``dsp``'s point estimate (to 1e-6): a table that does not
(e.g. an older or newer ``dsp`` with another estimator) gives no interval rather than an
interval around another number.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

#: Bootstrap resamples and seed.
N_RESAMPLES = 2000
SEED = 20240
#: Fewest stretches in a group (slow or fast) for an interval.
MIN_PER_GROUP = 2

_GAP = "touches a gap (NaN samples)"
_NOT_CLEAN = {_GAP, "muscle active before stretch", "irregular velocity profile"}


def _f(v) -> float:
    try:
        return math.nan if v is None else float(v)
    except (TypeError, ValueError):
        return math.nan


def _groups(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    ok = [r for r in rows if _GAP not in (r.get("exclusion_reasons") or [])]
    peaks = np.array([_f(r.get("peak_velocity_deg_s")) for r in ok])
    if not ok or not np.isfinite(peaks).all():
        return [], []
    lo, hi = np.percentile(peaks, 20), np.percentile(peaks, 80)
    slow = [r for r, p in zip(ok, peaks, strict=True) if p <= lo]
    fast = [r for r, p in zip(ok, peaks, strict=True) if p >= hi]
    return slow, fast


def _r2(end_angles: np.ndarray) -> np.ndarray:
    """R2 of each resample (rows): median end angle."""
    return np.median(end_angles, axis=-1)


def _r1(catch: np.ndarray, detected: np.ndarray) -> np.ndarray:
    """R1 of each resample (rows): median detected catch angle, NaN if under half have one."""
    n = detected.shape[-1]
    masked = np.where(detected, catch, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no catch at all
        med = np.nanmedian(masked, axis=-1)
    enough = detected.sum(axis=-1) * 2 >= max(n, 1)
    return np.where(enough, med, np.nan)


def _gain(lo_rms: np.ndarray, hi_rms: np.ndarray) -> np.ndarray:
    lo = lo_rms.mean(axis=-1)
    hi = hi_rms.mean(axis=-1)
    with np.errstate(all="ignore"):
        return np.where(lo > 0, hi / lo, np.nan)


def _interval(samples: np.ndarray, *, min_valid: float = 0.9) -> list[float] | None:
    good = samples[np.isfinite(samples)]
    if good.size < min_valid * samples.size:
        return None  # the estimate is undefined in too many resamples
    lo, hi = np.percentile(good, [2.5, 97.5])
    return [float(lo), float(hi)]


def _same(a, b) -> bool:
    a, b = _f(a), _f(b)
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 1e-6 * max(1.0, abs(b))


def stretch_intervals(stretch: dict | None) -> dict:
    """95 % bootstrap intervals of R1, R2, R2 - R1 and the EMG gain ratio.

    Parameters
    ----------
    stretch : dict or None
        ``to_dict()`` of :class:`dsp.stretch_reflex.StretchReflexResult` (needs ``stretches``,
        ``tardieu_r1_deg``, ``tardieu_r2_deg``, ``emg_gain``).

    Returns
    -------
    dict
        ``tardieu_r1_ci_deg``, ``tardieu_r2_ci_deg``, ``tardieu_r2_minus_r1_ci_deg``,
        ``emg_gain_ci`` (each ``[low, high]`` or None) and ``stretch_ci_method`` (text), or an
        empty dict when there is no stretch-reflex result.

    Examples
    --------
    >>> rows = [{"peak_velocity_deg_s": v, "end_angle_deg": 100.0 + i % 3, "catch_angle_deg": 60.0,
    ...          "catch_detected": v > 200, "stretch_rms_uv": v / 10, "exclusion_reasons": []}
    ...         for i, v in enumerate([20, 25, 30, 250, 260, 270, 100, 120, 140, 160] * 2)]
    >>> out = stretch_intervals({"stretches": rows, "tardieu_r1_deg": 60.0,
    ...                          "tardieu_r2_deg": 101.0, "emg_gain": {"ratio": 10.4}})
    >>> out["tardieu_r2_ci_deg"][0] <= 101.0 <= out["tardieu_r2_ci_deg"][1]
    True
    """
    if not stretch:
        return {}
    rows = list(stretch.get("stretches") or [])
    out: dict = {
        "tardieu_r1_ci_deg": None,
        "tardieu_r2_ci_deg": None,
        "tardieu_r2_minus_r1_ci_deg": None,
        "emg_gain_ci": None,
        "stretch_ci_method": (
            f"percentile bootstrap over stretches ({N_RESAMPLES} resamples of the slow and the "
            f"fast stretches; none with fewer than {MIN_PER_GROUP} per group)"
        ),
    }
    slow, fast = _groups(rows)
    if len(slow) < MIN_PER_GROUP or len(fast) < MIN_PER_GROUP:
        out["stretch_ci_method"] += f": not computed ({len(slow)} slow, {len(fast)} fast)"
        return out
    rng = np.random.default_rng(SEED)
    i_slow = rng.integers(0, len(slow), size=(N_RESAMPLES, len(slow)))
    i_fast = rng.integers(0, len(fast), size=(N_RESAMPLES, len(fast)))

    end = np.array([_f(r.get("end_angle_deg")) for r in slow])
    catch = np.array([_f(r.get("catch_angle_deg")) for r in fast])
    detected = np.array([bool(r.get("catch_detected")) for r in fast]) & np.isfinite(catch)
    r2_point, r1_point = stretch.get("tardieu_r2_deg"), stretch.get("tardieu_r1_deg")
    r2_ok = np.isfinite(end).all() and _same(_r2(end), r2_point)
    r1_ok = _same(_r1(catch, detected), r1_point)
    r2_boot = _r2(end[i_slow]) if r2_ok else None
    r1_boot = _r1(catch[i_fast], detected[i_fast]) if r1_ok else None
    if r2_boot is not None:
        out["tardieu_r2_ci_deg"] = _interval(r2_boot)
    if r1_boot is not None:
        out["tardieu_r1_ci_deg"] = _interval(r1_boot)
    if r1_boot is not None and r2_boot is not None:
        out["tardieu_r2_minus_r1_ci_deg"] = _interval(r2_boot - r1_boot)

    gain = stretch.get("emg_gain")
    ratio = gain.get("ratio") if isinstance(gain, dict) else gain
    lo_rows = [r for r in slow if not _NOT_CLEAN & set(r.get("exclusion_reasons") or [])]
    hi_rows = [r for r in fast if not _NOT_CLEAN & set(r.get("exclusion_reasons") or [])]
    lo_rms = np.array([_f(r.get("stretch_rms_uv")) for r in lo_rows])
    hi_rms = np.array([_f(r.get("stretch_rms_uv")) for r in hi_rows])
    if (
        min(lo_rms.size, hi_rms.size) >= MIN_PER_GROUP
        and np.isfinite(lo_rms).all()
        and np.isfinite(hi_rms).all()
        and _same(_gain(lo_rms, hi_rms), ratio)
    ):
        j_lo = rng.integers(0, lo_rms.size, size=(N_RESAMPLES, lo_rms.size))
        j_hi = rng.integers(0, hi_rms.size, size=(N_RESAMPLES, hi_rms.size))
        out["emg_gain_ci"] = _interval(_gain(lo_rms[j_lo], hi_rms[j_hi]))
    return out
